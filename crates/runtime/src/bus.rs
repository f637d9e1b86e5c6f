//! The NATS bus: the only module that calls async-nats.
//!
//! * [`Bus::request`]: typed JSON request-reply with a deadline.
//! * [`Bus::start_service`] / [`ServiceHandle::endpoint`]: typed handlers behind the NATS
//!   Services API (queue group, so instances share the load; `nats micro ls` lists them).
//! * [`Bus::kv`]: a key-value bucket, created if absent (idempotent).
//! * [`Bus::publish_event`]: CloudEvents to the events stream, de-duplicated by event id.
//!
//! Connections retry forever, at start and after a drop, so services ride out NATS restarts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use async_nats::service::ServiceExt;
use bytes::Bytes;
use futures::StreamExt;
use portcullis_schemas::events::EventData;
use portcullis_schemas::messages::{ErrorCode, ErrorReply, Reply};
use portcullis_schemas::{Contract, ServiceName};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use crate::bucket::Bucket;
use crate::config::{EventMode, EventsConfig, NatsConfig};
use crate::events;
use crate::shutdown::Shutdown;

/// What went wrong talking over NATS. Says whether a retry may help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("no service is listening on {0}")]
    NoResponders(String),
    #[error("the service answered with an error: {} ({:?})", .0.message, .0.code)]
    Remote(ErrorReply),
    #[error("malformed message: {0}")]
    Decode(String),
    #[error("nats: {0}")]
    Nats(String),
}

impl BusError {
    /// Whether the failure is transient (the same call may succeed later).
    pub fn is_transient(&self) -> bool {
        match self {
            BusError::Timeout(_) | BusError::NoResponders(_) | BusError::Nats(_) => true,
            BusError::Remote(e) => e.code == ErrorCode::Unavailable,
            BusError::Decode(_) => false,
        }
    }
}

fn nats_err(e: impl std::fmt::Display) -> BusError {
    BusError::Nats(e.to_string())
}

/// Attempts to publish one event (each with the same event id).
const PUBLISH_ATTEMPTS: u64 = 3;

/// Settings of a bucket this service needs.
#[derive(Debug, Clone)]
pub struct BucketSpec {
    pub name: String,
    pub description: &'static str,
    /// Entries older than this are removed by the server; zero keeps them.
    pub max_age: Duration,
    pub history: i64,
}

/// A connection to NATS with the installation's contract.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    contract: Contract,
    timeout: Duration,
    /// Who publishes events (CloudEvents `source`).
    source: Arc<str>,
    event_mode: EventMode,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("prefix", &self.contract.prefix()).finish_non_exhaustive()
    }
}

