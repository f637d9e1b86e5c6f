//! `GET /oauth2/callback` on the authenticate host: consume the login state exactly once,
//! exchange the code, verify the ID token, read userinfo, have cache create the session,
//! and send the browser to the route host's `/.portcullis/callback` with a sealed handle.

use std::sync::Arc;

use portcullis_runtime::bucket::KvError;
use portcullis_runtime::crypto::sha256_b64;
use portcullis_runtime::flow::{CallbackHandle, HANDLE_LIFETIME_SECS, params, paths};
use portcullis_runtime::now_unix;
use portcullis_schemas::messages::{CreateSessionReply, CreateSessionRequest, LoginState};
use serde_json::{Map, Value};
use tracing::{info, warn};
use url::Url;

use super::{Ctx, LOGIN_BINDING_COOKIE};
use crate::http::{Reply, Request, set_cookie};
use portcullis_oidc::TOKENS_AAD;
use portcullis_oidc::{Provider, ProviderError};

pub async fn handle(ctx: &Ctx, req: &Request<'_>) -> Reply {
    if let Some(error) = req.query("error") {
        warn!(error, "the IdP returned an error to the callback");
        return Reply::error(
            req,
            400,
            "Sign-in failed",
            &format!("The identity provider refused the sign-in ({error})."),
        );
    }
    let (Some(state), Some(code)) = (req.query("state"), req.query("code")) else {
        return Reply::error(req, 400, "Sign-in failed", "The callback is missing `state` or `code`.");
    };
    let login = match consume(ctx, state).await {
        Ok(l) => l,
        Err(reply) => return reply(req),
    };
    let binding = req.cookie(LOGIN_BINDING_COOKIE).map(|c| sha256_b64(c.as_bytes()));
    if binding.as_deref() != Some(login.browser_binding.as_str()) {
        warn!("login state presented by a browser that did not start it");
        return Reply::error(
            req,
            400,
            "Sign-in failed",
            "This sign-in was started in another browser. Start again.",
        );
    }
    let Some(provider) = ctx.provider() else {
        return Reply::error(
            req,
            503,
            "Sign-in unavailable",
            "The identity provider is not reachable; try again shortly.",
        );
    };
    let tokens = match provider.exchange(code, &login.pkce_verifier).await {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "code exchange failed");
            return Reply::error(
                req,
                502,
                "Sign-in failed",
                "The identity provider did not accept the sign-in. Start again.",
            );
        }
    };
    let id_claims = match verify(ctx, &provider, &tokens.id_token, &login.nonce).await {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "ID token rejected");
            return Reply::error(
                req,
                400,
                "Sign-in failed",
                "The identity provider's ID token did not verify.",
            );
        }
    };
    let sub = id_claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_owned();
    let userinfo = match provider.userinfo(&tokens.access_token, &sub).await {
        Ok(u) => u,
        Err(e) => {
            warn!(error = %e, "userinfo failed");
            return Reply::error(
                req,
                502,
                "Sign-in failed",
                "The identity provider's userinfo endpoint failed.",
            );
        }
    };
    let identity = portcullis_oidc::identity(sub, id_claims, userinfo);
    let idp_session_id = identity.claims.get("sid").and_then(Value::as_str).map(str::to_owned);
    let create = CreateSessionRequest {
        identity,
        idp: provider.issuer().to_owned(),
        idp_session_id,
        sealed_tokens: ctx.token_sealer.seal_json(&tokens, TOKENS_AAD),
        expires_at: now_unix() + ctx.config.cookie.expire.as_secs() as i64,
        tokens_expire_at: portcullis_oidc::tokens_expire_at(&tokens),
    };
    let created: CreateSessionReply =
        match ctx.bus.request(ctx.bus.contract().cache_session_create(), &create).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "session create failed");
                return Reply::error(
                    req,
                    503,
                    "Sign-in failed",
                    "The session store is not reachable; try again shortly.",
                );
            }
        };
    info!(user = %create.identity.user_id, "signed in");
    match handoff(ctx, &login, created) {
        // The authenticate-host binding has done its job.
        Some(location) => Reply::redirect(location.as_str())
            .header("set-cookie", set_cookie(LOGIN_BINDING_COOKIE, "", "/", 0, req.is_https())),
        None => Reply::error(req, 400, "Sign-in failed", "The redirect target is not a configured route."),
    }
}

type Refusal = fn(&Request<'_>) -> Reply;

/// Read and delete the login state at its revision: a second use finds nothing.
async fn consume(ctx: &Ctx, state: &str) -> Result<LoginState, Refusal> {
    fn unknown(req: &Request<'_>) -> Reply {
        Reply::error(
            req,
            400,
            "Sign-in failed",
            "This sign-in is unknown, expired or already used. Start again.",
        )
    }
    fn unavailable(req: &Request<'_>) -> Reply {
        Reply::error(
            req,
            503,
            "Sign-in unavailable",
            "The session store is not reachable; try again shortly.",
        )
    }
    let (sealed, revision) = match ctx.logins.get(state).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(unknown),
        Err(e) => {
            warn!(error = %e, "reading login state failed");
            return Err(unavailable);
        }
    };
    match ctx.logins.delete_at(state, revision).await {
        Ok(()) => {}
        Err(KvError::Conflict) => return Err(unknown),
        Err(e) => {
            warn!(error = %e, "consuming login state failed");
            return Err(unavailable);
        }
    }
    ctx.login_sealer.open_json(&sealed, state.as_bytes()).map_err(|_| unknown as Refusal)
}

/// Verify, re-discovering once if the token names a key we do not have (key rotation).
async fn verify(
    ctx: &Ctx,
    provider: &Arc<Provider>,
    id_token: &str,
    nonce: &str,
) -> Result<Map<String, Value>, ProviderError> {
    match provider.verify_id_token(id_token, nonce) {
        Err(ProviderError::UnknownKey) => {
            info!("ID token signed with an unknown key; refreshing the IdP's keys");
            let fresh = Provider::discover(&ctx.config.idp, &redirect_url(ctx), ctx.http.clone()).await?;
            let result = fresh.verify_id_token(id_token, nonce);
            ctx.set_provider(fresh);
            result
        }
        other => other,
    }
}

/// Our OAuth redirect URI.
pub fn redirect_url(ctx: &Ctx) -> Url {
    let mut url = ctx.config.authenticate_url.clone();
    url.set_path(paths::OAUTH_CALLBACK);
    url
}

/// The route host's callback URL carrying a sealed handle for the new session.
fn handoff(ctx: &Ctx, login: &LoginState, created: CreateSessionReply) -> Option<Url> {
    let redirect_uri = login.redirect_uri.as_str();
    let target = Url::parse(redirect_uri).ok().filter(|u| ctx.live.borrow().is_route_url(u))?;
    let host = target.host_str()?.to_ascii_lowercase();
    let handle = CallbackHandle {
        session_id: created.session_id,
        redirect_uri: redirect_uri.to_owned(),
        session_expires_at: created.expires_at,
        binding: login.route_binding.clone(),
        exp: now_unix() + HANDLE_LIFETIME_SECS,
    };
    let mut url = target.clone();
    url.set_path(paths::CALLBACK);
    url.set_query(None);
    url.set_fragment(None);
    url.query_pairs_mut().append_pair(params::HANDLE, &handle.seal(&ctx.handle_sealer, &host));
    Some(url)
}
