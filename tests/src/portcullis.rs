//! The `portcullis` binary under test, and [`TestEnv`]: NATS + IdP + upstream + Portcullis.

use portcullis_schemas::Contract;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Browser, Idp, NatsServer, TempDir, Upstream, eventually, free_port, workspace_root};

/// A shared secret for tests (32 bytes, base64).
pub const SHARED_SECRET: &str = "c2hhcmVkLXNlY3JldC1mb3ItdGVzdHMtb25seS0xMjM=";
pub const COOKIE_SECRET: &str = "Y29va2llLXNlY3JldC1mb3ItdGVzdHMtb25seS0xMjM=";
/// The cookie name the tests configure (not `_session`, which the IdP uses on the same host).
pub const COOKIE_NAME: &str = "_portcullis_test";

/// The binary: `PORTCULLIS_BIN`, else `target/debug/portcullis` (built by `just test`).
pub fn binary() -> PathBuf {
    std::env::var_os("PORTCULLIS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/portcullis"))
}

/// One running `portcullis <subcommand>` process, killed on drop.
pub struct Portcullis {
    child: Child,
    pub log: PathBuf,
}

impl Portcullis {
    pub fn spawn(
        subcommand: &str,
        config: &std::path::Path,
        log: PathBuf,
        nats_url: Option<String>,
    ) -> Portcullis {
        let bin = binary();
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo build -p portcullis` (just test does)",
            bin.display()
        );
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut command = Command::new(bin);
        if let Some(url) = nats_url {
            command.env("PORTCULLIS_NATS__URL", url);
        }
        let child = command
            .arg(subcommand)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn portcullis");
        Portcullis { child, log }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Portcullis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How to run Portcullis in a [`TestEnv`].
#[derive(Clone)]
pub struct Options {
    /// Four processes instead of `all`.
    pub split: bool,
    pub request_timeout: &'static str,
    /// Serve HTTPS with a fresh self-signed certificate, from a config written the way a
    /// Pomerium user would write it (Pomerium's keys only, Pomerium's defaults).
    pub tls: bool,
    /// Run NATS with `deploy/nats/nats-server.conf`; each service connects as its own user
    /// (needs `split`).
    pub nats_users: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { split: false, request_timeout: "2s", tls: false, nats_users: false }
    }
}

/// A complete, isolated installation for one test.
pub struct TestEnv {
    pub nats: NatsServer,
    pub idp: Idp,
    pub upstream: Upstream,
    pub port: u16,
    pub config_path: PathBuf,
    pub options: Options,
    /// PEM of the self-signed certificate when `options.tls`.
    pub certificate: Option<Vec<u8>>,
    pub processes: Vec<(String, Portcullis)>,
    pub dir: TempDir,
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        TestEnv::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestEnv {
        let dir = TempDir::new("env");
        let port = free_port();
        let scheme = if options.tls { "https" } else { "http" };
        let auth = format!("{scheme}://authenticate.localhost:{port}");
        let (redirect, post_logout) =
            (format!("{auth}/oauth2/callback"), format!("{auth}/.portcullis/signed_out"));
        let (nats, idp, upstream) = tokio::join!(
            NatsServer::start_with(options.nats_users),
            Idp::start(&redirect, &post_logout),
            Upstream::start()
        );
        let config_path = dir.path().join("config.yaml");
        let (yaml, certificate) = if options.tls {
            let pem = self_signed_certificate(dir.path());
            (pomerium_style_yaml(port, &nats.url, &idp.issuer, &upstream.url(), dir.path()), Some(pem))
        } else {
            (config_yaml(port, &nats.url, &idp.issuer, &upstream.url(), options.request_timeout), None)
        };
        std::fs::write(&config_path, yaml).expect("write config");
        let mut env = TestEnv {
            nats,
            idp,
            upstream,
            port,
            config_path,
            options,
            certificate,
            processes: Vec::new(),
            dir,
        };
        env.start_portcullis().await;
        env
    }

    /// Start Portcullis (all-in-one or split) and wait until a login can go through.
    pub async fn start_portcullis(&mut self) {
        let subcommands: &[&str] =
            if self.options.split { &["cache", "authorize", "authenticate", "proxy"] } else { &["all"] };
        for (i, sub) in subcommands.iter().enumerate() {
            let log = self.dir.path().join(format!("portcullis-{sub}-{}-{i}.log", self.processes.len()));
            let url = self.nats.with_users.then(|| self.nats.url_for(sub));
            self.processes.push((sub.to_string(), Portcullis::spawn(sub, &self.config_path, log, url)));
        }
        self.wait_ready().await;
    }

    /// Kill every Portcullis process.
    pub fn stop_portcullis(&mut self) {
        self.processes.clear();
    }

    /// Kill the process running `subcommand`.
    pub fn kill(&mut self, subcommand: &str) {
        for (sub, p) in &mut self.processes {
            if sub == subcommand {
                p.kill();
            }
        }
    }

    pub fn logs(&self) -> String {
        self.processes.iter().map(|(s, p)| format!("--- {s} ---\n{}", p.log_text())).collect()
    }

    async fn wait_ready(&self) {
        let browser = self.browser();
        let nats = self.nats.client().await;
        let probe = serde_json::json!({"session_id": "readiness-probe"}).to_string();
        eventually("cache service answering", Duration::from_secs(20), || {
            let nats = nats.clone();
            let probe = probe.clone();
            async move { nats.request(Contract::default().cache_session_get(), probe.into()).await.ok() }
        })
        .await;
        eventually(
            "proxy, authorize and authenticate (with IdP discovery) ready",
            Duration::from_secs(20),
            || async {
                let r = browser.get_html(&self.app_url("/")).await.ok()?;
                if r.status() != 302 {
                    return None;
                }
                let sign_in = r.headers().get("location")?.to_str().ok()?.to_owned();
                let r = browser.get_html(&sign_in).await.ok()?;
                (r.status() == 302
                    && r.headers().get("location")?.to_str().ok()?.starts_with(&self.idp.issuer))
                .then_some(())
            },
        )
        .await;
    }

    fn scheme(&self) -> &'static str {
        if self.options.tls { "https" } else { "http" }
    }

    pub fn app_url(&self, path: &str) -> String {
        format!("{}://app.localhost:{}{path}", self.scheme(), self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("{}://admin.localhost:{}{path}", self.scheme(), self.port)
    }

    pub fn auth_url(&self, path: &str) -> String {
        format!("{}://authenticate.localhost:{}{path}", self.scheme(), self.port)
    }

    /// A new browser (empty cookie jar), trusting the test certificate.
    pub fn browser(&self) -> Browser {
        Browser::new(self.port, self.certificate.as_deref())
    }

    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.nats.client().await)
    }

    /// Keys in the sessions bucket.
    pub async fn session_ids(&self) -> Vec<String> {
        use futures::TryStreamExt;
        let js = self.jetstream().await;
        let Ok(kv) = js.get_key_value(Contract::default().sessions_bucket()).await else {
            return Vec::new();
        };
        match kv.keys().await {
            Ok(keys) => keys.try_collect().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Every event on the events stream, as JSON, in order.
    pub async fn events(&self) -> Vec<serde_json::Value> {
        let js = self.jetstream().await;
        let Ok(mut stream) = js.get_stream(Contract::default().events_stream()).await else {
            return Vec::new();
        };
        let Ok(info) = stream.info().await else { return Vec::new() };
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let mut out = Vec::new();
        for seq in first..=last {
            if let Ok(m) = stream.get_raw_message(seq).await {
                out.push(serde_json::from_slice(&m.payload).expect("event is JSON"));
            }
        }
        out
    }
}

fn config_yaml(port: u16, nats: &str, issuer: &str, upstream: &str, request_timeout: &str) -> String {
    format!(
        r#"# Written by the e2e harness: Pomerium keys plus `nats`.
address: 127.0.0.1:{port}
insecure_server: true
authenticate_service_url: http://authenticate.localhost:{port}
idp_provider: oidc
idp_provider_url: {issuer}
idp_client_id: portcullis
idp_client_secret: portcullis-secret
idp_scopes: openid,profile,email,groups
shared_secret: {SHARED_SECRET}
cookie_secret: {COOKIE_SECRET}
cookie_name: {COOKIE_NAME}
cookie_expire: 1h
nats:
  url: {nats}
  request_timeout: {request_timeout}
routes:
  - from: http://app.localhost
    to: {upstream}
    allowed_domains:
      - example.com
  - from: http://admin.localhost
    to: {upstream}
    policy:
      - allow:
          and:
            - claim/groups: admins
"#
    )
}

/// A self-signed P-256 certificate for the test hosts (`openssl`), returned as PEM; the
/// files are `cert.pem` and `key.pem` in `dir`.
fn self_signed_certificate(dir: &std::path::Path) -> Vec<u8> {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=portcullis test"])
        .args(["-addext", "subjectAltName=DNS:app.localhost,DNS:admin.localhost,DNS:authenticate.localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl could not make a certificate");
    std::fs::read(dir.join("cert.pem")).expect("read cert")
}

/// A configuration as a Pomerium user writes it: Pomerium keys and defaults only, plus the
/// `nats` section Portcullis needs.
fn pomerium_style_yaml(port: u16, nats: &str, issuer: &str, upstream: &str, dir: &std::path::Path) -> String {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    format!(
        r#"# A Pomerium config.yaml, unchanged but for `nats`.
address: 127.0.0.1:{port}
certificate_file: {cert}
certificate_key_file: {key}
authenticate_service_url: https://authenticate.localhost:{port}
idp_provider: oidc
idp_provider_url: {issuer}
idp_client_id: portcullis
idp_client_secret: portcullis-secret
shared_secret: {SHARED_SECRET}
cookie_secret: {COOKIE_SECRET}
pass_identity_headers: true
routes:
  - from: https://app.localhost
    to: {upstream}
    allowed_users:
      - alice@example.com
  - from: https://admin.localhost
    to: {upstream}
    policy:
      - allow:
          or:
            - email:
                is: alice@example.com
nats:
  url: {nats}
"#,
        cert = cert.display(),
        key = key.display(),
    )
}
