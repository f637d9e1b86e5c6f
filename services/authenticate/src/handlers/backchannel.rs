//! `POST /.portcullis/backchannel_logout` on the authenticate host: OIDC Back-Channel Logout
//! 1.0. The IdP posts a signed `logout_token`; every session it names is revoked.

use portcullis_oidc::{LogoutClaims, LogoutTokenError, Provider};
use portcullis_runtime::bucket::KvError;
use portcullis_runtime::crypto::sha256_b64;
use portcullis_runtime::now_unix;
use portcullis_schemas::messages::{RevokeReason, RevokeWhereRequest, RevokedReply};
use tracing::{info, warn};

use super::Ctx;
use super::callback::redirect_url;
use crate::http::{Reply, Request, form};

pub async fn handle(ctx: &Ctx, req: &Request<'_>) -> Reply {
    let fields = form(req);
    let Some(token) = fields.iter().find(|(k, _)| k == "logout_token").map(|(_, v)| v.as_str()) else {
        return refuse("missing logout_token");
    };
    let Some(provider) = ctx.provider() else {
        return Reply::new(503).header("content-type", "application/json");
    };
    let claims = match verify(ctx, &provider, token).await {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "back-channel logout token refused");
            return refuse(&e.to_string());
        }
    };
    // A logout token is good once: remember its jti for longer than tokens stay acceptable
    // (the logins bucket keeps entries 10 minutes; tokens older than 5 are refused).
    let replay_key =
        format!("jti-{}", sha256_b64(format!("{}\n{}", provider.issuer(), claims.jti).as_bytes()));
    let replay_revision = match ctx.logins.create(&replay_key, &String::new()).await {
        Ok(revision) => revision,
        Err(KvError::Conflict) => {
            warn!("back-channel logout token replayed");
            return refuse("logout_token already used");
        }
        Err(error) => {
            warn!(%error, "recording the logout token failed");
            return Reply::new(503).header("content-type", "application/json");
        }
    };
    let request = RevokeWhereRequest {
        user: None,
        user_id: claims.sub.clone(),
        idp_session_id: claims.sid.clone(),
        reason: RevokeReason::BackchannelLogout,
    };
    match ctx.bus.request::<_, RevokedReply>(ctx.bus.contract().cache_session_revoke_where(), &request).await
    {
        Ok(r) => {
            info!(
                sessions = r.session_ids.len(),
                user = claims.sub.as_deref().unwrap_or(""),
                "back-channel logout"
            );
            Reply::new(200)
        }
        Err(error) => {
            warn!(%error, "back-channel logout could not revoke");
            // Forget the jti so that the IdP's retry of this token is not taken for a replay.
            let _ = ctx.logins.delete_at(&replay_key, replay_revision).await;
            Reply::new(503).header("content-type", "application/json")
        }
    }
}

/// Verify, re-discovering once if the token names a key we do not have (key rotation).
async fn verify(ctx: &Ctx, provider: &Provider, token: &str) -> Result<LogoutClaims, LogoutTokenError> {
    match provider.verify_logout_token(token, now_unix()) {
        // Anyone can post here: re-discover for an unknown key at most once a minute.
        Err(LogoutTokenError::UnknownKey) if ctx.may_rediscover() => {
            let fresh = Provider::discover(&ctx.config.idp, &redirect_url(ctx), ctx.http.clone())
                .await
                .map_err(|_| LogoutTokenError::UnknownKey)?;
            let result = fresh.verify_logout_token(token, now_unix());
            ctx.set_provider(fresh);
            result
        }
        other => other,
    }
}

/// 400 with an OAuth-style error body (Back-Channel Logout 1.0, 2.8).
fn refuse(description: &str) -> Reply {
    let body = serde_json::json!({"error": "invalid_request", "error_description": description}).to_string();
    Reply::json(400, body)
}
