use std::sync::Arc;

use portcullis_runtime::bus::{self, Bus, BusError};
use portcullis_runtime::{Config, Shutdown, buckets};
use portcullis_schemas::ServiceName;
use portcullis_schemas::names_endpoint as endpoint;
use tracing::info;

use crate::handlers::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot connect to NATS: {0}")]
    Nats(#[from] BusError),
}

/// The cache service, ready to run.
pub struct App {
    config: Arc<Config>,
    bus: Bus,
}

impl App {
    pub async fn build(config: Arc<Config>) -> Result<App, BuildError> {
        let bus = Bus::connect(&config.nats, "portcullis-cache").await?;
        Ok(App { config, bus })
    }

    /// Serve until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), BusError> {
        let App { config, bus } = self;
        let Some((sessions, users)) =
            bus::retry("opening the sessions and users buckets", &shutdown, || async {
                let sessions = bus.bucket(&buckets::sessions(&config)).await?;
                let users = bus.bucket(&buckets::users(&config)).await?;
                bus.ensure_events_stream(buckets::EVENTS_MAX_AGE).await?;
                Ok::<_, BusError>((sessions, users))
            })
            .await
        else {
            return Ok(());
        };
        let store =
            Arc::new(Store { bus: bus.clone(), sessions, users, session_lifetime: config.cookie.expire });
        let Some(service) = bus::retry("registering the cache service", &shutdown, || {
            bus.start_service(ServiceName::Cache, "Portcullis sessions and users")
        })
        .await
        else {
            return Ok(());
        };
        let s = store.clone();
        let create = service
            .endpoint(
                endpoint::SESSION_CREATE,
                move |q| handlers::create_session(s.clone(), q),
                shutdown.clone(),
            )
            .await?;
        let s = store.clone();
        let get = service
            .endpoint(endpoint::SESSION_GET, move |q| handlers::get_session(s.clone(), q), shutdown.clone())
            .await?;
        let s = store.clone();
        let revoke = service
            .endpoint(
                endpoint::SESSION_REVOKE,
                move |q| handlers::revoke_session(s.clone(), q),
                shutdown.clone(),
            )
            .await?;
        info!(prefix = bus.contract().prefix(), "cache service ready");
        shutdown.wait().await;
        let _ = tokio::join!(create, get, revoke);
        bus.flush().await;
        Ok(())
    }
}