impl Bus {
    /// Connect as `client_name` (e.g. `portcullis-proxy`). Returns at once; the connection
    /// is made, and remade after a drop, in the background.
    pub async fn connect(config: &NatsConfig, client_name: &str) -> Result<Bus, BusError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(client_name)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => info!("connected to NATS"),
                    async_nats::Event::Disconnected => {
                        warn!("disconnected from NATS; reconnecting")
                    }
                    other => debug!(event = %other, "nats event"),
                }
            });
        if let Some(path) = &config.creds_file {
            options = options.credentials_file(path).await.map_err(nats_err)?;
        }
        // async-nats ignores credentials in the URL: take them out and pass them explicitly.
        let (url, user_pass) = split_credentials(&config.url);
        if let Some((user, pass)) = user_pass {
            options = options.user_and_password(user, pass);
        }
        let client = options.connect(url.as_str()).await.map_err(nats_err)?;
        let js = jetstream::new(client.clone());
        Ok(Bus {
            client,
            js,
            contract: config.contract.clone(),
            timeout: config.request_timeout,
            source: Arc::from(format!("/{}/{client_name}", config.contract.prefix())),
            event_mode: EventMode::Structured,
        })
    }

    /// Publish events in `mode` from now on.
    pub fn with_event_mode(mut self, mode: EventMode) -> Bus {
        self.event_mode = mode;
        self
    }

    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// Send `request` to `subject` and decode the reply, within the configured deadline.
    pub async fn request<Q: Serialize, R: DeserializeOwned>(
        &self,
        subject: String,
        request: &Q,
    ) -> Result<R, BusError> {
        self.request_within(subject, request, self.timeout).await
    }

    pub async fn request_within<Q: Serialize, R: DeserializeOwned>(
        &self,
        subject: String,
        request: &Q,
        timeout: Duration,
    ) -> Result<R, BusError> {
        let payload = serde_json::to_vec(request).map_err(|e| BusError::Decode(e.to_string()))?;
        let call = self.client.send_request(
            subject.clone(),
            async_nats::Request::new().payload(Bytes::from(payload)).timeout(Some(timeout)),
        );
        // The outer deadline also covers a connection that is down (publish would wait).
        let message = match tokio::time::timeout(timeout, call).await {
            Err(_) => return Err(BusError::Timeout(timeout)),
            Ok(Err(e)) => {
                return Err(match e.kind() {
                    async_nats::RequestErrorKind::TimedOut => BusError::Timeout(timeout),
                    async_nats::RequestErrorKind::NoResponders => BusError::NoResponders(subject),
                    _ => nats_err(e),
                });
            }
            Ok(Ok(m)) => m,
        };
        match serde_json::from_slice::<Reply<R>>(&message.payload) {
            Ok(Reply::Ok(r)) => Ok(r),
            Ok(Reply::Error(e)) => Err(BusError::Remote(e)),
            Err(e) => Err(BusError::Decode(format!("reply on {subject}: {e}"))),
        }
    }

    /// Register this process as an instance of `service` (NATS Services API).
    pub async fn start_service(
        &self,
        service: ServiceName,
        description: &str,
    ) -> Result<ServiceHandle, BusError> {
        let svc = self
            .client
            .service_builder()
            .description(description)
            .queue_group(self.contract.queue_group())
            .start(self.contract.service_name(service), env!("CARGO_PKG_VERSION"))
            .await
            .map_err(nats_err)?;
        let group = svc.group(self.contract.service_group(service));
        Ok(ServiceHandle { service: Arc::new(svc), group })
    }

    /// Open `spec`'s bucket as values of `T`, creating it if absent.
    pub async fn bucket<T: Serialize + DeserializeOwned>(
        &self,
        spec: &BucketSpec,
    ) -> Result<Bucket<T>, BusError> {
        self.kv(spec).await.map(Bucket::new)
    }

    async fn kv(&self, spec: &BucketSpec) -> Result<kv::Store, BusError> {
        if let Ok(store) = self.js.get_key_value(spec.name.as_str()).await {
            return Ok(store);
        }
        let config = kv::Config {
            bucket: spec.name.clone(),
            description: spec.description.to_owned(),
            history: spec.history,
            max_age: spec.max_age,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        match self.js.create_key_value(config).await {
            Ok(store) => Ok(store),
            // Another instance may have created it in between.
            Err(e) => self.js.get_key_value(spec.name.as_str()).await.map_err(|_| nats_err(e)),
        }
    }

    /// Make sure the events stream exists with the configured retention (an existing stream
    /// whose retention differs is updated).
    pub async fn ensure_events_stream(&self, events: &EventsConfig) -> Result<(), BusError> {
        let wanted = stream::Config {
            name: self.contract.events_stream(),
            description: Some("Portcullis events (CloudEvents 1.0)".into()),
            subjects: vec![self.contract.events_wildcard()],
            max_age: events.max_age,
            max_bytes: events.max_bytes,
            num_replicas: events.replicas,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let mut stream = self.js.get_or_create_stream(wanted.clone()).await.map_err(nats_err)?;
        let have = stream.info().await.map_err(nats_err)?.config.clone();
        if have.max_age != wanted.max_age
            || have.max_bytes != wanted.max_bytes
            || have.num_replicas != wanted.num_replicas
        {
            info!(stream = %wanted.name, "updating the events stream's retention to the configuration");
            self.js.update_stream(wanted).await.map_err(nats_err)?;
        }
        Ok(())
    }

    /// Publish `data` as a CloudEvent (structured or binary mode, per [`Bus::with_event_mode`])
    /// and wait for the stream's ack, trying
    /// up to three times. Every attempt carries the same event id as `Nats-Msg-Id`, so an
    /// attempt whose ack was lost is not stored twice. Returns the event id.
    pub async fn publish_event<E: EventData>(&self, data: &E) -> Result<String, BusError> {
        let envelope = events::envelope(&self.source, data, self.event_mode)
            .map_err(|e| BusError::Decode(e.to_string()))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.publish_envelope(E::KIND, &envelope).await {
                Ok(()) => return Ok(envelope.id),
                Err(e) if attempt >= PUBLISH_ATTEMPTS => return Err(e),
                Err(error) => {
                    warn!(%error, kind = E::KIND, attempt, "publishing event failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
            }
        }
    }

    async fn publish_envelope(&self, kind: &str, envelope: &events::Envelope) -> Result<(), BusError> {
        let mut message = jetstream::message::PublishMessage::build()
            .payload(Bytes::from(envelope.body.clone()))
            .message_id(&envelope.id);
        for (name, value) in &envelope.headers {
            message = message.header(name.as_str(), value.as_str());
        }
        let ack = self.js.send_publish(self.contract.event_subject(kind), message).await.map_err(nats_err)?;
        tokio::time::timeout(self.timeout, ack)
            .await
            .map_err(|_| BusError::Timeout(self.timeout))?
            .map_err(nats_err)?;
        Ok(())
    }

    /// Every event as it is published (a plain subscription, nothing stored): (kind, CloudEvents
    /// `subject`), e.g. (`session.revoked`, the session id). Ends if the subscription fails.
    pub async fn subscribe_events(
        &self,
    ) -> Result<impl futures::Stream<Item = (String, String)> + use<>, BusError> {
        let subscriber = self.client.subscribe(self.contract.events_wildcard()).await.map_err(nats_err)?;
        let prefix = format!("{}.events.", self.contract.prefix());
        Ok(subscriber.filter_map(move |m| {
            let kind = m.subject.as_str().strip_prefix(&prefix).map(str::to_owned);
            let ce_subject = m.headers.as_ref().and_then(|h| h.get("ce-subject")).map(|v| v.to_string());
            let subject = ce_subject.or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&m.payload)
                    .ok()
                    .and_then(|v| v.get("subject").and_then(|s| s.as_str()).map(str::to_owned))
            });
            futures::future::ready(kind.zip(subject))
        }))
    }

    /// Events as they arrive on the stream (an ordered consumer), as structured CloudEvents
    /// JSON whatever mode they were published in. `kind` filters by event kind (e.g.
    /// `session.revoked`); `since` starts that far back, else only new events are delivered.
    pub async fn tail_events(
        &self,
        kind: Option<&str>,
        since: Option<Duration>,
    ) -> Result<impl futures::Stream<Item = Result<serde_json::Value, BusError>> + use<>, BusError> {
        let stream = self.js.get_stream(self.contract.events_stream()).await.map_err(nats_err)?;
        let deliver_policy = match since {
            Some(d) => jetstream::consumer::DeliverPolicy::ByStartTime {
                start_time: chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default(),
            },
            None => jetstream::consumer::DeliverPolicy::New,
        };
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: self.contract.event_subject(kind.unwrap_or(">")),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(nats_err)?;
        let messages = consumer.messages().await.map_err(nats_err)?;
        Ok(messages.map(|m| {
            let m = m.map_err(nats_err)?;
            events::to_structured_json(
                m.headers.as_ref().map(|h| {
                    h.iter()
                        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.to_string(), v.to_string())))
                        .collect::<Vec<_>>()
                }),
                &m.payload,
            )
            .map_err(BusError::Decode)
        }))
    }

    /// Wait until the connection is up (or `shutdown`).
    pub async fn wait_connected(&self, shutdown: &Shutdown) {
        let mut delay = Duration::from_millis(50);
        while self.client.connection_state() != async_nats::connection::State::Connected {
            if shutdown.sleep_or_stop(delay).await {
                return;
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Flush pending publishes (at shutdown).
    /// Send what is buffered, waiting at most the request deadline: with NATS gone, a flush
    /// would wait for a reconnection that may never come (and hold up shutdown).
    pub async fn flush(&self) {
        let _ = tokio::time::timeout(self.timeout, self.client.flush()).await;
    }
}

/// Split `nats://user:pass@host:port[,..]` into the URL without credentials and the
/// (percent-decoded) user and password.
pub fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None) };
    let Some((userinfo, host)) = rest.split_once('@') else { return (url.to_owned(), None) };
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
    };
    let user = decode(user).unwrap_or_default();
    let pass = decode(pass).unwrap_or_default();
    (format!("{scheme}://{host}"), Some((user, pass)))
}

