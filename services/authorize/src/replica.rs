//! The in-memory replica of sessions, users and the synced directory, fed by KV watchers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use portcullis_runtime::Shutdown;
use portcullis_runtime::bucket::{Bucket, Change};
use portcullis_runtime::buckets::directory_user_key;
use portcullis_schemas::messages::{DirectoryRecord, Session, User};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{info, warn};

/// How long a load waits for the next value of the history before starting over.
const LOAD_STALL: std::time::Duration = std::time::Duration::from_secs(5);

/// Sessions by id and users by bucket key, shared by every check.
type Map<T> = Arc<RwLock<HashMap<String, Arc<T>>>>;

#[derive(Default)]
pub struct Replica {
    sessions: Map<Session>,
    users: Map<User>,
    directory: Arc<RwLock<DirectoryIndex>>,
    /// Users-bucket keys by user id (see [`Replica::user_of`]).
    user_keys: RwLock<HashMap<String, Arc<str>>>,
}

/// Past this many remembered user keys, the memory starts again.
const MAX_USER_KEYS: usize = 65_536;

/// The directory bucket, with users also found by email.
#[derive(Default)]
pub struct DirectoryIndex {
    records: HashMap<String, Arc<DirectoryRecord>>,
    /// Lower-cased email → the keys of the users with it. An email two directory users share
    /// matches nobody: it cannot say which of them signed in.
    by_email: HashMap<String, Vec<String>>,
    /// Group id → name, so a check names a user's groups without hashing each id into a key.
    group_names: HashMap<String, String>,
}

impl DirectoryIndex {
    fn email_of(record: &DirectoryRecord) -> Option<&str> {
        match record {
            DirectoryRecord::User(u) => u.email.as_deref(),
            _ => None,
        }
    }

