//! The session lifecycle job (one instance at a time, under a lease): refresh tokens before
//! they expire, end sessions the IdP refuses to refresh, and remove expired sessions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use portcullis_oidc::{Provider, ProviderError, RefreshError, TOKENS_AAD, TokenSet};
use portcullis_runtime::bucket::KvError;
use portcullis_runtime::config::SessionsConfig;
use portcullis_runtime::{Shutdown, now_unix};
use portcullis_schemas::events::{SessionExpired, SessionRefreshed};
use portcullis_schemas::messages::{RevokeReason, Session};
use tracing::{info, warn};

use crate::handlers::{Store, publish, rfc3339, short};
use crate::lease::LeaseHolder;

/// The lease key of this job.
pub const JOB: &str = "session-lifecycle";
/// Longest wait between two refresh attempts of one session after transient failures.
const MAX_BACKOFF_SECS: i64 = 300;

/// Per-session retry state after transient IdP failures (lost harmlessly on restart).
#[derive(Default)]
struct Backoff {
    attempts: u32,
    next_at: i64,
}

pub async fn run(store: Arc<Store>, mut lease: LeaseHolder, settings: SessionsConfig, shutdown: Shutdown) {
    let mut backoff: HashMap<String, Backoff> = HashMap::new();
    loop {
        if lease.hold().await {
            sweep(&store, &mut lease, &settings, &mut backoff).await;
        }
        if shutdown.sleep_or_stop(settings.sweep_interval).await {
            return;
        }
    }
}

async fn sweep(
    store: &Store,
    lease: &mut LeaseHolder,
    settings: &SessionsConfig,
    backoff: &mut HashMap<String, Backoff>,
) {
    let sessions = match crate::handlers::all_sessions_for_sweep(store).await {
        Ok(s) => s,
        Err(error) => return warn!(error = %error.message, "session sweep could not list sessions"),
    };
    let now = now_unix();
    backoff.retain(|id, _| sessions.iter().any(|(s, _)| &s.id == id));
    for (session, revision) in sessions {
        if session.expires_at <= now {
            expire(store, session, revision).await;
            continue;
        }
        let due =
            session.tokens_expire_at.is_some_and(|t| t - now <= settings.refresh_before.as_secs() as i64);
        let waiting = backoff.get(&session.id).is_some_and(|b| b.next_at > now);
        // Re-check the lease before each call to the IdP: a refresh happens on one instance.
        if due && !waiting && lease.hold().await {
            refresh(store, session, revision, backoff).await;
        }
    }
}

async fn expire(store: &Store, session: Session, revision: u64) {
    match store.sessions.delete_at(&session.id, revision).await {
        Ok(()) => {}
        Err(KvError::Conflict) => return,
        Err(error) => return warn!(%error, "removing an expired session failed"),
    }
    info!(session = %short(&session.id), user = %session.identity.user_id, "session expired");
    publish(
        &store.bus,
        &SessionExpired {
            session_id: session.id.clone(),
            user_id: session.identity.user_id.clone(),
            email: session.identity.email.clone(),
            idp: session.idp.clone(),
            expired_at: rfc3339(now_unix()),
        },
    )
    .await;
}

