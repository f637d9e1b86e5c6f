//! Sign-out on route hosts (the proxy carries the session id and clears its cookie), and the
//! page the IdP returns to afterwards.

use portcullis_runtime::flow::paths;
use portcullis_runtime::pages;
use portcullis_schemas::messages::{RevokeReason, RevokeSessionRequest, SessionReply};
use tracing::{info, warn};

use super::Ctx;
use crate::http::{Reply, Request};
use portcullis_oidc::TOKENS_AAD;
use portcullis_oidc::TokenSet;

/// GET asks to confirm: signing out by a plain link would let any page sign people out.
pub fn confirm() -> Reply {
    Reply::html(
        200,
        pages::page(
            "Sign out",
            &format!(
                "<form method=\"post\" action=\"{}\"><p>Sign out of this site?</p>\
                 <button type=\"submit\">Sign out</button></form>",
                paths::SIGN_OUT
            ),
        ),
    )
}

pub async fn handle(ctx: &Ctx, req: &Request<'_>) -> Reply {
    let mut id_token = None;
    if let Some(session_id) = &req.raw.session_id {
        let revoke = RevokeSessionRequest { session_id: session_id.clone(), reason: RevokeReason::SignOut };
        match ctx.bus.request::<_, SessionReply>(ctx.bus.contract().cache_session_revoke(), &revoke).await {
            Ok(SessionReply { session: Some(s) }) => {
                info!(user = %s.identity.user_id, "signed out");
                id_token = ctx
                    .token_sealer
                    .open_json::<TokenSet>(&s.sealed_tokens, TOKENS_AAD)
                    .ok()
                    .map(|t| t.id_token);
            }
            Ok(SessionReply { session: None }) => {}
            Err(e) => {
                warn!(error = %e, "session revoke failed");
                return Reply::error(
                    req,
                    503,
                    "Sign-out failed",
                    "The session store is not reachable; try again.",
                );
            }
        }
    }
    let mut signed_out = ctx.config.authenticate_url.clone();
    signed_out.set_path(paths::SIGNED_OUT);
    let location = ctx
        .provider()
        .and_then(|p| p.end_session_url(id_token.as_deref(), &signed_out))
        .unwrap_or(signed_out);
    Reply::redirect(location.as_str())
}

pub fn signed_out() -> Reply {
    Reply::html(200, pages::page("Signed out", "<p>You are signed out. You can close this window.</p>"))
}
