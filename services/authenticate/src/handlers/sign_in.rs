//! `GET /.portcullis/sign_in` on the authenticate host: check the proxy's signed redirect,
//! store a single-use login state, send the browser to the IdP.

use portcullis_runtime::bucket::KvError;
use portcullis_runtime::crypto::{random_token, sha256_b64};
use portcullis_runtime::flow::{self, params};
use portcullis_runtime::now_unix;
use portcullis_schemas::messages::LoginState;
use tracing::{info, warn};
use url::Url;

use super::{Ctx, LOGIN_BINDING_COOKIE};
use crate::http::{Reply, Request, set_cookie};

/// Bytes of randomness in `state`, `nonce` and the browser binding.
const TOKEN_BYTES: usize = 32;

pub async fn handle(ctx: &Ctx, req: &Request<'_>) -> Reply {
    let params = flow::SignInParams {
        redirect_uri: req.query(params::REDIRECT_URI),
        binding: req.query(params::BINDING),
        exp: req.query(params::EXPIRY),
        sig: req.query(params::SIGNATURE),
    };
    let flow::SignIn { redirect_uri: target, binding: route_binding } =
        match flow::verify_sign_in(&ctx.sign_in_signer, params, now_unix()) {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "sign-in link refused");
                return Reply::error(
                    req,
                    400,
                    "Invalid sign-in link",
                    &format!("This sign-in link cannot be used: {e}."),
                );
            }
        };
    // Signed by us, but check anyway: only configured route hosts are redirect targets.
    if !Url::parse(&target).is_ok_and(|u| ctx.live.borrow().is_route_url(&u)) {
        return Reply::error(
            req,
            400,
            "Invalid sign-in link",
            "The redirect target is not a configured route.",
        );
    }
    let Some(provider) = ctx.provider() else {
        return Reply::error(
            req,
            503,
            "Sign-in unavailable",
            "The identity provider is not reachable yet; try again shortly.",
        );
    };
    // Reuse the browser's binding if it has one, so parallel logins in two tabs both work.
    let binding = req
        .cookie(LOGIN_BINDING_COOKIE)
        .filter(|v| v.len() >= 43 && portcullis_runtime::bucket::kv_key_ok(v))
        .map(str::to_owned)
        .unwrap_or_else(|| random_token(TOKEN_BYTES));
    let state = random_token(TOKEN_BYTES);
    let nonce = random_token(TOKEN_BYTES);
    let (idp_url, pkce_verifier) = provider.authorize_url(&ctx.config.idp.scopes, &state, &nonce);
    let login = LoginState {
        redirect_uri: target,
        pkce_verifier,
        nonce,
        browser_binding: sha256_b64(binding.as_bytes()),
        route_binding,
        created_at: now_unix(),
    };
    let sealed = ctx.login_sealer.seal_json(&login, state.as_bytes());
    match ctx.logins.create(&state, &sealed).await {
        Ok(_) => {}
        Err(KvError::Conflict) => {
            return Reply::error(req, 500, "Sign-in failed", "Please try again.");
        }
        Err(e) => {
            warn!(error = %e, "storing login state failed");
            return Reply::error(
                req,
                503,
                "Sign-in unavailable",
                "The session store is not reachable; try again shortly.",
            );
        }
    }
    info!(
        target_host = Url::parse(&login.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default(),
        "login started"
    );
    let max_age = portcullis_runtime::buckets::LOGIN_STATE_TTL.as_secs() as i64;
    Reply::redirect(idp_url.as_str())
        .header("set-cookie", set_cookie(LOGIN_BINDING_COOKIE, &binding, "/", max_age, req.is_https()))
}
