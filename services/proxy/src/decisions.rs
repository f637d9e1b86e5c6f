//! The soft decision cache: authorize's replies reused for a while per (session, route).
//!
//! Never authoritative: authorize says in each reply whether and how long a decision may be
//! reused; session events (revoked, expired, refreshed), user updates and directory changes drop entries at
//! once; losing the subscription empties the cache; a restart loses it harmlessly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use http::{HeaderName, HeaderValue};
use portcullis_runtime::{Bus, Shutdown};
// Keys are session ids the proxy opened from its own sealed cookies and route ids from the
// configuration, never text a client chooses, so a fast unkeyed hash is safe here.
use portcullis_schemas::messages::CheckReply;
use rustc_hash::FxHashMap as HashMap;
use tracing::{debug, warn};

/// Decisions of one session (or of anonymous requests, under the empty id), by route id.
struct SessionDecisions {
    routes: HashMap<String, Cached>,
}

struct Cached {
    reply: Arc<Decision>,
    until: Instant,
}

/// A decision as the proxy keeps it: authorize's reply, with the headers it grants already
/// parsed, so a decision reused by many requests has its header values checked and copied
/// once (an identity JWT is most of a kilobyte).
pub struct Decision {
    pub reply: CheckReply,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Decision {
    /// The granted headers move out of `reply` into `headers` (their values are checked, not
    /// copied).
    pub fn new(mut reply: CheckReply) -> Decision {
        let headers = match &mut reply {
            CheckReply::Allow { headers, .. } => std::mem::take(headers)
                .into_iter()
                .filter_map(|h| {
                    Some((
                        HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                        HeaderValue::from_maybe_shared(bytes::Bytes::from(h.value)).ok()?,
                    ))
                })
                .collect(),
            CheckReply::Deny { .. } | CheckReply::Login { .. } => Vec::new(),
        };
        Decision { reply, headers }
    }
}

/// The cache, in one shard per serving thread: a thread reads only its own shard, so the hot
/// path takes no lock that another core just wrote (each thread asks authorize once for a
/// session and route it has not seen; invalidations reach every shard).
pub struct DecisionCache {
    enabled: bool,
    /// Entries per shard before it is emptied.
    max_entries: usize,
    shards: Vec<RwLock<HashMap<String, SessionDecisions>>>,
    /// Bumped by every invalidation: a reply requested before one is not stored after it (it
    /// may predate the revocation that caused it).
    generation: AtomicU64,
}

impl DecisionCache {
    /// A cache of at most `max_entries` sessions in all, in `shards` shards (one per serving
    /// thread; a shard index beyond them uses the last).
    pub fn new(enabled: bool, max_entries: usize, shards: usize) -> DecisionCache {
        let shards = shards.max(1);
        DecisionCache {
            enabled,
            max_entries: (max_entries / shards).max(1),
            shards: (0..shards).map(|_| RwLock::new(HashMap::default())).collect(),
            generation: AtomicU64::new(0),
        }
    }

    fn shard(&self, shard: usize) -> &RwLock<HashMap<String, SessionDecisions>> {
        &self.shards[shard.min(self.shards.len() - 1)]
    }

    /// Take before asking authorize; give to [`DecisionCache::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A reusable decision for (`session`, `route`) in `shard`, if one is fresh.
    pub fn get(&self, shard: usize, session: Option<&str>, route: &str) -> Option<Arc<Decision>> {
        if !self.enabled {
            return None;
        }
        let map = self.shard(shard).read().ok()?;
        let cached = map.get(session.unwrap_or(""))?.routes.get(route)?;
        (cached.until > Instant::now()).then(|| cached.reply.clone())
    }

    /// Remember `reply` in `shard` if authorize allowed reuse and nothing was invalidated
    /// since `generation` was taken.
    pub fn put(
        &self,
        shard: usize,
        session: Option<&str>,
        route: &str,
        reply: &Arc<Decision>,
        generation: u64,
    ) {
        let ttl = reply.reply.cache_for_ms();
        if !self.enabled || ttl == 0 {
            return;
        }
        let Ok(mut map) = self.shard(shard).write() else { return };
        // Checked under the shard's lock: an invalidation bumps the generation before it
        // takes the locks, so either this sees the bump or the invalidation sees this entry.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.max_entries {
            map.clear();
        }
        let entry = map
            .entry(session.unwrap_or("").to_owned())
            .or_insert_with(|| SessionDecisions { routes: HashMap::default() });
        entry.routes.insert(
            route.to_owned(),
            Cached { reply: reply.clone(), until: Instant::now() + Duration::from_millis(ttl) },
        );
    }

