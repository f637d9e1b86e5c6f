//! The cache service's request handlers: plain async functions over a [`Store`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use portcullis_runtime::bucket::{Bucket, KvError};
use portcullis_runtime::crypto::random_token;
use portcullis_runtime::{Bus, buckets, now_unix};
use portcullis_schemas::events::{EventData, SessionCreated, SessionRevoked};
use portcullis_schemas::messages::{
    CreateSessionReply, CreateSessionRequest, ErrorCode, ErrorReply, GetSessionRequest, RevokeSessionRequest,
    Session, SessionReply, User,
};
use tracing::{error, info};

/// Bytes of randomness in a session id (256 bits).
const SESSION_ID_BYTES: usize = 32;

/// What the handlers write to.
pub struct Store {
    pub bus: Bus,
    pub sessions: Bucket<Session>,
    pub users: Bucket<User>,
    /// `cookie_expire`: no session outlives it.
    pub session_lifetime: Duration,
}

fn unavailable(what: &str, e: KvError) -> ErrorReply {
    error!(error = %e, "{what} failed");
    ErrorReply { code: ErrorCode::Unavailable, message: format!("{what} failed; retry") }
}

fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0).unwrap_or_default().to_rfc3339()
}

pub async fn create_session(
    store: Arc<Store>,
    req: CreateSessionRequest,
) -> Result<CreateSessionReply, ErrorReply> {
    if req.identity.user_id.is_empty() || req.sealed_tokens.is_empty() {
        return Err(ErrorReply {
            code: ErrorCode::BadRequest,
            message: "identity.user_id and sealed_tokens are required".into(),
        });
    }
    let now = now_unix();
    let max = now + store.session_lifetime.as_secs() as i64;
    let expires_at = if req.expires_at > now { req.expires_at.min(max) } else { max };
    let session = Session {
        id: random_token(SESSION_ID_BYTES),
        identity: req.identity,
        idp: req.idp,
        idp_session_id: req.idp_session_id,
        sealed_tokens: req.sealed_tokens,
        created_at: now,
        expires_at,
    };
    let user = User {
        id: session.identity.user_id.clone(),
        email: session.identity.email.clone(),
        name: session.identity.name.clone(),
        groups: session.identity.groups.clone(),
        claims: session.identity.claims.clone(),
        updated_at: now,
    };
    // The user record is written first so authorize never sees a session without its user.
    check_user_id(&user.id)?;
    store
        .users
        .put(&buckets::user_key(&user.id), &user)
        .await
        .map_err(|e| unavailable("writing the user", e))?;
    store.sessions.create(&session.id, &session).await.map_err(|e| unavailable("writing the session", e))?;
    info!(session = %short(&session.id), user = %session.identity.user_id, "session created");
    publish(
        &store.bus,
        &SessionCreated {
            session_id: session.id.clone(),
            user_id: session.identity.user_id.clone(),
            email: session.identity.email.clone(),
            idp: session.idp.clone(),
            created_at: rfc3339(now),
            expires_at: rfc3339(expires_at),
        },
    )
    .await;
    Ok(CreateSessionReply { session_id: session.id, expires_at })
}

pub async fn get_session(store: Arc<Store>, req: GetSessionRequest) -> Result<SessionReply, ErrorReply> {
    let found =
        store.sessions.get(&req.session_id).await.map_err(|e| unavailable("reading the session", e))?;
    let session = found.map(|(s, _)| s).filter(|s| s.expires_at > now_unix());
    Ok(SessionReply { session })
}

pub async fn revoke_session(
    store: Arc<Store>,
    req: RevokeSessionRequest,
) -> Result<SessionReply, ErrorReply> {
    loop {
        let Some((session, revision)) =
            store.sessions.get(&req.session_id).await.map_err(|e| unavailable("reading the session", e))?
        else {
            return Ok(SessionReply { session: None });
        };
        match store.sessions.delete_at(&session.id, revision).await {
            Ok(()) => {}
            // Changed under us (refreshed or revoked elsewhere): read again.
            Err(KvError::Conflict) => continue,
            Err(e) => return Err(unavailable("deleting the session", e)),
        }
        info!(session = %short(&session.id), user = %session.identity.user_id, reason = req.reason.as_str(), "session revoked");
        publish(
            &store.bus,
            &SessionRevoked {
                session_id: session.id.clone(),
                user_id: session.identity.user_id.clone(),
                email: session.identity.email.clone(),
                idp: session.idp.clone(),
                reason: req.reason,
                revoked_at: rfc3339(now_unix()),
            },
        )
        .await;
        return Ok(SessionReply { session: Some(session) });
    }
}

/// Publish an event; the state change already happened, so a failure is logged, not returned.
async fn publish<E: EventData>(bus: &Bus, event: &E) {
    if let Err(e) = bus.publish_event(event).await {
        error!(error = %e, kind = E::KIND, subject = event.subject(), "event lost after retries");
    }
}

fn check_user_id(user_id: &str) -> Result<(), ErrorReply> {
    if user_id.len() > 1024 {
        return Err(ErrorReply { code: ErrorCode::BadRequest, message: "user id too long".into() });
    }
    Ok(())
}

/// The first characters of a session id, enough to correlate logs, useless to an attacker.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
