//! Picking one of a route's upstreams (`load_balancing_policy`), in proportion to their
//! weights (`to: ["http://a,3", "http://b,1"]`) when the route gives them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis_runtime::config::{Config, LoadBalancing, Route};
use rand::Rng;

/// Per-route balancing state, shared by every serving thread.
#[derive(Default)]
pub struct Balancer {
    routes: std::sync::RwLock<HashMap<String, Arc<RouteState>>>,
}

#[derive(Default)]
struct RouteState {
    next: AtomicUsize,
    in_flight: Vec<AtomicUsize>,
    weights: Vec<u64>,
    /// Round-robin order: each upstream as often as its weight, interleaved (smooth weighted
    /// round robin, as nginx does), so a heavy upstream does not get its turns in a burst.
    schedule: Vec<usize>,
    /// Running sums of the weights, for weighted random and hash picks.
    cumulative: Vec<u64>,
}

/// Longest round-robin schedule; larger weight sums are scaled down to fit.
const MAX_SCHEDULE: u64 = 10_000;

impl RouteState {
    fn new(weights: &[u32]) -> RouteState {
        let weights: Vec<u64> = weights.iter().map(|w| u64::from((*w).max(1))).collect();
        let cumulative: Vec<u64> = weights
            .iter()
            .scan(0u64, |sum, w| {
                *sum += w;
                Some(*sum)
            })
            .collect();
        RouteState {
            next: AtomicUsize::new(0),
            in_flight: weights.iter().map(|_| AtomicUsize::new(0)).collect(),
            schedule: schedule(&weights),
            cumulative,
            weights,
        }
    }

    fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(1)
    }

    /// The upstream at position `x` (below the total) of the weights laid end to end.
    fn by_weight(&self, x: u64) -> usize {
        self.cumulative.partition_point(|c| *c <= x).min(self.weights.len() - 1)
    }
}

/// Smooth weighted round robin over `weights`, one full cycle.
fn schedule(weights: &[u64]) -> Vec<usize> {
    let total: u64 = weights.iter().sum();
    let weights: Vec<i64> = if total > MAX_SCHEDULE {
        weights.iter().map(|w| ((w * MAX_SCHEDULE) / total).max(1) as i64).collect()
    } else {
        weights.iter().map(|w| *w as i64).collect()
    };
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let best = (0..current.len()).max_by_key(|i| (current[*i], std::cmp::Reverse(*i))).unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
}

/// An upstream chosen for one request; for `LEAST_REQUEST` it counts as in flight until
/// dropped.
pub struct Pick {
    pub index: usize,
    state: Option<Arc<RouteState>>,
}

