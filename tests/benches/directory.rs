//! Directory sync at scale (`just bench-directory`): 100,000 users and 10,000 groups served
//! by a SCIM fixture (answers as RFC 7644 says: `startIndex`/`count` pages, `ListResponse`),
//! synced by the real `portcullis cache` (release build) into a real nats-server. Reports the
//! initial sync (everything written, one `directory.user.groups_changed` per user), a sync
//! after 1% of users changed groups, a sync with no change, and the process's peak RSS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::Full;
use hyper::{Request, Response};
use portcullis_e2e::portcullis::{COOKIE_SECRET, Portcullis, SHARED_SECRET};
use portcullis_e2e::{NatsServer, TempDir, free_port};
use serde_json::{Value, json};

const USERS: u32 = 100_000;
const GROUPS: u32 = 10_000;
const PAGE: u32 = 1000;

/// The groups of user `i` in dataset generation `generation` (1% of users gain a group in 1).
fn groups_of(i: u32, generation: u32) -> Vec<u32> {
    let mut g = vec![
        i % GROUPS,
        (i / 10) % GROUPS,
        (i * 7 + 1) % GROUPS,
        (i * 13 + 5) % GROUPS,
        (i * 31 + 7) % GROUPS,
    ];
    if generation > 0 && i.is_multiple_of(100) {
        g.push((i * 3 + 11) % GROUPS);
    }
    g.sort_unstable();
    g.dedup();
    g
}

/// Members of each group, per generation.
fn members(generation: u32) -> Vec<Vec<u32>> {
    let mut m = vec![Vec::new(); GROUPS as usize];
    for i in 0..USERS {
        for g in groups_of(i, generation) {
            m[g as usize].push(i);
        }
    }
    m
}

struct Fixture {
    generation: AtomicU32,
    members: [Vec<Vec<u32>>; 2],
}

fn page(query: &str) -> (u32, u32) {
    let mut start = 1;
    let mut count = 100;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "startIndex" => start = v.parse().unwrap_or(1),
            "count" => count = v.parse().unwrap_or(100),
            _ => {}
        }
    }
    (start.max(1), count.min(PAGE))
}

fn list(total: u32, start: u32, resources: Vec<Value>) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

fn answer(f: &Fixture, path: &str, query: &str) -> Value {
    let (start, count) = page(query);
    let range = |total: u32| (start - 1).min(total)..(start - 1 + count).min(total);
    match path {
        "/Users" => list(
            USERS,
            start,
            range(USERS)
                .map(|i| {
                    json!({"id": format!("u{i:06}"), "userName": format!("user{i}"), "displayName": format!("User {i}"),
                           "emails": [{"value": format!("user{i}@example.com"), "primary": true}], "active": true})
                })
                .collect(),
        ),
        "/Groups" => {
            let m = &f.members[f.generation.load(Ordering::Relaxed) as usize];
            list(
                GROUPS,
                start,
                range(GROUPS)
                    .map(|j| {
                        let members: Vec<Value> =
                            m[j as usize].iter().map(|i| json!({"value": format!("u{i:06}"), "type": "User"})).collect();
                        json!({"id": format!("g{j:05}"), "displayName": format!("group-{j}"), "members": members})
                    })
                    .collect(),
            )
        }
        _ => json!({"status": "404"}),
    }
}

async fn serve(f: Arc<Fixture>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let f = f.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = answer(&f, req.uri().path(), req.uri().query().unwrap_or("")).to_string();
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/scim+json")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

/// The next `directory.synced` event: (label, time since `t`, its data).
async fn wait(
    synced: &mut async_nats::Subscriber,
    label: &'static str,
    t: Instant,
) -> (&'static str, Duration, Value) {
    let m = tokio::time::timeout(Duration::from_secs(300), synced.next())
        .await
        .expect("sync within 5 min")
        .unwrap();
    let event: Value = serde_json::from_slice(&m.payload).unwrap();
    (label, t.elapsed(), event["data"].clone())
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let fixture = Arc::new(Fixture { generation: AtomicU32::new(0), members: [members(0), members(1)] });
    let scim_port = serve(fixture.clone()).await;
    let nats = NatsServer::start().await;
    let dir = TempDir::new("bench-directory");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "address: 127.0.0.1:{port}\ninsecure_server: true\nauthenticate_service_url: http://authenticate.localhost\nidp_provider_url: http://127.0.0.1:9/\nidp_client_id: bench\nidp_client_secret: bench\nshared_secret: {SHARED_SECRET}\ncookie_secret: {COOKIE_SECRET}\nnats:\n  url: {nats}\n  request_timeout: 10s\nroutes: []\ndirectory:\n  provider: scim\n  refresh_interval: 1h\n  refresh_timeout: 5m\n  requests_per_second: 0\n  scim:\n    url: http://127.0.0.1:{scim_port}\n    page_size: {PAGE}\n",
            port = free_port(),
            nats = nats.url
        ),
    )
    .unwrap();
    let client = nats.client().await;
    let mut synced = client.subscribe("portcullis.events.directory.synced").await.unwrap();
    client.flush().await.unwrap();
    eprintln!("fixture ready in {:?}: {USERS} users, {GROUPS} groups, ~5 groups per user", started.elapsed());

    let t0 = Instant::now();
    let cache = Portcullis::spawn("cache", &config, dir.path().join("cache.log"), &[]);
    let mut rows = Vec::new();
    rows.push(wait(&mut synced, "initial (all new)", t0).await);
    fixture.generation.store(1, Ordering::Relaxed);
    let t1 = Instant::now();
    let _ = client.request("portcullis.cache.directory.sync", "{}".into()).await.unwrap();
    rows.push(wait(&mut synced, "1% of users changed", t1).await);
    let t2 = Instant::now();
    let _ = client.request("portcullis.cache.directory.sync", "{}".into()).await.unwrap();
    rows.push(wait(&mut synced, "no change", t2).await);
    let rss = peak_rss_mb(cache.pid());

    println!("\ndirectory sync, SCIM fixture, {USERS} users / {GROUPS} groups (portcullis cache, release)\n");
    println!(
        "{:<22} {:>10} {:>12} {:>14} {:>16}",
        "sync", "wall (s)", "sync (ms)", "users changed", "records written"
    );
    for (label, wall, data) in &rows {
        println!(
            "{:<22} {:>10.1} {:>12} {:>14} {:>16}",
            label,
            wall.as_secs_f64(),
            data["duration_ms"],
            data["users_changed"],
            data["records_written"]
        );
    }
    println!("\npeak RSS of the cache process (VmHWM): {rss:.0} MB");
    println!("(wall for the initial sync includes process start; `sync` is the engine's own measure)");
    // What an operator sees of a long sync in the log.
    let log = std::fs::read_to_string(dir.path().join("cache.log")).unwrap_or_default();
    println!("\nthe cache's log of the syncs:");
    for line in log.lines().filter(|l| l.contains("directory")) {
        println!("  {line}");
    }
    drop(cache);
}
