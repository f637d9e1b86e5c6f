//! The end-to-end harness: real `nats-server` (one per test, dynamic port, own store dir),
//! the real OIDC provider (`oidc-provider`, `tests/idp/provider.mjs`), a real upstream that
//! records what it receives, and the real `portcullis` binary.
//!
//! Every process is killed on drop. Nothing sleeps to wait: readiness is polled with a
//! deadline ([`eventually`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod directory;
pub mod idp;
pub mod nats;
pub mod portcullis;
pub mod upstream;
pub mod webdriver;
pub mod websocket;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use browser::Browser;
pub use idp::Idp;
pub use nats::NatsServer;
pub use portcullis::{Portcullis, TestEnv};
pub use upstream::Upstream;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned()
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("portcullis-{tag}-{}-{}", std::process::id(), random_suffix()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn random_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Poll `check` until it returns `Some`, or panic with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// A stored event as structured CloudEvents JSON: structured messages as they are, binary ones
/// (CloudEvents NATS binding, `ce-` headers) rebuilt.
pub fn event_json(headers: &async_nats::HeaderMap, payload: &[u8]) -> serde_json::Value {
    let mut event = serde_json::Map::new();
    for (name, values) in headers.iter() {
        let name = name.to_string().to_ascii_lowercase();
        if let (Some(attr), Some(v)) = (name.strip_prefix("ce-"), values.first()) {
            event.insert(attr.to_owned(), serde_json::Value::String(v.to_string()));
        }
    }
    let body: serde_json::Value = serde_json::from_slice(payload).expect("event body is JSON");
    if event.is_empty() {
        return body;
    }
    event.insert("data".into(), body);
    serde_json::Value::Object(event)
}

/// The `groups` claim of an identity JWT (payload decoded, signature not checked).
pub fn jwt_groups(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice::<serde_json::Value>(&bytes).expect("claims")["groups"].clone()
}

/// Check `event`'s data against its JSON Schema in `schemas/json/`; panics with the errors.
pub fn assert_valid_event(event: &serde_json::Value) {
    let ty = event["type"].as_str().expect("event type");
    let stem = portcullis_schemas::events::ALL
        .iter()
        .find(|(t, _)| *t == ty)
        .map(|(_, stem)| *stem)
        .unwrap_or_else(|| panic!("unknown event type {ty}"));
    let path = workspace_root().join(format!("schemas/json/{stem}.json"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file")).expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(&event["data"]).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{ty} does not match {}: {errors:?}\n{event}", path.display());
    for attr in ["id", "source", "specversion", "subject", "time"] {
        assert!(event[attr].as_str().is_some_and(|v| !v.is_empty()), "{ty} lacks `{attr}`: {event}");
    }
}
