use std::sync::{Arc, RwLock};
use std::time::Duration;

use portcullis_oidc::{Provider, http_client};
use portcullis_runtime::bus::{self, Bus, BusError};
use portcullis_runtime::crypto::{Purpose, Sealer};
use portcullis_runtime::flow::paths;
use portcullis_runtime::{Config, Shutdown, buckets};
use portcullis_schemas::{ServiceName, names_endpoint as endpoint};
use tracing::{info, warn};

use crate::directory::{self, Directory};
use crate::handlers::{self, Store};
use crate::lease::LeaseHolder;
use crate::lifecycle;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot connect to NATS: {0}")]
    Nats(#[from] BusError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("directory: {0}")]
    Directory(#[from] portcullis_directory::ProviderError),
}

/// The cache service, ready to run.
pub struct App {
    config: Arc<Config>,
    bus: Bus,
    http: reqwest::Client,
    provider: Option<Arc<dyn portcullis_directory::Provider>>,
}

impl App {
    pub async fn build(config: Arc<Config>) -> Result<App, BuildError> {
        let http = http_client().map_err(BuildError::Http)?;
        let provider = match &config.directory {
            Some(d) => Some(Arc::from(portcullis_directory::provider(d)?)),
            None => None,
        };
        let bus = Bus::connect(&config.nats, "portcullis-cache").await?.with_event_mode(config.events.mode);
        Ok(App { config, bus, http, provider })
    }

    /// Serve until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), BusError> {
        let App { config, bus, http, provider } = self;
        let want_directory = provider.is_some();
        let Some((sessions, users, leases, directory_bucket)) =
            bus::retry("opening the cache buckets", &shutdown, || async {
                let sessions = bus.bucket(&buckets::sessions(&config)).await?;
                let users = bus.bucket(&buckets::users(&config)).await?;
                let leases = bus.bucket(&buckets::leases(&config)).await?;
                let directory = match want_directory {
                    true => Some(bus.bucket(&buckets::directory(&config)).await?),
                    false => None,
                };
                bus.ensure_events_stream(&config.events).await?;
                Ok::<_, BusError>((sessions, users, leases, directory))
            })
            .await
        else {
            return Ok(());
        };
        let store = Arc::new(Store {
            bus: bus.clone(),
            sessions,
            users,
            session_lifetime: config.cookie.expire,
            token_sealer: Sealer::new(&config.shared_secret, Purpose::Tokens),
            provider: RwLock::new(None),
            discovery: handlers::Discovery {
                idp: config.idp.clone(),
                redirect: redirect_url(&config),
                http: http.clone(),
                last: std::sync::Mutex::new(None),
            },
        });
        let discovery = tokio::spawn(discover(store.clone(), config.clone(), http, shutdown.clone()));
        let Some(service) = bus::retry("registering the cache service", &shutdown, || {
            bus.start_service(ServiceName::Cache, "Portcullis sessions and users")
        })
        .await
        else {
            return Ok(());
        };
        // One endpoint per request type, each handler given the store.
        macro_rules! serve {
            ($name:expr, $handler:path) => {{
                let s = store.clone();
                service.endpoint($name, move |q| $handler(s.clone(), q), shutdown.clone()).await?
            }};
        }
        let directory: Option<Arc<Directory>> = match (provider, directory_bucket, &config.directory) {
            (Some(provider), Some(bucket), Some(settings)) => {
                Some(Arc::new(Directory { bus: bus.clone(), bucket, provider, config: settings.clone() }))
            }
            _ => None,
        };
        macro_rules! serve_directory {
            ($name:expr, $handler:path) => {{
                let d = directory.clone();
                service.endpoint($name, move |q| $handler(d.clone(), q), shutdown.clone()).await?
            }};
        }
        let endpoints = vec![
            serve!(endpoint::SESSION_CREATE, handlers::create_session),
            serve!(endpoint::SESSION_GET, handlers::get_session),
            serve!(endpoint::SESSION_REVOKE, handlers::revoke_session),
            serve!(endpoint::SESSION_LIST, handlers::list_sessions),
            serve!(endpoint::SESSION_REVOKE_WHERE, handlers::revoke_where),
            serve_directory!(endpoint::DIRECTORY_SYNC, directory::request_sync),
            serve_directory!(endpoint::DIRECTORY_SHOW, directory::show),
        ];
        let sync_job = directory.map(|d| {
            let lease = LeaseHolder::new(leases.clone(), directory::JOB, directory::lease_ttl(&d.config));
            tokio::spawn(directory::run(d, lease, shutdown.clone()))
        });
        let lease =
            LeaseHolder::new(leases, lifecycle::JOB, lifecycle::lease_ttl(config.sessions.sweep_interval));
        let job =
            tokio::spawn(lifecycle::run(store.clone(), lease, config.sessions.clone(), shutdown.clone()));
        info!(prefix = bus.contract().prefix(), "cache service ready");
        shutdown.wait().await;
        for e in endpoints {
            let _ = e.await;
        }
        let _ = tokio::join!(job, discovery);
        if let Some(sync) = sync_job {
            let _ = sync.await;
        }
        bus.flush().await;
        Ok(())
    }
}

/// Discover the IdP (for refreshes), retrying until it answers.
fn redirect_url(config: &Config) -> url::Url {
    let mut redirect = config.authenticate_url.clone();
    redirect.set_path(paths::OAUTH_CALLBACK);
    redirect
}

async fn discover(store: Arc<Store>, config: Arc<Config>, http: reqwest::Client, shutdown: Shutdown) {
    let redirect = redirect_url(&config);
    let mut delay = Duration::from_millis(200);
    loop {
        match Provider::discover(&config.idp, &redirect, http.clone()).await {
            Ok(p) => {
                info!(issuer = p.issuer(), "identity provider discovered (for refreshes)");
                store.set_provider(p);
                return;
            }
            Err(error) => warn!(%error, retry_in = ?delay, "IdP discovery failed"),
        }
        if shutdown.sleep_or_stop(delay).await {
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}
