use std::sync::Arc;

use portcullis_runtime::bus::{self, Bus, BusError};
use portcullis_runtime::{Config, Shutdown, buckets};
use portcullis_schemas::{ServiceName, names_endpoint as endpoint};
use tokio::sync::watch;
use tracing::info;

use portcullis_runtime::reload::LiveConfig;

use crate::check::Checker;
use crate::jwt::Minter;
use crate::replica::{self, Replica};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot connect to NATS: {0}")]
    Nats(#[from] BusError),
}

/// The authorize service, ready to run.
pub struct App {
    config: Arc<Config>,
    bus: Bus,
    live: LiveConfig,
}

impl App {
    pub async fn build(config: Arc<Config>, live: LiveConfig) -> Result<App, BuildError> {
        let bus = Bus::connect(&config.nats, "portcullis-authorize").await?;
        Ok(App { config, bus, live })
    }

    /// Load the replica, then answer checks until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), BusError> {
        let App { config, bus, live } = self;
        let Some((sessions, users, directory)) =
            bus::retry("opening the sessions, users and directory buckets", &shutdown, || async {
                let directory = match config.directory {
                    Some(_) => Some(bus.bucket(&buckets::directory(&config)).await?),
                    None => None,
                };
                Ok::<_, BusError>((
                    bus.bucket(&buckets::sessions(&config)).await?,
                    bus.bucket(&buckets::users(&config)).await?,
                    directory,
                ))
            })
            .await
        else {
            return Ok(());
        };
        let replica = Arc::new(Replica::default());
        let minter = Arc::new(Minter::new(config.signing_key.clone()));
        let (ready_tx, mut ready) = watch::channel(false);
        let m = minter.clone();
        let follower = tokio::spawn(replica::follow(
            replica.clone(),
            sessions.clone(),
            users,
            directory,
            move |sid| m.forget(sid),
            ready_tx,
            shutdown.clone(),
        ));
        tokio::select! {
            _ = ready.wait_for(|r| *r) => {}
            _ = shutdown.wait() => return Ok(()),
        }
        let pruner = tokio::spawn(prune(replica.clone(), minter.clone(), shutdown.clone()));
        let checker = Arc::new(Checker {
            live: live.clone(),
            token_sealer: portcullis_runtime::crypto::Sealer::new(
                &config.shared_secret,
                portcullis_runtime::crypto::Purpose::Tokens,
            ),
            replica: replica.clone(),
            minter,
            sessions: Some(sessions),
        });
        let Some(service) = bus::retry("registering the authorize service", &shutdown, || {
            bus.start_service(ServiceName::Authorize, "Portcullis policy decisions")
        })
        .await
        else {
            return Ok(());
        };
        let c = checker.clone();
        let check = service
            .endpoint(
                endpoint::CHECK,
                move |q| {
                    let c = c.clone();
                    async move { c.check(q).await }
                },
                shutdown.clone(),
            )
            .await?;
        // Each check answers well within the proxy's own deadline for the message.
        let per_check = config.nats.request_timeout / 2;
        let check_batch = service
            .endpoint(
                endpoint::CHECK_BATCH,
                move |q| {
                    let c = checker.clone();
                    async move { Ok(c.check_batch(q, per_check).await) }
                },
                shutdown.clone(),
            )
            .await?;
        info!(routes = config.routes.len(), sessions = replica.session_count(), "authorize service ready");
        shutdown.wait().await;
        let _ = tokio::join!(check, check_batch, follower, pruner);
        Ok(())
    }
}

/// How often expired sessions are dropped from the replica.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

async fn prune(replica: Arc<Replica>, minter: Arc<Minter>, shutdown: Shutdown) {
    while !shutdown.sleep_or_stop(PRUNE_EVERY).await {
        for id in replica.prune_expired(portcullis_runtime::now_unix()) {
            minter.forget(&id);
        }
    }
}
