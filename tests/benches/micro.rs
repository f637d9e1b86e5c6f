//! Micro-benchmarks of the authorized-request path (`just bench-micro`): cookie decode,
//! policy evaluation, the authorize check handler without NATS, JWT signing, and a NATS
//! request-reply round trip against a real nats-server (p50/p99).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures::StreamExt;
use portcullis_authorize::check::Checker;
use portcullis_authorize::jwt::{Identity, Minter};
use portcullis_authorize::replica::Replica;
use portcullis_policy::{Input, Policy, UserFacts};
use portcullis_runtime::config::RawConfig;
use portcullis_runtime::crypto::{Purpose, Sealer, Secret};
use portcullis_schemas::messages::{CheckRequest, Identity as SessionIdentity, Session};
use serde_json::json;

fn config() -> portcullis_runtime::Config {
    let routes = json!([{"from": "https://app.example.com", "to": "http://127.0.0.1:9000", "policy": five_criteria()}]);
    let raw: RawConfig = serde_json::from_value(config_with(routes)).unwrap();
    raw.validate().unwrap()
}

/// A valid configuration document with these routes.
fn config_with(routes: serde_json::Value) -> serde_json::Value {
    json!({
        "insecure_server": true,
        "address": ":8080",
        "authenticate_service_url": "https://authenticate.example.com",
        "idp_provider_url": "https://idp.example.com",
        "idp_client_id": "c",
        "idp_client_secret": "s",
        "shared_secret": "c2hhcmVkLXNlY3JldC1mb3ItdGVzdHMtb25seS0xMjM=",
        "routes": routes,
    })
}

/// A policy reading five criteria (the last one decides).
fn five_criteria() -> serde_json::Value {
    json!([
        {"deny": {"or": [{"email": {"is": "mallory@example.com"}}]}},
        {"allow": {"and": [
            {"authenticated_user": true},
            {"domain": {"is": "example.com"}},
            {"claim/groups": {"has": "staff"}},
            {"user": {"not": "bob"}},
        ]}},
    ])
}

fn session() -> Session {
    let claims =
        json!({"groups": ["admins", "staff"], "email": "alice@example.com"}).as_object().cloned().unwrap();
    Session {
        id: "session-id-0123456789abcdefghijklmnopqrstuvwx".into(),
        identity: SessionIdentity {
            user_id: "alice".into(),
            email: Some("alice@example.com".into()),
            name: Some("Alice Example".into()),
            groups: vec!["admins".into(), "staff".into()],
            claims,
        },
        idp: "https://idp.example.com".into(),
        idp_session_id: None,
        sealed_tokens: "sealed".into(),
        created_at: 0,
        expires_at: i64::MAX / 2,
        tokens_expire_at: None,
        refreshed_at: None,
    }
}

fn many_routes(n: usize) -> serde_json::Value {
    let routes: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let from = if i % 10 == 9 {
                format!("https://*.tenant-{i}.example.org")
            } else {
                format!("https://app-{i}.example.com")
            };
            json!({"from": from, "to": "http://127.0.0.1:9000", "prefix": "/", "policy": five_criteria()})
        })
        .collect();
    config_with(routes.into())
}

fn benches(c: &mut Criterion) {
    let sealer = Sealer::new(&Secret::from_bytes([7; 32]), Purpose::SessionCookie);
    let cookie = sealer.seal(b"session-id-0123456789abcdefghijklmnopqrstuvwx", b"_pomerium");
    c.bench_function("cookie decode (open the sealed session id)", |b| {
        b.iter(|| sealer.open(black_box(&cookie), b"_pomerium").unwrap())
    });

    let policy = Policy::from_ppl(&five_criteria()).unwrap();
    let s = session();
    c.bench_function("policy evaluation (5 criteria)", |b| {
        b.iter(|| {
            let user = UserFacts {
                user_id: &s.identity.user_id,
                email: s.identity.email.as_deref(),
                claims: &s.identity.claims,
                groups: &s.identity.groups,
            };
            black_box(policy.decide(&Input { user: Some(user), ..Input::default() }))
        })
    });

    // 10,000 routes: 9,000 exact hosts, 1,000 wildcard hosts, each with a policy.
    let many = many_routes(10_000);
    let raw: RawConfig = serde_json::from_value(many.clone()).unwrap();
    c.bench_function("route compile (10,000 routes, validate the whole configuration)", |b| {
        b.iter(|| {
            let raw: RawConfig = serde_json::from_value(black_box(many.clone())).unwrap();
            raw.validate().unwrap()
        })
    });
    let big = raw.validate().unwrap();
    c.bench_function("route lookup among 10,000 routes (exact host)", |b| {
        b.iter(|| big.find_route(black_box("app-4321.example.com"), None, "/reports").unwrap())
    });
    c.bench_function("route lookup among 10,000 routes (wildcard host)", |b| {
        b.iter(|| big.find_route(black_box("x.tenant-7779.example.org"), None, "/").unwrap())
    });

    let config = Arc::new(config());
    let minter = Arc::new(Minter::new(config.signing_key.clone()));
    let groups = s.identity.groups.clone();
    let identity =
        Identity { user_id: "alice", email: "alice@example.com", name: "Alice Example", groups: &groups };
    let mut n = 0u64;
    c.bench_function("JWT signing (ES256, uncached)", |b| {
        b.iter(|| {
            n += 1;
            let mut fresh = s.clone();
            fresh.id = format!("session-{n}");
            minter.token(&fresh, &identity, "app.example.com", 1_000_000).unwrap()
        })
    });

    let replica = Arc::new(Replica::default());
    replica.insert_session(session());
    let checker = Checker {
        live: portcullis_runtime::reload::fixed(config.clone()),
        token_sealer: Sealer::new(&config.shared_secret, Purpose::Tokens),
        replica,
        minter: Arc::new(Minter::new(config.signing_key.clone())),
        sessions: None,
    };
    let request = CheckRequest {
        route_id: config.routes[0].id.clone(),
        session_id: Some(session().id),
        method: "GET".into(),
        host: "app.example.com".into(),
        path: "/".into(),
        client_ip: "127.0.0.1".into(),
        cors_preflight: false,
        client_certificate: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    c.bench_function("authorize check handler (replica hit, JWT reused)", |b| {
        b.iter(|| rt.block_on(checker.check(black_box(request.clone()))).unwrap())
    });
}

/// Request-reply through a real nats-server: p50 and p99 over 5,000 sequential calls.
fn nats_round_trip() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let server = portcullis_e2e::NatsServer::start().await;
        let client = server.client().await;
        let mut sub = client.queue_subscribe("bench.echo", "q".into()).await.unwrap();
        let responder = client.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(reply) = m.reply {
                    let _ = responder.publish(reply, m.payload).await;
                }
            }
        });
        client.flush().await.unwrap();
        let payload = bytes::Bytes::from(vec![b'x'; 256]);
        for _ in 0..500 {
            client.request("bench.echo", payload.clone()).await.unwrap();
        }
        let mut samples = Vec::with_capacity(5000);
        for _ in 0..5000 {
            let t = Instant::now();
            client.request("bench.echo", payload.clone()).await.unwrap();
            samples.push(t.elapsed());
        }
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "NATS request-reply round trip (256 B, sequential): p50 {:.0} µs, p99 {:.0} µs",
            us(pct(0.50)),
            us(pct(0.99))
        );
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    nats_round_trip();
}
