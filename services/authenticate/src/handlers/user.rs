//! `GET /.portcullis/` on route hosts: who you are signed in as.

use chrono::DateTime;
use portcullis_runtime::flow::paths;
use portcullis_runtime::pages;
use portcullis_schemas::messages::{GetSessionRequest, SessionReply};
use tracing::warn;

use super::Ctx;
use crate::http::{Reply, Request};

pub async fn handle(ctx: &Ctx, req: &Request<'_>) -> Reply {
    let session = match &req.raw.session_id {
        None => None,
        Some(id) => {
            let get = GetSessionRequest { session_id: id.clone() };
            match ctx.bus.request::<_, SessionReply>(ctx.bus.contract().cache_session_get(), &get).await {
                Ok(r) => r.session,
                Err(e) => {
                    warn!(error = %e, "session lookup failed");
                    return Reply::error(
                        req,
                        503,
                        "Unavailable",
                        "The session store is not reachable; try again.",
                    );
                }
            }
        }
    };
    let Some(s) = session else {
        return Reply::error(
            req,
            401,
            "Not signed in",
            "Your session has ended. Reload the page to sign in again.",
        );
    };
    let groups = if s.identity.groups.is_empty() {
        "<em>none</em>".to_owned()
    } else {
        s.identity
            .groups
            .iter()
            .map(|g| format!("<code>{}</code>", pages::escape(g)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let expires = DateTime::from_timestamp(s.expires_at, 0).map(|t| t.to_rfc2822()).unwrap_or_default();
    let body = format!(
        "<dl><dt>Email</dt><dd>{email}</dd><dt>Name</dt><dd>{name}</dd><dt>User ID</dt><dd><code>{user}</code></dd>\
         <dt>Groups</dt><dd>{groups}</dd><dt>Session expires</dt><dd>{expires}</dd><dt>Identity provider</dt><dd>{idp}</dd></dl>\
         <form method=\"post\" action=\"{sign_out}\"><button type=\"submit\">Sign out</button></form>",
        email = pages::escape(s.identity.email.as_deref().unwrap_or("")),
        name = pages::escape(s.identity.name.as_deref().unwrap_or("")),
        user = pages::escape(&s.identity.user_id),
        idp = pages::escape(&s.idp),
        sign_out = paths::SIGN_OUT,
    );
    Reply::html(200, pages::page("Your session", &body))
}
