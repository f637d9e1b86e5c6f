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
    /// `reply`, with the headers it grants parsed: those at its `shared` positions of the
    /// batch's `shared` list (parsed once for the whole batch, see [`parse_header`]; one that
    /// did not parse is left out, as one of the reply's own would be), then its own. A
    /// position outside the list (or any, with none: a reply to `authorize.check`) is an
    /// error: the reply does not say what it grants.
    pub fn with_shared(
        mut reply: CheckReply,
        shared: &[Option<(HeaderName, HeaderValue)>],
    ) -> Result<Decision, String> {
        let headers = match &mut reply {
            CheckReply::Allow { headers, shared: positions, .. } => {
                let mut granted = Vec::with_capacity(positions.len() + headers.len());
                for &at in positions.iter() {
                    match shared.get(at as usize) {
                        Some(header) => granted.extend(header.iter().cloned()),
                        None => return Err(format!("shared header {at} of {}", shared.len())),
                    }
                }
                positions.clear();
                granted.extend(std::mem::take(headers).into_iter().filter_map(parse_header));
                granted
            }
            CheckReply::Deny { .. } | CheckReply::Login { .. } => Vec::new(),
        };
        Ok(Decision { reply, headers })
    }
}

/// A granted header as the upstream request carries it (its value checked, not copied);
/// `None` when authorize sent something that is not a header.
pub fn parse_header(h: portcullis_schemas::messages::Header) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_bytes(h.name.as_bytes()).ok()?,
        HeaderValue::from_maybe_shared(bytes::Bytes::from(h.value)).ok()?,
    ))
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
        let reply = CheckReply::Allow {
            headers: vec![],
            reasons: vec![],
            cache_for_ms: ms,
            sealed_templates: vec![],
            shared: vec![],
        };
        Arc::new(Decision::with_shared(reply, &[]).expect("nothing shared"))
    }

    #[test]
    fn shared_headers_are_granted_first_and_a_bad_position_is_refused() {
        use portcullis_schemas::messages::Header;
        let reply = |shared: Vec<u32>| CheckReply::Allow {
            headers: vec![Header::new("x-email", "a@example.com"), Header::new("bad name", "x")],
            reasons: vec![],
            cache_for_ms: 0,
            sealed_templates: vec![],
            shared,
        };
        let table: Vec<_> = [Header::new("x-portcullis-jwt-assertion", "j.w.t"), Header::new("x-bad", "\n")]
            .into_iter()
            .map(parse_header)
            .collect();
        let table =
            [table[0].clone(), table[1].clone(), Some(parse_header(Header::new("x-two", "2")).expect("ok"))];
        let d = Decision::with_shared(reply(vec![0, 1, 2]), &table).expect("valid");
        let names: Vec<&str> = d.headers.iter().map(|(n, _)| n.as_str()).collect();
        // Shared first, in their order; what does not parse is left out.
        assert_eq!(names, ["x-portcullis-jwt-assertion", "x-two", "x-email"]);
        assert!(matches!(d.reply, CheckReply::Allow { ref shared, .. } if shared.is_empty()));
        assert!(Decision::with_shared(reply(vec![3]), &table).is_err(), "past the table");
        assert!(Decision::with_shared(reply(vec![0]), &[]).is_err(), "no table at all");
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
