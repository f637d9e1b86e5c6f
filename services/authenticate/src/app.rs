use std::sync::Arc;
use std::time::Duration;

use portcullis_runtime::bus::{self, Bus, BusError};
use portcullis_runtime::{Config, Shutdown, buckets};
use portcullis_schemas::{ServiceName, names_endpoint as endpoint};
use tracing::{info, warn};

use portcullis_runtime::reload::LiveConfig;

use crate::handlers::{self, Ctx};
use portcullis_oidc::{Provider, http_client};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot connect to NATS: {0}")]
    Nats(#[from] BusError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The authenticate service, ready to run.
pub struct App {
    config: Arc<Config>,
    bus: Bus,
    http: reqwest::Client,
    live: LiveConfig,
}

impl App {
    pub async fn build(config: Arc<Config>, live: LiveConfig) -> Result<App, BuildError> {
        let http = http_client().map_err(BuildError::Http)?;
        let bus = Bus::connect(&config.nats, "portcullis-authenticate").await?;
        Ok(App { config, bus, http, live })
    }

    /// Serve until `shutdown`. Discovery runs in the background and is retried until the IdP
    /// answers; until then sign-ins get a 503.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), BusError> {
        let App { config, bus, http, live } = self;
        let spec = buckets::logins(&config);
        let Some(logins) = bus::retry("opening the logins bucket", &shutdown, || bus.bucket(&spec)).await
        else {
            return Ok(());
        };
        let ctx = Arc::new(Ctx::new(config.clone(), live, bus.clone(), logins, http));
        let discovery = tokio::spawn(discover(ctx.clone(), shutdown.clone()));
        let Some(service) = bus::retry("registering the authenticate service", &shutdown, || {
            bus.start_service(ServiceName::Authenticate, "Portcullis sign-in with the identity provider")
        })
        .await
        else {
            return Ok(());
        };
        let c = ctx.clone();
        let http_endpoint =
            service.endpoint(endpoint::HTTP, move |q| handlers::http(c.clone(), q), shutdown.clone()).await?;
        info!(authenticate_url = %config.authenticate_url, "authenticate service ready");
        shutdown.wait().await;
        let _ = tokio::join!(http_endpoint, discovery);
        Ok(())
    }
}

async fn discover(ctx: Arc<Ctx>, shutdown: Shutdown) {
    let redirect = handlers::callback_redirect_url(&ctx);
    let mut delay = Duration::from_millis(200);
    loop {
        match Provider::discover(&ctx.config.idp, &redirect, ctx.http.clone()).await {
            Ok(p) => {
                ctx.set_provider(p);
                return;
            }
            Err(error) => {
                warn!(%error, idp = %ctx.config.idp.provider_url, retry_in = ?delay, "IdP discovery failed")
            }
        }
        if shutdown.sleep_or_stop(delay).await {
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}
