//! Route reload: the configuration file is watched, and a valid new version is handed to the
//! services that route and decide (proxy, authorize) without a restart. An invalid edit is
//! logged with every problem and ignored; the running configuration stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::Shutdown;
use crate::config::{self, Config};

/// How often the file is looked at.
const POLL: Duration = Duration::from_secs(1);

/// The live configuration: read it with `borrow()`; it changes when the file does.
pub type LiveConfig = watch::Receiver<Arc<Config>>;

/// A live configuration that never changes (tests, tools).
pub fn fixed(config: Arc<Config>) -> LiveConfig {
    let (tx, rx) = watch::channel(config);
    // Keep the sender alive for the life of the process: a dropped sender is fine for
    // `borrow()`, but tasks waiting on `changed()` would return at once.
    std::mem::forget(tx);
    rx
}

/// Watch `path` and publish each valid new version. Settings other than routes take effect
/// only at the next start; a warning says so when they change.
pub fn watch_file(path: PathBuf, initial: Arc<Config>, shutdown: Shutdown) -> LiveConfig {
    let (tx, rx) = watch::channel(initial);
    tokio::spawn(async move {
        let stamp = |p: &PathBuf| {
            std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        };
        let mut seen = stamp(&path);
        while !shutdown.sleep_or_stop(POLL).await {
            let now = stamp(&path);
            if now == seen {
                continue;
            }
            seen = now;
            match config::load_and_validate(&path) {
                Ok(new) => {
                    let old = tx.borrow().clone();
                    if !same_non_route_settings(&old, &new) {
                        warn!(
                            file = %path.display(),
                            "configuration changed outside `routes`; those changes apply at the next restart"
                        );
                    }
                    info!(file = %path.display(), routes = new.routes.len(), "configuration reloaded");
                    let _ = tx.send(Arc::new(new));
                }
                Err(e) => {
                    error!(file = %path.display(), "configuration not reloaded, keeping the running one: {e}")
                }
            }
        }
    });
    rx
}

fn same_non_route_settings(a: &Config, b: &Config) -> bool {
    a.server.address == b.server.address
        && a.authenticate_url == b.authenticate_url
        && a.shared_secret == b.shared_secret
        && a.cookie_secret == b.cookie_secret
        && a.cookie.name == b.cookie.name
        && a.nats.url == b.nats.url
        && a.signing_key.kid() == b.signing_key.kid()
}
