//! The cache service's request handlers: plain async functions over a [`Store`].

mod sessions;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use portcullis_oidc::Provider;
use portcullis_runtime::Bus;
use portcullis_runtime::bucket::{Bucket, KvError};
use portcullis_runtime::crypto::Sealer;
use portcullis_schemas::events::EventData;
use portcullis_schemas::messages::{ErrorCode, ErrorReply, Session, User};
use tracing::error;

pub(crate) use sessions::{all_sessions as all_sessions_for_sweep, revoke_one, save_user};
pub use sessions::{create_session, get_session, list_sessions, revoke_session, revoke_where};

/// What the handlers and the lifecycle job read and write.
pub struct Store {
    pub bus: Bus,
    pub sessions: Bucket<Session>,
    pub users: Bucket<User>,
    /// `cookie_expire`: no session outlives it.
    pub session_lifetime: Duration,
    /// Opens and seals the OIDC tokens of sessions (refresh).
    pub token_sealer: Sealer,
    /// The IdP, once discovered.
    pub provider: RwLock<Option<Arc<Provider>>>,
    /// To discover the IdP again (its signing keys rotated).
    pub discovery: Discovery,
}

/// What re-discovering the IdP needs, and when it last happened.
pub struct Discovery {
    pub idp: portcullis_runtime::config::IdpConfig,
    pub redirect: url::Url,
    pub http: reqwest::Client,
    pub last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Store {
    pub fn provider(&self) -> Option<Arc<Provider>> {
        self.provider.read().ok()?.clone()
    }

    /// Discover the IdP again (new signing keys), at most once a minute.
    pub async fn rediscover(&self) -> Option<Arc<Provider>> {
        {
            let mut last = self.discovery.last.lock().ok()?;
            let now = std::time::Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
                return None;
            }
            *last = Some(now);
        }
        let d = &self.discovery;
        let provider = Provider::discover(&d.idp, &d.redirect, d.http.clone()).await.ok()?;
        self.set_provider(provider);
        self.provider()
    }

    pub fn set_provider(&self, provider: Provider) {
        if let Ok(mut p) = self.provider.write() {
            *p = Some(Arc::new(provider));
        }
    }
}

pub(crate) fn unavailable(what: &str, e: KvError) -> ErrorReply {
    error!(error = %e, "{what} failed");
    ErrorReply { code: ErrorCode::Unavailable, message: format!("{what} failed; retry") }
}

pub(crate) fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0).unwrap_or_default().to_rfc3339()
}

/// Publish an event; the state change already happened, so a failure is logged, not returned.
pub(crate) async fn publish<E: EventData>(bus: &Bus, event: &E) {
    if let Err(e) = bus.publish_event(event).await {
        error!(error = %e, kind = E::KIND, subject = event.subject(), "event lost after retries");
    }
}

/// The first characters of a session id, enough to correlate logs, useless to an attacker.
pub(crate) fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
