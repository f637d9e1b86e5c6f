//! The test OpenID Connect provider (`tests/idp/provider.mjs`, npm `oidc-provider`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::workspace_root;

pub struct Idp {
    /// The issuer, `http://127.0.0.1:PORT`.
    pub issuer: String,
    child: Child,
}

impl Idp {
    /// Start with the client's redirect and post-logout URIs.
    pub async fn start(redirect_uri: &str, post_logout_uri: &str) -> Idp {
        let dir = workspace_root().join("tests/idp");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "run `npm ci` in tests/idp (just test does)"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("IDP_PORT", "0")
            .env("IDP_REDIRECT_URIS", redirect_uri)
            .env("IDP_POST_LOGOUT_REDIRECT_URIS", post_logout_uri)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node provider.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                line
            }),
        )
        .await
        .expect("IdP did not start in 20s")
        .expect("read IdP stdout");
        let issuer = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected IdP output: {line:?}"))
            .to_owned();
        Idp { issuer, child }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