    fn unindex(&mut self, key: &str) {
        if let Some(DirectoryRecord::Group(g)) = self.records.get(key).map(|r| &**r) {
            self.group_names.remove(&g.id);
        }
        let Some(email) = self.records.get(key).and_then(|r| Self::email_of(r)).map(str::to_owned) else {
            return;
        };
        if let Some(keys) = self.by_email.get_mut(&email) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_email.remove(&email);
            }
        }
    }

    fn put(&mut self, key: String, value: Arc<DirectoryRecord>) {
        self.unindex(&key);
        if let Some(email) = Self::email_of(&value) {
            self.by_email.entry(email.to_owned()).or_default().push(key.clone());
        }
        if let DirectoryRecord::Group(g) = &*value {
            self.group_names.insert(g.id.clone(), g.name.clone());
        }
        self.records.insert(key, value);
    }

    fn remove(&mut self, key: &str) {
        self.unindex(key);
        self.records.remove(key);
    }

    /// The groups (ids, then names where they differ) of the directory user whose id is one
    /// of `ids`, else of the one user with `email`; `None` when the directory does not know
    /// the person.
    fn groups(&self, ids: &[&str], email: Option<&str>) -> Option<Vec<String>> {
        // Without a directory (or before its first sync) there is nobody to find.
        if self.records.is_empty() {
            return None;
        }
        let by_id = ids.iter().find_map(|id| match self.records.get(&directory_user_key(id)).map(|r| &**r) {
            Some(DirectoryRecord::User(u)) => Some(u),
            _ => None,
        });
        let user = match by_id {
            Some(u) => u,
            None => match self.by_email.get(&email?.to_lowercase()).map(Vec::as_slice) {
                Some([key]) => match self.records.get(key).map(|r| &**r) {
                    Some(DirectoryRecord::User(u)) => u,
                    _ => return None,
                },
                _ => return None,
            },
        };
        let mut out = user.groups.clone();
        let mut seen: std::collections::HashSet<&str> = user.groups.iter().map(String::as_str).collect();
        for name in user.groups.iter().filter_map(|id| self.group_names.get(id)) {
            if !name.is_empty() && seen.insert(name) {
                out.push(name.clone());
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

    /// The user record of `user_id`. Its key is a SHA-256 of the id, which costs more than
    /// the rest of a check's lookups; checks ask about the same people again and again, so
    /// each id's key is worked out once.
    pub fn user_of(&self, user_id: &str) -> Option<Arc<User>> {
        let known = self.user_keys.read().ok().and_then(|keys| keys.get(user_id).cloned());
        let key = match known {
            Some(key) => key,
            None => {
                let key: Arc<str> = portcullis_runtime::buckets::user_key(user_id).into();
                if let Ok(mut keys) = self.user_keys.write() {
                    if keys.len() >= MAX_USER_KEYS {
                        keys.clear();
                    }
                    keys.insert(user_id.to_owned(), key.clone());
                }
                key
            }
        };
        self.user(&key)
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

    /// Directory groups of a person (see [`DirectoryIndex`]): the directory user whose id is
    /// the IdP's `sub`, or its `oid` (Microsoft Entra ID's object id, what Graph lists, as
    /// Entra's `sub` differs per application); else the one directory user with the person's
    /// email, and only when the IdP says the email is verified (`email_verified: true`): an
    /// unverified or unattested email could be anyone's.
    pub fn directory_groups(
        &self,
        user_id: &str,
        email: Option<&str>,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Vec<String>> {
        let verified = match claims.get("email_verified") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        let email = email.filter(|_| verified);
        let mut ids = vec![user_id];
        if let Some(oid) = claims.get("oid").and_then(serde_json::Value::as_str) {
            ids.push(oid);
        }
        self.directory.read().ok()?.groups(&ids, email)
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
                // While loading, history arrives back to back. Silence means the values
                // counted a moment ago are gone (expired), so nothing will mark the end of
                // the history: load again rather than never become ready.
                _ = tokio::time::sleep(LOAD_STALL), if fresh.is_some() => {
                    warn!(bucket = name, "history stopped arriving while loading; reloading");
                    break;
                }
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

#[cfg(test)]
mod tests {
    use portcullis_schemas::messages::{DirectoryGroup, DirectoryUser};
    use serde_json::json;

    use super::*;

    fn user(id: &str, email: &str, groups: &[&str]) -> (String, Arc<DirectoryRecord>) {
        let u = DirectoryUser {
            id: id.into(),
            email: Some(email.into()),
            name: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
        (directory_user_key(id), Arc::new(DirectoryRecord::User(u)))
    }

    fn replica(records: Vec<(String, Arc<DirectoryRecord>)>) -> Replica {
        let r = Replica::default();
        r.directory.replace(records.into_iter().collect());
        r
    }

    fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn people_are_matched_by_id_then_by_a_verified_unique_email() {
        let group =
            DirectoryRecord::Group(DirectoryGroup { id: "g1".into(), name: "eng".into(), email: None });
        let r = replica(vec![
            user("u-alice", "alice@example.com", &["g1"]),
            user("u-bob", "bob@example.com", &["g1"]),
            user("u-bob2", "bob@example.com", &[]),
            (portcullis_runtime::buckets::directory_group_key("g1"), Arc::new(group)),
        ]);
        let verified = claims(json!({"email_verified": true}));
        // By id (the IdP's sub), whatever the email says.
        assert_eq!(
            r.directory_groups("u-alice", None, &claims(json!({}))),
            Some(vec!["g1".into(), "eng".into()])
        );
        // By Entra's object id.
        assert!(r.directory_groups("pairwise-sub", None, &claims(json!({"oid": "u-alice"}))).is_some());
        // By a verified email, in any case.
        assert!(r.directory_groups("alice", Some("Alice@Example.com"), &verified).is_some());
        // Not by an email the IdP does not vouch for.
        for c in [json!({}), json!({"email_verified": false}), json!({"email_verified": "false"})] {
            assert_eq!(
                r.directory_groups("alice", Some("alice@example.com"), &claims(c.clone())),
                None,
                "{c}"
            );
        }
        assert!(
            r.directory_groups(
                "alice",
                Some("alice@example.com"),
                &claims(json!({"email_verified": "true"}))
            )
            .is_some()
        );
        // Not by an email two directory users share; one of them leaving makes it unique again.
        assert_eq!(r.directory_groups("bob", Some("bob@example.com"), &verified), None);
        r.directory.remove(&directory_user_key("u-bob2"));
        assert!(r.directory_groups("bob", Some("bob@example.com"), &verified).is_some());
    }
}
