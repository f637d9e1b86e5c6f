//! The in-memory replica of sessions and users, fed by KV watchers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use portcullis_runtime::Shutdown;
use portcullis_runtime::bucket::{Bucket, Change};
use portcullis_schemas::messages::{Session, User};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{info, warn};

/// Sessions by id and users by bucket key, shared by every check.
type Map<T> = Arc<RwLock<HashMap<String, Arc<T>>>>;

#[derive(Default)]
pub struct Replica {
    sessions: Map<Session>,
    users: Map<User>,
}

impl Replica {
    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.read().ok()?.get(id).cloned()
    }

    pub fn user(&self, key: &str) -> Option<Arc<User>> {
        self.users.read().ok()?.get(key).cloned()
    }

    /// Remember a session read directly from KV (one not replicated yet).
    pub fn insert_session(&self, session: Session) -> Arc<Session> {
        let session = Arc::new(session);
        if let Ok(mut map) = self.sessions.write() {
            map.insert(session.id.clone(), session.clone());
        }
        session
    }

    /// Drop sessions past their expiry. The server removes them from KV by age without
    /// telling watchers, so the replica forgets them itself. Returns the ids dropped.
    pub fn prune_expired(&self, now: i64) -> Vec<String> {
        let Ok(mut map) = self.sessions.write() else { return Vec::new() };
        let expired: Vec<String> =
            map.values().filter(|s| s.expires_at <= now).map(|s| s.id.clone()).collect();
        for id in &expired {
            map.remove(id);
        }
        expired
    }

    pub fn session_count(&self) -> usize {
        self.sessions.read().map(|m| m.len()).unwrap_or(0)
    }
}

/// Keep `replica` in step with the two buckets until `shutdown`. `ready` turns true once both
/// initial loads are complete. On a watcher error the bucket is reloaded from scratch.
pub async fn follow(
    replica: Arc<Replica>,
    sessions: Bucket<Session>,
    users: Bucket<User>,
    removed: impl Fn(&str) + Send + Sync + 'static,
    ready: watch::Sender<bool>,
    shutdown: Shutdown,
) {
    let (s_ready_tx, mut s_ready) = watch::channel(false);
    let (u_ready_tx, mut u_ready) = watch::channel(false);
    let s_task = tokio::spawn(follow_one(
        "sessions",
        sessions,
        replica.sessions.clone(),
        removed,
        s_ready_tx,
        shutdown.clone(),
    ));
    let u_task = tokio::spawn(follow_one(
        "users",
        users,
        replica.users.clone(),
        |_: &str| {},
        u_ready_tx,
        shutdown.clone(),
    ));
    let both = async {
        let _ = s_ready.wait_for(|v| *v).await;
        let _ = u_ready.wait_for(|v| *v).await;
    };
    tokio::select! {
        _ = both => { let _ = ready.send(true); }
        _ = shutdown.wait() => {}
    }
    let _ = tokio::join!(s_task, u_task);
}

async fn follow_one<T>(
    name: &'static str,
    bucket: Bucket<T>,
    map: Map<T>,
    removed: impl Fn(&str) + Send + Sync,
    ready: watch::Sender<bool>,
    shutdown: Shutdown,
) where
    T: Serialize + DeserializeOwned + Send + Sync,
{
    let mut delay = std::time::Duration::from_millis(100);
    while !shutdown.is_fired() {
        let (empty, mut stream) = match bucket.watch_all().await {
            Ok((empty, s)) => (empty, Box::pin(s)),
            Err(error) => {
                warn!(%error, bucket = name, "cannot watch bucket; retrying");
                if shutdown.sleep_or_stop(delay).await {
                    return;
                }
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
                continue;
            }
        };
        // Load into a fresh map, swap it in when caught up, then apply changes in place.
        let mut fresh: Option<HashMap<String, Arc<T>>> = Some(HashMap::new());
        if empty {
            swap_in(name, &map, &mut fresh, &removed, &ready);
        }
        loop {
            let item = tokio::select! {
                i = stream.next() => i,
                _ = shutdown.wait() => return,
            };
            let watched = match item {
                Some(Ok(w)) => w,
                Some(Err(error)) => {
                    warn!(%error, bucket = name, "watch failed; reloading");
                    break;
                }
                None => {
                    warn!(bucket = name, "watch ended; reloading");
                    break;
                }
            };
            match (&mut fresh, watched.change) {
                (Some(f), Change::Put { key, value, .. }) => {
                    f.insert(key, Arc::new(value));
                }
                (Some(f), Change::Delete { key }) => {
                    f.remove(&key);
                }
                (None, Change::Put { key, value, .. }) => {
                    if let Ok(mut m) = map.write() {
                        m.insert(key, Arc::new(value));
                    }
                }
                (None, Change::Delete { key }) => {
                    if let Ok(mut m) = map.write() {
                        m.remove(&key);
                    }
                    removed(&key);
                }
                (_, Change::Undecodable { key, error }) => {
                    warn!(bucket = name, key, %error, "skipping undecodable value")
                }
            }
            if watched.caught_up {
                swap_in(name, &map, &mut fresh, &removed, &ready);
            }
        }
        if shutdown.sleep_or_stop(delay).await {
            return;
        }
    }
}

/// Replace the live map with the freshly loaded one (once per load).
fn swap_in<T>(
    name: &str,
    map: &Map<T>,
    fresh: &mut Option<HashMap<String, Arc<T>>>,
    removed: &impl Fn(&str),
    ready: &watch::Sender<bool>,
) {
    let Some(f) = fresh.take() else { return };
    let count = f.len();
    let gone: Vec<String> = match map.write() {
        Ok(mut m) => {
            let gone = m.keys().filter(|k| !f.contains_key(*k)).cloned().collect();
            *m = f;
            gone
        }
        Err(_) => Vec::new(),
    };
    gone.iter().for_each(|k| removed(k));
    info!(bucket = name, count, "replica loaded");
    let _ = ready.send(true);
}