async fn refresh(store: &Store, session: Session, revision: u64, backoff: &mut HashMap<String, Backoff>) {
    let Some(provider) = store.provider() else { return };
    let Ok(tokens) = store.token_sealer.open_json::<TokenSet>(&session.sealed_tokens, TOKENS_AAD) else {
        return warn!(session = %short(&session.id), "session tokens do not open; leaving the session to expire");
    };
    if tokens.refresh_token.is_none() {
        // Nothing to refresh with: the session lives until its own expiry.
        backoff.insert(session.id.clone(), Backoff { attempts: 0, next_at: session.expires_at });
        return;
    }
    match refreshed_session(store, &provider, &session, &tokens).await {
        Ok(updated) => {
            backoff.remove(&session.id);
            match store.sessions.update(&session.id, &updated, revision).await {
                Ok(_) => {}
                // Revoked or changed meanwhile: the next sweep sees the current record.
                Err(KvError::Conflict) => return,
                Err(error) => return warn!(%error, "storing a refreshed session failed"),
            }
            let now = now_unix();
            if let Err(error) = crate::handlers::save_user(store, &updated, now).await {
                warn!(error = %error.message, "updating the user after refresh failed");
            }
            info!(session = %short(&session.id), user = %session.identity.user_id, "session refreshed");
            publish(
                &store.bus,
                &SessionRefreshed {
                    session_id: updated.id.clone(),
                    user_id: updated.identity.user_id.clone(),
                    email: updated.identity.email.clone(),
                    idp: updated.idp.clone(),
                    refreshed_at: rfc3339(now),
                    tokens_expire_at: updated.tokens_expire_at.map(rfc3339),
                },
            )
            .await;
        }
        Err(RefreshError::Refused(why)) => {
            info!(session = %short(&session.id), user = %session.identity.user_id, reason = %why, "IdP refused the refresh; ending the session");
            backoff.remove(&session.id);
            if let Err(e) =
                crate::handlers::revoke_one(store, &session.id, RevokeReason::IdpRefreshFailed).await
            {
                warn!(error = %e.message, "revoking after a refused refresh failed");
            }
        }
        Err(RefreshError::Transient(why)) => {
            let entry = backoff.entry(session.id.clone()).or_default();
            entry.attempts += 1;
            let delay = (2i64.saturating_pow(entry.attempts)).min(MAX_BACKOFF_SECS);
            entry.next_at = now_unix() + delay;
            warn!(session = %short(&session.id), reason = %why, retry_in_secs = delay, "refresh failed; will retry");
        }
    }
}

/// Refresh at the IdP and build the updated session (tokens, claims, expiry).
async fn refreshed_session(
    store: &Store,
    provider: &Arc<Provider>,
    session: &Session,
    tokens: &TokenSet,
) -> Result<Session, RefreshError> {
    let new = provider.refresh(tokens).await?;
    let sub = session.identity.user_id.clone();
    let id_claims = if new.id_token == tokens.id_token {
        session.identity.claims.clone()
    } else {
        let verified = match provider.verify_refreshed_id_token(&new.id_token, &sub) {
            // The IdP rotated its keys: fetch them and verify once more.
            Err(ProviderError::UnknownKey) => match store.rediscover().await {
                Some(fresh) => fresh.verify_refreshed_id_token(&new.id_token, &sub),
                None => Err(ProviderError::UnknownKey),
            },
            other => other,
        };
        match verified {
            Ok(c) => c,
            Err(ProviderError::UnknownKey) => {
                return Err(RefreshError::Transient("ID token signed with a key not yet known".into()));
            }
            Err(e) => return Err(RefreshError::Refused(e.to_string())),
        }
    };
    let userinfo = provider
        .userinfo(&new.access_token, &sub)
        .await
        .map_err(|e| RefreshError::Transient(e.to_string()))?;
    let mut updated = session.clone();
    updated.identity = portcullis_oidc::identity(sub, id_claims, userinfo);
    updated.sealed_tokens = store.token_sealer.seal_json(&new, TOKENS_AAD);
    // Without a new ID token only the access token's expiry counts (the old ID token's
    // would make every sweep refresh again).
    updated.tokens_expire_at = if new.id_token == tokens.id_token {
        new.access_token_expires_at
    } else {
        portcullis_oidc::tokens_expire_at(&new)
    };
    updated.refreshed_at = Some(now_unix());
    Ok(updated)
}

/// How long a lease lasts relative to the sweep interval.
pub fn lease_ttl(sweep_interval: Duration) -> Duration {
    (sweep_interval * 3).max(Duration::from_secs(3))
}
