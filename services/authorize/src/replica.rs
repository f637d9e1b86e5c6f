//! The in-memory replica of sessions, users and the synced directory, fed by KV watchers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use portcullis_runtime::Shutdown;
use portcullis_runtime::bucket::{Bucket, Change};
use portcullis_runtime::buckets::{directory_group_key, directory_user_key};
use portcullis_schemas::messages::{DirectoryRecord, Session, User};
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
    directory: Arc<RwLock<DirectoryIndex>>,
}

/// The directory bucket, with users also found by email.
#[derive(Default)]
pub struct DirectoryIndex {
    records: HashMap<String, Arc<DirectoryRecord>>,
    /// Lower-cased email → user key.
    by_email: HashMap<String, String>,
}

impl DirectoryIndex {
    fn email_of(record: &DirectoryRecord) -> Option<&str> {
        match record {
            DirectoryRecord::User(u) => u.email.as_deref(),
            _ => None,
        }
    }

    fn unindex(&mut self, key: &str) {
        if let Some(email) = self.records.get(key).and_then(|r| Self::email_of(r))
            && self.by_email.get(email).is_some_and(|k| k == key)
        {
            let email = email.to_owned();
            self.by_email.remove(&email);
        }
    }

    fn put(&mut self, key: String, value: Arc<DirectoryRecord>) {
        self.unindex(&key);
        if let Some(email) = Self::email_of(&value) {
            self.by_email.insert(email.to_owned(), key.clone());
        }
        self.records.insert(key, value);
    }

    fn remove(&mut self, key: &str) {
        self.unindex(key);
        self.records.remove(key);
    }

    /// The groups (ids, then names where they differ) of the directory user with `user_id`,
    /// else of the one with `email`; `None` when the directory does not know the person.
    fn groups(&self, user_id: &str, email: Option<&str>) -> Option<Vec<String>> {
        let user = match self.records.get(&directory_user_key(user_id)).map(|r| &**r) {
            Some(DirectoryRecord::User(u)) => u,
            _ => {
                let key = self.by_email.get(&email?.to_lowercase())?;
                match self.records.get(key).map(|r| &**r) {
                    Some(DirectoryRecord::User(u)) => u,
                    _ => return None,
                }
            }
        };
        let mut out = Vec::with_capacity(user.groups.len() * 2);
        for id in &user.groups {
            out.push(id.clone());
        }
        for id in &user.groups {
            if let Some(DirectoryRecord::Group(g)) = self.records.get(&directory_group_key(id)).map(|r| &**r)
                && !g.name.is_empty()
                && !out.contains(&g.name)
            {
                out.push(g.name.clone());
            }
        }
        Some(out)
    }
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

    /// Directory groups of a person (see [`DirectoryIndex`]); `email` is used to find them
    /// only when the IdP has not said it is unverified.
    pub fn directory_groups(
        &self,
        user_id: &str,
        email: Option<&str>,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Vec<String>> {
        let verified = !matches!(claims.get("email_verified"), Some(serde_json::Value::Bool(false)));
        let email = email.filter(|_| verified);
        self.directory.read().ok()?.groups(user_id, email)
    }
}

/// Where a followed bucket's values land.
trait Mirror<T>: Send + Sync + 'static {
    /// Swap in a complete load; returns the keys no longer present.
    fn replace(&self, all: HashMap<String, Arc<T>>) -> Vec<String>;
    fn put(&self, key: String, value: Arc<T>);
    fn remove(&self, key: &str);
}

impl<T: Send + Sync + 'static> Mirror<T> for Map<T> {
    fn replace(&self, all: HashMap<String, Arc<T>>) -> Vec<String> {
        match self.write() {
            Ok(mut m) => {
                let gone = m.keys().filter(|k| !all.contains_key(*k)).cloned().collect();
                *m = all;
                gone
            }
            Err(_) => Vec::new(),
        }
    }

    fn put(&self, key: String, value: Arc<T>) {
        if let Ok(mut m) = self.write() {
            m.insert(key, value);
        }
    }

    fn remove(&self, key: &str) {
        if let Ok(mut m) = self.write() {
            m.remove(key);
        }
    }
}

impl Mirror<DirectoryRecord> for Arc<RwLock<DirectoryIndex>> {
    fn replace(&self, all: HashMap<String, Arc<DirectoryRecord>>) -> Vec<String> {
        let mut fresh = DirectoryIndex::default();
        for (k, v) in all {
            fresh.put(k, v);
        }
        match self.write() {
            Ok(mut d) => {
                let gone = d.records.keys().filter(|k| !fresh.records.contains_key(*k)).cloned().collect();
                *d = fresh;
                gone
            }
            Err(_) => Vec::new(),
        }
    }

    fn put(&self, key: String, value: Arc<DirectoryRecord>) {
        if let Ok(mut d) = self.write() {
            d.put(key, value);
        }
    }

    fn remove(&self, key: &str) {
        if let Ok(mut d) = self.write() {
            d.remove(key);
        }
    }
}

/// Keep `replica` in step with the two buckets until `shutdown`. `ready` turns true once both
/// initial loads are complete. On a watcher error the bucket is reloaded from scratch.
pub async fn follow(
    replica: Arc<Replica>,
    sessions: Bucket<Session>,
    users: Bucket<User>,
    directory: Option<Bucket<DirectoryRecord>>,
    removed: impl Fn(&str) + Send + Sync + 'static,
    ready: watch::Sender<bool>,
    shutdown: Shutdown,
) {
    let (s_ready_tx, mut s_ready) = watch::channel(false);
    let (u_ready_tx, mut u_ready) = watch::channel(false);
    let (d_ready_tx, mut d_ready) = watch::channel(directory.is_none());
    let d_task = directory.map(|bucket| {
        tokio::spawn(follow_one(
            "directory",
            bucket,
            replica.directory.clone(),
            |_: &str| {},
            d_ready_tx,
            shutdown.clone(),
        ))
    });
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
        let _ = d_ready.wait_for(|v| *v).await;
    };
    tokio::select! {
        _ = both => { let _ = ready.send(true); }
        _ = shutdown.wait() => {}
    }
    let _ = tokio::join!(s_task, u_task);
    if let Some(d) = d_task {
        let _ = d.await;
    }
}

async fn follow_one<T>(
    name: &'static str,
    bucket: Bucket<T>,
    map: impl Mirror<T>,
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
                (None, Change::Put { key, value, .. }) => map.put(key, Arc::new(value)),
                (None, Change::Delete { key }) => {
                    map.remove(&key);
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
    map: &impl Mirror<T>,
    fresh: &mut Option<HashMap<String, Arc<T>>>,
    removed: &impl Fn(&str),
    ready: &watch::Sender<bool>,
) {
    let Some(f) = fresh.take() else { return };
    let count = f.len();
    let gone = map.replace(f);
    gone.iter().for_each(|k| removed(k));
    info!(bucket = name, count, "replica loaded");
    let _ = ready.send(true);
}
