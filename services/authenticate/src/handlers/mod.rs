//! The authenticate service's HTTP endpoints (carried over NATS), one file each.

mod backchannel;
mod callback;
pub use callback::redirect_url as callback_redirect_url;
mod sign_in;
mod sign_out;
mod user;

use std::sync::{Arc, RwLock};

use portcullis_runtime::Bus;
use portcullis_runtime::bucket::Bucket;
use portcullis_runtime::config::Config;
use portcullis_runtime::crypto::{Purpose, Sealer, Signer};
use portcullis_runtime::flow::paths;
use portcullis_schemas::messages::{ErrorReply, HttpReply, HttpRequest};
use tracing::info;

use crate::http::{Reply, Request};
use portcullis_oidc::Provider;

/// Cookie on the authenticate host binding a login to the browser that started it.
pub const LOGIN_BINDING_COOKIE: &str = "_portcullis_login";

/// Everything the handlers use.
pub struct Ctx {
    pub config: Arc<Config>,
    pub bus: Bus,
    /// Sealed [`portcullis_schemas::messages::LoginState`]s by OAuth `state`.
    pub logins: Bucket<String>,
    pub provider: RwLock<Option<Arc<Provider>>>,
    pub http: reqwest::Client,
    pub login_sealer: Sealer,
    pub token_sealer: Sealer,
    pub handle_sealer: Sealer,
    pub sign_in_signer: Signer,
    /// The current routes (redirect targets must be route hosts; reloaded with the file).
    pub live: portcullis_runtime::reload::LiveConfig,
    /// When discovery last ran on demand (unknown signing key), to rate-limit it.
    last_rediscovery: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Ctx {
    pub fn new(
        config: Arc<Config>,
        live: portcullis_runtime::reload::LiveConfig,
        bus: Bus,
        logins: Bucket<String>,
        http: reqwest::Client,
    ) -> Ctx {
        let shared = &config.shared_secret;
        Ctx {
            login_sealer: Sealer::new(shared, Purpose::LoginState),
            token_sealer: Sealer::new(shared, Purpose::Tokens),
            handle_sealer: Sealer::new(shared, Purpose::CallbackHandle),
            sign_in_signer: Signer::new(shared, Purpose::SignInUrl),
            provider: RwLock::new(None),
            last_rediscovery: std::sync::Mutex::new(None),
            live,
            config,
            bus,
            logins,
            http,
        }
    }

    pub fn provider(&self) -> Option<Arc<Provider>> {
        self.provider.read().ok()?.clone()
    }

    pub fn set_provider(&self, provider: Provider) {
        info!(issuer = provider.issuer(), "identity provider discovered");
        if let Ok(mut p) = self.provider.write() {
            *p = Some(Arc::new(provider));
        }
    }

    /// Whether an on-demand re-discovery may run now (at most once a minute).
    pub fn may_rediscover(&self) -> bool {
        let Ok(mut last) = self.last_rediscovery.lock() else { return false };
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(60)) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Host of the authenticate service URL (lower case).
    fn authenticate_host(&self) -> String {
        self.config.authenticate_url.host_str().unwrap_or_default().to_ascii_lowercase()
    }
}

/// Strip the port from a Host value and lower-case it.
pub fn bare_host(host: &str) -> String {
    let host = if host.starts_with('[') {
        host.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h).to_owned()
    };
    host.to_ascii_lowercase()
}

/// Serve one HTTP request.
pub async fn http(ctx: Arc<Ctx>, raw: HttpRequest) -> Result<HttpReply, ErrorReply> {
    let req = Request::new(&raw);
    let on_authenticate_host = bare_host(&raw.host) == ctx.authenticate_host();
    let reply = match (on_authenticate_host, raw.method.as_str(), req.path) {
        (true, "GET", paths::SIGN_IN) => sign_in::handle(&ctx, &req).await,
        (true, "GET", paths::OAUTH_CALLBACK) => callback::handle(&ctx, &req).await,
        (true, "GET", paths::SIGNED_OUT) => sign_out::signed_out(),
        (true, "POST", paths::BACKCHANNEL_LOGOUT) => backchannel::handle(&ctx, &req).await,
        (false, "GET", paths::USER) => user::handle(&ctx, &req).await,
        (false, "GET", paths::SIGN_OUT) => sign_out::confirm(),
        (false, "POST", paths::SIGN_OUT) => sign_out::handle(&ctx, &req).await,
        (_, "GET" | "POST", _) => Reply::error(&req, 404, "Not found", "There is nothing here."),
        _ => Reply::error(&req, 405, "Method not allowed", "This endpoint does not take that method."),
    };
    Ok(reply.into_http())
}
