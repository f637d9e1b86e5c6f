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

/// How to run the test IdP.
#[derive(Debug, Clone, Default)]
pub struct IdpOptions {
    pub redirect_uri: String,
    pub post_logout_uri: String,
    /// Where the IdP posts back-channel logout tokens (also makes ID tokens carry `sid`).
    pub backchannel_logout_uri: Option<String>,
    /// Lifetime of access and ID tokens, seconds.
    pub token_ttl: Option<u32>,
    /// A JSON file of user overrides, re-read on every lookup.
    pub users_file: Option<std::path::PathBuf>,
}

impl Idp {
    /// Start with the client's redirect and post-logout URIs.
    pub async fn start(redirect_uri: &str, post_logout_uri: &str) -> Idp {
        Idp::start_with(IdpOptions {
            redirect_uri: redirect_uri.into(),
            post_logout_uri: post_logout_uri.into(),
            ..IdpOptions::default()
        })
        .await
    }

    pub async fn start_with(options: IdpOptions) -> Idp {
        let dir = workspace_root().join("tests/idp");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "run `npm ci` in tests/idp (just test does)"
        );
        let mut command = Command::new("node");
        if let Some(uri) = &options.backchannel_logout_uri {
            command.env("IDP_BACKCHANNEL_LOGOUT_URI", uri);
        }
        if let Some(ttl) = options.token_ttl {
            command.env("IDP_ACCESS_TOKEN_TTL", ttl.to_string()).env("IDP_ID_TOKEN_TTL", ttl.to_string());
        }
        if let Some(file) = &options.users_file {
            command.env("IDP_USERS_FILE", file);
        }
        let mut child = command
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("IDP_PORT", "0")
            .env("IDP_REDIRECT_URIS", &options.redirect_uri)
            .env("IDP_POST_LOGOUT_REDIRECT_URIS", &options.post_logout_uri)
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

impl Idp {
    /// How many token requests of `grant_type` the IdP answered successfully.
    pub async fn grants(&self, grant_type: &str) -> u64 {
        let stats: serde_json::Value = reqwest::get(format!("{}/__test/stats", self.issuer))
            .await
            .expect("IdP stats")
            .json()
            .await
            .expect("IdP stats JSON");
        stats["grants"][grant_type]["success"].as_u64().unwrap_or(0)
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