    /// Drop everything known about `session`.
    pub fn forget_session(&self, session: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for shard in &self.shards {
            if let Ok(mut map) = shard.write() {
                map.remove(session);
            }
        }
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for shard in &self.shards {
            if let Ok(mut map) = shard.write() {
                map.clear();
            }
        }
    }

    /// Follow session and user events until `shutdown`, dropping what they make stale.
    pub async fn follow_events(self: Arc<Self>, bus: Bus, shutdown: Shutdown) {
        if !self.enabled {
            return;
        }
        let mut delay = Duration::from_millis(100);
        while !shutdown.is_fired() {
            let mut events = match bus.subscribe_events().await {
                Ok(s) => Box::pin(s),
                Err(error) => {
                    warn!(%error, "cannot follow session events; decision cache off until then");
                    self.clear();
                    if shutdown.sleep_or_stop(delay).await {
                        return;
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    n = events.next() => n,
                    _ = shutdown.wait() => return,
                };
                let Some((kind, subject)) = next else { break };
                match kind.as_str() {
                    "session.revoked" | "session.expired" | "session.refreshed" => {
                        debug!(kind, "dropping cached decisions of a session");
                        self.forget_session(&subject);
                    }
                    // Identity changed (groups, email): drop everything rather than index users.
                    "user.updated" => self.clear(),
                    // Directory groups changed (membership, or a group renamed): same.
                    "directory.user.groups_changed" | "directory.synced" => self.clear(),
                    _ => {}
                }
            }
            // Events may have been missed while the subscription was down.
            warn!("session events subscription ended; clearing the decision cache");
            self.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(ms: u64) -> Arc<Decision> {
        Arc::new(Decision::new(CheckReply::Allow {
            headers: vec![],
            reasons: vec![],
            cache_for_ms: ms,
            sealed_templates: vec![],
        }))
    }

    #[test]
    fn caches_only_what_authorize_allows_and_forgets_sessions() {
        let cache = DecisionCache::new(true, 10, 1);
        cache.put(0, Some("s1"), "r1", &allow(0), cache.generation());
        assert!(cache.get(0, Some("s1"), "r1").is_none(), "0 means do not reuse");
        cache.put(0, Some("s1"), "r1", &allow(60_000), cache.generation());
        cache.put(0, None, "r1", &allow(60_000), cache.generation());
        assert!(cache.get(0, Some("s1"), "r1").is_some());
        assert!(cache.get(0, Some("s1"), "r2").is_none());
        assert!(cache.get(0, Some("s2"), "r1").is_none());
        cache.forget_session("s1");
        assert!(cache.get(0, Some("s1"), "r1").is_none());
        assert!(cache.get(0, None, "r1").is_some(), "anonymous decisions are separate");
        let off = DecisionCache::new(false, 10, 1);
        off.put(0, Some("s1"), "r1", &allow(60_000), off.generation());
        assert!(off.get(0, Some("s1"), "r1").is_none());
    }

    #[test]
    fn a_reply_older_than_an_invalidation_is_not_stored() {
        let cache = DecisionCache::new(true, 10, 1);
        let before = cache.generation();
        cache.forget_session("s1"); // a revocation arrives while authorize is being asked
        cache.put(0, Some("s1"), "r1", &allow(60_000), before);
        assert!(cache.get(0, Some("s1"), "r1").is_none());
    }

    #[test]
    fn shards_are_separate_and_invalidations_reach_every_one() {
        let cache = DecisionCache::new(true, 10, 2);
        cache.put(0, Some("s1"), "r1", &allow(60_000), cache.generation());
        assert!(cache.get(1, Some("s1"), "r1").is_none(), "each thread asks once itself");
        cache.put(1, Some("s1"), "r1", &allow(60_000), cache.generation());
        cache.put(1, Some("s2"), "r1", &allow(60_000), cache.generation());
        cache.forget_session("s1");
        assert!(cache.get(0, Some("s1"), "r1").is_none() && cache.get(1, Some("s1"), "r1").is_none());
        assert!(cache.get(1, Some("s2"), "r1").is_some());
        cache.clear();
        assert!(cache.get(1, Some("s2"), "r1").is_none());
        // An index past the shards (more threads than planned) uses the last one.
        cache.put(7, Some("s3"), "r1", &allow(60_000), cache.generation());
        assert!(cache.get(1, Some("s3"), "r1").is_some());
    }
}
