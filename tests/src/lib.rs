//! The end-to-end harness: real `nats-server` (one per test, dynamic port, own store dir),
//! the real OIDC provider (`oidc-provider`, `tests/idp/provider.mjs`), a real upstream that
//! records what it receives, and the real `portcullis` binary.
//!
//! Every process is killed on drop. Nothing sleeps to wait: readiness is polled with a
//! deadline ([`eventually`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod idp;
pub mod nats;
pub mod portcullis;
pub mod upstream;
pub mod webdriver;

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
