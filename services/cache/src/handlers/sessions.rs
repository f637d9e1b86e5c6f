//! `cache.session.*`: create, get, list, revoke.

use std::sync::Arc;

use portcullis_runtime::bucket::KvError;
use portcullis_runtime::crypto::random_token;
use portcullis_runtime::{buckets, now_unix};
use portcullis_schemas::events::{SessionCreated, SessionRevoked, UserUpdated};
use portcullis_schemas::messages::{
    CreateSessionReply, CreateSessionRequest, ErrorCode, ErrorReply, GetSessionRequest, ListSessionsReply,
    ListSessionsRequest, RevokeReason, RevokeSessionRequest, RevokeWhereRequest, RevokedReply, Session,
    SessionReply, SessionSummary, User,
};
use tracing::info;

use super::{Store, publish, rfc3339, short, unavailable};

/// Bytes of randomness in a session id (256 bits).
const SESSION_ID_BYTES: usize = 32;
/// Longest user id accepted from the IdP.
const MAX_USER_ID: usize = 1024;

pub async fn create_session(
    store: Arc<Store>,
    req: CreateSessionRequest,
) -> Result<CreateSessionReply, ErrorReply> {
    if req.identity.user_id.is_empty()
        || req.identity.user_id.len() > MAX_USER_ID
        || req.sealed_tokens.is_empty()
    {
        return Err(ErrorReply {
            code: ErrorCode::BadRequest,
            message: "identity.user_id (at most 1024 bytes) and sealed_tokens are required".into(),
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
        tokens_expire_at: req.tokens_expire_at,
        refreshed_at: None,
    };
    // The user record is written first so authorize never sees a session without its user.
    save_user(&store, &session, now).await?;
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

/// Write the user record of `session`'s identity; publish `user.updated` when email, name or
/// groups changed (or the user is new).
pub(crate) async fn save_user(store: &Store, session: &Session, now: i64) -> Result<(), ErrorReply> {
    let id = &session.identity;
    let key = buckets::user_key(&id.user_id);
    let previous =
        store.users.get(&key).await.map_err(|e| unavailable("reading the user", e))?.map(|(u, _)| u);
    let user = User {
        id: id.user_id.clone(),
        email: id.email.clone(),
        name: id.name.clone(),
        groups: id.groups.clone(),
        claims: id.claims.clone(),
        updated_at: now,
    };
    let mut changed = Vec::new();
    match &previous {
        None => changed.extend(["email", "name", "groups"].map(String::from)),
        Some(p) => {
            if p.email != user.email {
                changed.push("email".to_owned());
            }
            if p.name != user.name {
                changed.push("name".to_owned());
            }
            if p.groups != user.groups {
                changed.push("groups".to_owned());
            }
        }
    }
    store.users.put(&key, &user).await.map_err(|e| unavailable("writing the user", e))?;
    if !changed.is_empty() {
        publish(
            &store.bus,
            &UserUpdated {
                user_id: user.id.clone(),
                email: user.email.clone(),
                name: user.name.clone(),
                groups: user.groups.clone(),
                changed,
                idp: session.idp.clone(),
                updated_at: rfc3339(now),
            },
        )
        .await;
    }
    Ok(())
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
    let session = revoke_one(&store, &req.session_id, req.reason).await?;
    Ok(SessionReply { session })
}

/// Delete `id` (whatever its revision by the time we get there) and publish
/// `session.revoked`. `None` if there was no such session.
pub(crate) async fn revoke_one(
    store: &Store,
    id: &str,
    reason: RevokeReason,
) -> Result<Option<Session>, ErrorReply> {
    loop {
        let Some((session, revision)) =
            store.sessions.get(id).await.map_err(|e| unavailable("reading the session", e))?
        else {
            return Ok(None);
        };
        match store.sessions.delete_at(&session.id, revision).await {
            Ok(()) => {}
            // Changed under us (refreshed or revoked elsewhere): read again.
            Err(KvError::Conflict) => continue,
            Err(e) => return Err(unavailable("deleting the session", e)),
        }
        info!(session = %short(&session.id), user = %session.identity.user_id, reason = reason.as_str(), "session revoked");
        publish(
            &store.bus,
            &SessionRevoked {
                session_id: session.id.clone(),
                user_id: session.identity.user_id.clone(),
                email: session.identity.email.clone(),
                idp: session.idp.clone(),
                reason,
                revoked_at: rfc3339(now_unix()),
            },
        )
        .await;
        return Ok(Some(session));
    }
}

/// Every live session, read from KV (never from memory).
pub(crate) async fn all_sessions(store: &Store) -> Result<Vec<(Session, u64)>, ErrorReply> {
    let keys = store.sessions.keys().await.map_err(|e| unavailable("listing sessions", e))?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(found) =
            store.sessions.get(&key).await.map_err(|e| unavailable("reading a session", e))?
        {
            out.push(found);
        }
    }
    Ok(out)
}

/// Whether `session` belongs to `user` (an email, compared case-insensitively, or a user id).
fn belongs_to(session: &Session, user: &str) -> bool {
    session.identity.user_id == user
        || session.identity.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(user.trim()))
}

pub async fn list_sessions(
    store: Arc<Store>,
    req: ListSessionsRequest,
) -> Result<ListSessionsReply, ErrorReply> {
    let now = now_unix();
    let mut sessions: Vec<SessionSummary> = all_sessions(&store)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .filter(|s| s.expires_at > now && req.user.as_deref().is_none_or(|u| belongs_to(s, u)))
        .map(|s| SessionSummary {
            id: s.id,
            user_id: s.identity.user_id,
            email: s.identity.email,
            idp: s.idp,
            created_at: s.created_at,
            expires_at: s.expires_at,
            refreshed_at: s.refreshed_at,
        })
        .collect();
    sessions.sort_by_key(|s| s.created_at);
    Ok(ListSessionsReply { sessions })
}

pub async fn revoke_where(store: Arc<Store>, req: RevokeWhereRequest) -> Result<RevokedReply, ErrorReply> {
    if req.user.is_none() && req.idp_session_id.is_none() {
        return Err(ErrorReply {
            code: ErrorCode::BadRequest,
            message: "give a user or an idp_session_id".into(),
        });
    }
    let matching: Vec<String> = all_sessions(&store)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .filter(|s| req.user.as_deref().is_none_or(|u| belongs_to(s, u)))
        .filter(|s| req.user_id.as_deref().is_none_or(|id| s.identity.user_id == id))
        .filter(|s| req.idp_session_id.as_deref().is_none_or(|sid| s.idp_session_id.as_deref() == Some(sid)))
        .map(|s| s.id)
        .collect();
    let mut session_ids = Vec::with_capacity(matching.len());
    for id in matching {
        if revoke_one(&store, &id, req.reason).await?.is_some() {
            session_ids.push(id);
        }
    }
    Ok(RevokedReply { session_ids })
}