impl Drop for Pick {
    fn drop(&mut self) {
        if let Some(s) = &self.state {
            s.in_flight[self.index].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Balancer {
    pub fn new(config: &Config) -> Balancer {
        Balancer { routes: std::sync::RwLock::new(Self::states(config)) }
    }

    /// New state for a reloaded configuration.
    pub fn reset(&self, config: &Config) {
        if let Ok(mut routes) = self.routes.write() {
            *routes = Self::states(config);
        }
    }

    fn states(config: &Config) -> HashMap<String, Arc<RouteState>> {
        config
            .routes
            .iter()
            .filter(|r| r.to.len() > 1)
            .map(|r| (r.id.clone(), Arc::new(RouteState::new(&r.weights))))
            .collect()
    }

    /// Choose an upstream of `route` for a request of `session` (if any).
    pub fn pick(&self, route: &Route, session: Option<&str>) -> Pick {
        let n = route.to.len();
        if n < 2 {
            return Pick { index: 0, state: None };
        }
        let state = self.routes.read().ok().and_then(|r| r.get(&route.id).cloned());
        let Some(state) = state else {
            return Pick { index: 0, state: None };
        };
        let round_robin = || {
            let turn = state.next.fetch_add(1, Ordering::Relaxed);
            state.schedule.get(turn % state.schedule.len().max(1)).copied().unwrap_or(0)
        };
        let index = match route.load_balancing {
            LoadBalancing::RoundRobin => round_robin(),
            LoadBalancing::Random => state.by_weight(rand::thread_rng().gen_range(0..state.total())),
            LoadBalancing::RingHash => match session {
                Some(s) => {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    s.hash(&mut h);
                    state.by_weight(h.finish() % state.total())
                }
                None => round_robin(),
            },
            LoadBalancing::LeastRequest => {
                // Fewest requests in flight per unit of weight: (a+1)/wa < (b+1)/wb.
                let load =
                    |i: usize| (state.in_flight[i].load(Ordering::Relaxed) as u64 + 1, state.weights[i]);
                let index = (0..n)
                    .min_by(|&a, &b| {
                        let ((la, wa), (lb, wb)) = (load(a), load(b));
                        (la * wb).cmp(&(lb * wa))
                    })
                    .unwrap_or(0);
                state.in_flight[index].fetch_add(1, Ordering::Relaxed);
                return Pick { index, state: Some(state.clone()) };
            }
        };
        Pick { index, state: None }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(policy: &str) -> Config {
        config_to(policy, json!(["http://10.0.0.1", "http://10.0.0.2", "http://10.0.0.3"]))
    }

    fn config_to(policy: &str, to: serde_json::Value) -> Config {
        let raw: portcullis_runtime::config::RawConfig = serde_json::from_value(json!({
            "insecure_server": true, "address": ":8080",
            "authenticate_service_url": "https://auth.example.com",
            "idp_provider_url": "https://idp.example.com", "idp_client_id": "c", "idp_client_secret": "s",
            "shared_secret": "c2hhcmVkLXNlY3JldC1mb3ItdGVzdHMtb25seS0xMjM=",
            "routes": [{"from": "https://a.example.com", "to": to,
                        "load_balancing_policy": policy, "allow_any_authenticated_user": true}],
        }))
        .unwrap();
        raw.validate().unwrap()
    }

    #[test]
    fn round_robin_cycles_and_ring_hash_sticks() {
        let c = config("ROUND_ROBIN");
        let b = Balancer::new(&c);
        let picks: Vec<usize> = (0..6).map(|_| b.pick(&c.routes[0], None).index).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let c = config("RING_HASH");
        let b = Balancer::new(&c);
        let first = b.pick(&c.routes[0], Some("session-a")).index;
        assert!((0..20).all(|_| b.pick(&c.routes[0], Some("session-a")).index == first));
    }

    #[test]
    fn least_request_avoids_busy_upstreams() {
        let c = config("LEAST_REQUEST");
        let b = Balancer::new(&c);
        let busy0 = b.pick(&c.routes[0], None);
        let busy1 = b.pick(&c.routes[0], None);
        assert_ne!(busy0.index, busy1.index);
        let third = b.pick(&c.routes[0], None);
        assert!(third.index != busy0.index && third.index != busy1.index);
        drop(busy0);
        drop(third);
        let next = b.pick(&c.routes[0], None);
        assert_ne!(next.index, busy1.index, "the one still in flight is avoided");
    }

    #[test]
    fn weights_share_the_load_in_proportion() {
        let to = json!(["http://10.0.0.1,3", "http://10.0.0.2,1"]);
        let counts = |policy: &str, session: &dyn Fn(usize) -> Option<String>| {
            let c = config_to(policy, to.clone());
            let b = Balancer::new(&c);
            let mut n = [0usize; 2];
            for i in 0..4000 {
                n[b.pick(&c.routes[0], session(i).as_deref()).index] += 1;
            }
            n
        };
        assert_eq!(counts("ROUND_ROBIN", &|_| None), [3000, 1000]);
        // Interleaved, not in bursts: a, a, b, a or similar, never three b in a row.
        let c = config_to("ROUND_ROBIN", to.clone());
        let b = Balancer::new(&c);
        let order: Vec<usize> = (0..8).map(|_| b.pick(&c.routes[0], None).index).collect();
        assert_eq!(order.iter().filter(|i| **i == 1).count(), 2, "{order:?}");
        assert_ne!(order[..4], [1, 1, 0, 0]);
        for (policy, session) in [
            ("RANDOM", &(|_| None) as &dyn Fn(usize) -> Option<String>),
            ("RING_HASH", &|i| Some(format!("session-{i}"))),
        ] {
            let [heavy, light] = counts(policy, session);
            assert!((2700..=3300).contains(&heavy) && light == 4000 - heavy, "{policy}: {heavy}/{light}");
        }
        // Least request with weights: the heavy upstream takes three in flight per light one.
        let c = config_to("LEAST_REQUEST", to);
        let b = Balancer::new(&c);
        let held: Vec<Pick> = (0..8).map(|_| b.pick(&c.routes[0], None)).collect();
        assert_eq!(held.iter().filter(|p| p.index == 0).count(), 6);
    }

    #[test]
    fn weights_are_all_or_nothing_and_above_zero() {
        let bad = |to: serde_json::Value| {
            let raw: portcullis_runtime::config::RawConfig = serde_json::from_value(json!({
                "insecure_server": true, "address": ":8080",
                "authenticate_service_url": "https://auth.example.com",
                "idp_provider_url": "https://idp.example.com", "idp_client_id": "c", "idp_client_secret": "s",
                "shared_secret": "c2hhcmVkLXNlY3JldC1mb3ItdGVzdHMtb25seS0xMjM=",
                "routes": [{"from": "https://a.example.com", "to": to, "allow_any_authenticated_user": true}],
            }))
            .unwrap();
            raw.validate().is_err()
        };
        assert!(bad(json!(["http://a,2", "http://b"])));
        assert!(bad(json!(["http://a,0", "http://b,1"])));
        assert!(bad(json!(["http://a,x"])));
        assert!(!bad(json!("http://a,5")), "a single string is one weighted upstream");
        assert_eq!(config_to("ROUND_ROBIN", json!("http://10.0.0.9,5")).routes[0].weights, [5]);
    }
}
