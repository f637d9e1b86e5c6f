//! Picking one of a route's upstreams (`load_balancing_policy`).

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
            .map(|r| {
                let state = RouteState {
                    next: AtomicUsize::new(0),
                    in_flight: r.to.iter().map(|_| AtomicUsize::new(0)).collect(),
                };
                (r.id.clone(), Arc::new(state))
            })
            .collect()
    }

    /// Choose an upstream of `route` for a request of `session` (if any).
    pub fn pick(&self, route: &Route, session: Option<&str>) -> Pick {
        let n = route.to.len();
        let state = self.routes.read().ok().and_then(|r| r.get(&route.id).cloned()).filter(|_| n > 1);
        let Some(state) = state else {
            return Pick { index: 0, state: None };
        };
        let index = match route.load_balancing {
            LoadBalancing::RoundRobin => state.next.fetch_add(1, Ordering::Relaxed) % n,
            LoadBalancing::Random => rand::thread_rng().gen_range(0..n),
            LoadBalancing::RingHash => match session {
                Some(s) => {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    s.hash(&mut h);
                    (h.finish() % n as u64) as usize
                }
                None => state.next.fetch_add(1, Ordering::Relaxed) % n,
            },
            LoadBalancing::LeastRequest => {
                let index = (0..n).min_by_key(|&i| state.in_flight[i].load(Ordering::Relaxed)).unwrap_or(0);
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
        let raw: portcullis_runtime::config::RawConfig = serde_json::from_value(json!({
            "insecure_server": true, "address": ":8080",
            "authenticate_service_url": "https://auth.example.com",
            "idp_provider_url": "https://idp.example.com", "idp_client_id": "c", "idp_client_secret": "s",
            "shared_secret": "c2hhcmVkLXNlY3JldC1mb3ItdGVzdHMtb25seS0xMjM=",
            "routes": [{"from": "https://a.example.com", "to": ["http://10.0.0.1", "http://10.0.0.2", "http://10.0.0.3"],
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
}