/// `url` with any password replaced, for logs.
pub fn redact(url: &str) -> String {
    match split_credentials(url) {
        (bare, Some((user, _))) => bare.replacen("://", &format!("://{user}:***@"), 1),
        (bare, None) => bare,
    }
}

/// A registered NATS service; add endpoints to it.
pub struct ServiceHandle {
    service: Arc<async_nats::service::Service>,
    group: async_nats::service::Group,
}

impl ServiceHandle {
    /// Serve `name` (inside the service group) with `handler`. Each request runs in its own
    /// task; the reply is `{"ok": R}` or `{"error": ErrorReply}`. Runs until `shutdown`.
    pub async fn endpoint<Q, R, F, Fut>(
        &self,
        name: &str,
        handler: F,
        shutdown: Shutdown,
    ) -> Result<tokio::task::JoinHandle<()>, BusError>
    where
        Q: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Q) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ErrorReply>> + Send + 'static,
    {
        let mut endpoint = self.group.endpoint(name).await.map_err(nats_err)?;
        let handler = Arc::new(handler);
        let endpoint_name = name.to_owned();
        let _keep_alive = self.service.clone();
        Ok(tokio::spawn(async move {
            let _service = _keep_alive;
            loop {
                let request = tokio::select! {
                    r = endpoint.next() => match r { Some(r) => r, None => break },
                    _ = shutdown.wait() => break,
                };
                let handler = handler.clone();
                let endpoint_name = endpoint_name.clone();
                tokio::spawn(async move {
                    let reply = match serde_json::from_slice::<Q>(&request.message.payload) {
                        Ok(q) => match handler(q).await {
                            Ok(r) => Reply::Ok(r),
                            Err(e) => Reply::Error(e),
                        },
                        Err(e) => Reply::Error(ErrorReply {
                            code: ErrorCode::BadRequest,
                            message: format!("malformed request: {e}"),
                        }),
                    };
                    let body = serde_json::to_vec(&reply).unwrap_or_default();
                    if let Err(error) = request.respond(Ok(Bytes::from(body))).await {
                        warn!(%error, endpoint = %endpoint_name, "could not send reply");
                    }
                });
            }
            let _ = endpoint.stop().await;
        }))
    }
}

/// Retry `op` with backoff until it succeeds or `shutdown`; logs each failure with `what`.
pub async fn retry<T, F, Fut>(what: &str, shutdown: &Shutdown, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(error) => warn!(%error, retry_in = ?delay, "{what} failed"),
        }
        if shutdown.sleep_or_stop(delay).await {
            return None;
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_out_of_urls_and_never_into_logs() {
        let (url, creds) = split_credentials("nats://proxy:s%40cret@nats.internal:4222");
        assert_eq!(url, "nats://nats.internal:4222");
        assert_eq!(creds, Some(("proxy".into(), "s@cret".into())));
        assert_eq!(split_credentials("nats://127.0.0.1:4222").1, None);
        assert_eq!(redact("nats://proxy:secret@h:4222"), "nats://proxy:***@h:4222");
    }
}
