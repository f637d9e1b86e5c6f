//! The `portcullis` binary under test, and [`TestEnv`]: NATS + IdP + upstream + Portcullis.

use portcullis_schemas::Contract;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::idp::IdpOptions;
use crate::{Browser, Idp, NatsServer, TempDir, Upstream, eventually, free_port, workspace_root};

/// A shared secret for tests (32 bytes, base64).
pub const SHARED_SECRET: &str = "c2hhcmVkLXNlY3JldC1mb3ItdGVzdHMtb25seS0xMjM=";
pub const COOKIE_SECRET: &str = "Y29va2llLXNlY3JldC1mb3ItdGVzdHMtb25seS0xMjM=";
/// The cookie name the tests configure (not `_session`, which the IdP uses on the same host).
pub const COOKIE_NAME: &str = "_portcullis_test";

/// The binary: `PORTCULLIS_BIN`, else `debug/portcullis` in the target directory
/// (`CARGO_TARGET_DIR`, else the workspace's `target`), built by `just test`.
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("PORTCULLIS_BIN") {
        return PathBuf::from(bin);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        // Relative to where cargo runs: `just` runs it at the workspace root.
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    };
    target.join("debug/portcullis")
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
        env: &[(String, String)],
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
        command.envs(env.iter().map(|(k, v)| (k, v)));
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM and wait up to `limit` for the process to exit: how long it took, or
    /// `None` if it was still running.
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
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
    /// Lifetime of the IdP's access and ID tokens, seconds (default: the IdP's hour).
    pub token_ttl: Option<u32>,
    pub cookie_expire: &'static str,
    pub refresh_before: &'static str,
    pub sweep_interval: &'static str,
    /// `structured` or `binary`.
    pub event_mode: &'static str,
    /// Cache instances (split mode).
    pub caches: usize,
    /// Proxy instances (split mode); the extra ones listen on their own ports.
    pub proxies: usize,
    /// Have the IdP post back-channel logout tokens to the upstream recorder at
    /// `/backchannel` (ID tokens then carry `sid`).
    pub backchannel_to_recorder: bool,
    /// The proxy's decision cache (on by default, as in production).
    pub decision_cache: bool,
    /// With `tls`: ask for client certificates signed by a private CA (`client_ca_file`).
    pub mtls: bool,
    /// A `directory:` section to add (see [`crate::directory::DirectoryServer::config`]).
    pub directory: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            split: false,
            request_timeout: "2s",
            tls: false,
            nats_users: false,
            token_ttl: None,
            cookie_expire: "1h",
            refresh_before: "1m",
            sweep_interval: "10s",
            event_mode: "structured",
            caches: 1,
            proxies: 1,
            backchannel_to_recorder: false,
            decision_cache: true,
            mtls: false,
            directory: None,
        }
    }
}

/// A complete, isolated installation for one test.
pub struct TestEnv {
    pub nats: NatsServer,
    pub idp: Idp,
    pub upstream: Upstream,
    /// A second upstream (load balancing).
    pub upstream2: Upstream,
    /// A websocket echo upstream.
    pub echo: crate::websocket::EchoServer,
    /// An upstream that closes each connection after one answer, without notice.
    pub hangup: crate::upstream::Hangup,
    /// An HTTPS upstream whose certificate (for `upstream.internal`) a private CA signed.
    pub tls_upstream: Upstream,
    pub port: u16,
    pub config_path: PathBuf,
    pub options: Options,
    /// PEM of the self-signed certificate when `options.tls`.
    pub certificate: Option<Vec<u8>>,
    /// With `options.mtls`: a client certificate and key (PEM) the configured CA signed.
    pub client_identity: Option<Vec<u8>>,
    pub processes: Vec<(String, Portcullis)>,
    /// Ports of the extra proxies (`options.proxies - 1` of them).
    pub extra_proxy_ports: Vec<u16>,
    /// The IdP's user overrides (`IDP_USERS_FILE`): write to change users at the IdP.
    pub users_file: PathBuf,
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
        let users_file = dir.path().join("idp-users.json");
        std::fs::write(&users_file, "[]").expect("users file");
        let upstream = Upstream::start().await;
        let upstream2 = Upstream::start().await;
        let echo = crate::websocket::EchoServer::start().await;
        let hangup = crate::upstream::Hangup::start().await;
        let (cert, key) = private_ca_certificate(dir.path());
        let tls_upstream = Upstream::start_tls(&cert, &key).await;
        let idp_options = IdpOptions {
            redirect_uri: redirect,
            post_logout_uri: post_logout,
            backchannel_logout_uri: options
                .backchannel_to_recorder
                .then(|| format!("{}/backchannel", upstream.url())),
            token_ttl: options.token_ttl,
            users_file: Some(users_file.clone()),
        };
        let (nats, idp) =
            tokio::join!(NatsServer::start_with(options.nats_users), Idp::start_with(idp_options));
        let config_path = dir.path().join("config.yaml");
        let mut client_identity = None;
        let (yaml, certificate) = if options.tls {
            let pem = self_signed_certificate(dir.path());
            let mtls = options.mtls.then(|| {
                let (identity, fingerprint) = client_certificate(dir.path());
                client_identity = Some(identity);
                fingerprint
            });
            let mut yaml = pomerium_style_yaml(port, &nats.url, &idp.issuer, &upstream.url(), dir.path());
            if let Some(fingerprint) = mtls {
                yaml = yaml.replace(
                    "routes:\n",
                    &format!(
                        "client_ca_file: {}\nroutes:\n  - from: https://cert.localhost\n    prefix: /san\n    to: {upstream}\n    policy:\n      - allow:\n          and:\n            - client_certificate:\n                san_email: {{ends_with: \"@example.com\"}}\n                san_dns: alice-laptop.corp.example\n                san_uri: {{starts_with: \"spiffe://example.com/\"}}\n  - from: https://cert.localhost\n    prefix: /bob\n    to: {upstream}\n    policy:\n      - allow:\n          and:\n            - client_certificate:\n                san_email: bob@example.com\n  - from: https://cert.localhost\n    to: {upstream}\n    set_request_headers:\n      X-Client-Cert: \"${{pomerium.client_cert_fingerprint}}\"\n    policy:\n      - allow:\n          or:\n            - client_certificate:\n                fingerprint: \"{fingerprint}\"\n",
                        dir.path().join("client-ca.pem").display(),
                        upstream = upstream.url()
                    ),
                );
            }
            (yaml, Some(pem))
        } else {
            (
                config_yaml(
                    port,
                    &nats.url,
                    &idp.issuer,
                    &upstream.url(),
                    &upstream2.url(),
                    &echo.url(),
                    &hangup.url(),
                    &tls_upstream.https_url(),
                    dir.path(),
                    &options,
                ),
                None,
            )
        };
        std::fs::write(&config_path, yaml).expect("write config");
        let mut env = TestEnv {
            nats,
            idp,
            upstream,
            upstream2,
            echo,
            hangup,
            tls_upstream,
            port,
            config_path,
            options,
            certificate,
            client_identity,
            processes: Vec::new(),
            extra_proxy_ports: Vec::new(),
            users_file,
            dir,
        };
        env.start_portcullis().await;
        env
    }

    /// Start Portcullis (all-in-one or split) and wait until a login can go through.
    pub async fn start_portcullis(&mut self) {
        let mut plan: Vec<(&str, Vec<(String, String)>)> = Vec::new();
        if self.options.split {
            for _ in 0..self.options.caches {
                plan.push(("cache", Vec::new()));
            }
            plan.push(("authorize", Vec::new()));
            plan.push(("authenticate", Vec::new()));
            plan.push(("proxy", Vec::new()));
            if self.extra_proxy_ports.is_empty() {
                self.extra_proxy_ports = (1..self.options.proxies).map(|_| free_port()).collect();
            }
            for port in &self.extra_proxy_ports {
                plan.push(("proxy", vec![("PORTCULLIS_ADDRESS".into(), format!("127.0.0.1:{port}"))]));
            }
        } else {
            plan.push(("all", Vec::new()));
        }
        for (sub, mut env) in plan {
            let log = self.dir.path().join(format!("portcullis-{sub}-{}.log", self.processes.len()));
            if self.nats.with_users {
                env.push(("PORTCULLIS_NATS__URL".into(), self.nats.url_for(sub)));
            }
            self.processes.push((sub.to_string(), Portcullis::spawn(sub, &self.config_path, log, &env)));
        }
        self.wait_ready().await;
    }

    /// Run `portcullis <args> --config <this env's config>` to completion: (exit code, stdout,
    /// stderr).
    pub async fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = tokio::process::Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .output()
            .await
            .expect("run the portcullis CLI");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Replace the IdP's user overrides (the IdP re-reads them on every lookup).
    pub fn set_idp_users(&self, users: serde_json::Value) {
        std::fs::write(&self.users_file, users.to_string()).expect("write IdP users");
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

    /// A URL on `host` (resolved to the proxy by [`Browser`]).
    pub fn url_on(&self, host: &str, path: &str) -> String {
        format!("{}://{host}:{}{path}", self.scheme(), self.port)
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("{}://api.localhost:{}{path}", self.scheme(), self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("{}://admin.localhost:{}{path}", self.scheme(), self.port)
    }

    pub fn auth_url(&self, path: &str) -> String {
        format!("{}://authenticate.localhost:{}{path}", self.scheme(), self.port)
    }

    /// A new browser (empty cookie jar), trusting the test certificate.
    pub fn browser(&self) -> Browser {
        Browser::with_identity(self.port, self.certificate.as_deref(), self.client_identity.as_deref())
    }

    /// A browser with a client certificate from a CA Portcullis does not trust, with the
    /// same names as the trusted CA and certificate (a look-alike).
    pub fn browser_with_untrusted_certificate(&self) -> Browser {
        ca_and_leaf(
            self.dir.path(),
            "rogue",
            "/CN=portcullis client CA",
            "/CN=alice-laptop",
            "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n\
             subjectAltName=email:alice@example.com,DNS:alice-laptop.corp.example,URI:spiffe://example.com/alice\n",
        );
        let mut identity = std::fs::read(self.dir.path().join("rogue.pem")).expect("rogue cert");
        identity.extend(std::fs::read(self.dir.path().join("rogue.key")).expect("rogue key"));
        Browser::with_identity(self.port, self.certificate.as_deref(), Some(&identity))
    }

    /// A browser without a client certificate (for mTLS tests).
    pub fn browser_without_certificate(&self) -> Browser {
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

    /// Every event on the events stream as structured CloudEvents JSON, in order (binary-mode
    /// events are rebuilt from their `ce-` headers).
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
                out.push(crate::event_json(&m.headers, &m.payload));
            }
        }
        out
    }

    /// Events of CloudEvents `type`.
    pub async fn events_of(&self, ty: &str) -> Vec<serde_json::Value> {
        self.events().await.into_iter().filter(|e| e["type"] == ty).collect()
    }

    /// Every log line Portcullis wrote so far.
    pub fn all_logs(&self) -> String {
        self.processes.iter().map(|(_, p)| p.log_text()).collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn config_yaml(
    port: u16,
    nats: &str,
    issuer: &str,
    upstream: &str,
    upstream2: &str,
    echo: &str,
    hangup: &str,
    tls_upstream: &str,
    dir: &std::path::Path,
    options: &Options,
) -> String {
    let ca = dir.join("upstream-ca.pem").display().to_string();
    let Options {
        request_timeout,
        cookie_expire,
        refresh_before,
        sweep_interval,
        event_mode,
        decision_cache,
        ..
    } = options;
    format!(
        r#"# Written by the e2e harness: Pomerium keys plus `nats`.
address: 127.0.0.1:{port}
insecure_server: true
authenticate_service_url: http://authenticate.localhost:{port}
idp_provider: oidc
idp_provider_url: {issuer}
idp_client_id: portcullis
idp_client_secret: portcullis-secret
idp_scopes: openid,profile,email,groups,offline_access
shared_secret: {SHARED_SECRET}
cookie_secret: {COOKIE_SECRET}
cookie_name: {COOKIE_NAME}
cookie_expire: {cookie_expire}
nats:
  url: {nats}
  request_timeout: {request_timeout}
sessions:
  refresh_before: {refresh_before}
  sweep_interval: {sweep_interval}
events:
  mode: {event_mode}
decision_cache:
  enabled: {decision_cache}
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
  - from: http://api.localhost
    to: {upstream}
    policy:
      - allow:
          and:
            - authenticated_user: true
            - http_method:
                in: [GET, HEAD]
      - deny:
          or:
            - http_path:
                starts_with: /internal
  - from: http://rewrite.localhost
    to: {upstream}
    regex: "/re/[0-9]+"
    regex_rewrite_pattern: "^/re/(.*)$"
    regex_rewrite_substitution: "/numbers/$1"
    allow_any_authenticated_user: true
  - from: http://rewrite.localhost
    to: {upstream}/base
    prefix: /api/
    prefix_rewrite: /v2/
    preserve_host_header: true
    pass_identity_headers: false
    set_request_headers:
      X-Custom: hello
      X-Identity: "Bearer ${{pomerium.jwt}}"
      X-Access-Token: "${{pomerium.access_token}}"
      X-Id-Token: "${{portcullis.id_token}}"
    remove_request_headers: [X-Remove-Me]
    set_response_headers:
      X-Frame-Options: DENY
    allow_any_authenticated_user: true
  - from: http://*.wild.localhost
    to: {upstream}
    allow_public_unauthenticated_access: true
  - from: http://go.localhost
    redirect:
      https_redirect: true
      host_redirect: example.com
      response_code: 302
    allow_public_unauthenticated_access: true
  - from: http://lb.localhost
    prefix: /weighted/
    to: ["{upstream},3", "{upstream2},1"]
    allow_public_unauthenticated_access: true
  - from: http://lb.localhost
    to: [{upstream}, {upstream2}]
    load_balancing_policy: ROUND_ROBIN
    allow_public_unauthenticated_access: true
  - from: http://ws.localhost
    prefix: /__slow
    to: {upstream}
    timeout: 300ms
    allow_public_unauthenticated_access: true
  - from: http://ws.localhost
    prefix: /__stall
    to: {upstream}
    idle_timeout: 300ms
    allow_public_unauthenticated_access: true
  - from: http://ws.localhost
    prefix: /idle
    to: {echo}
    allow_websockets: true
    idle_timeout: 300ms
    allow_any_authenticated_user: true
  - from: http://ws.localhost
    to: {echo}
    allow_websockets: true
    allow_any_authenticated_user: true
  - from: http://nows.localhost
    to: {echo}
    allow_any_authenticated_user: true
  - from: http://keepalive.localhost
    to: {upstream2}
    allow_public_unauthenticated_access: true
  - from: http://hangup.localhost
    to: {hangup}
    allow_public_unauthenticated_access: true
  - from: http://groups.localhost
    to: {upstream}
    pass_identity_headers: true
    policy:
      - allow:
          and:
            - groups:
                has: engineering
  - from: http://claims.localhost
    to: {upstream}
    allow_any_authenticated_user: true
    jwt_claims_headers:
      X-Email: email
      X-Groups: groups
    jwt_groups_filter: [admins]
  - from: http://tlsca.localhost
    to: {tls_upstream}
    tls_custom_ca_file: {ca}
    tls_server_name: upstream.internal
    allow_public_unauthenticated_access: true
  - from: http://tlsnoca.localhost
    to: {tls_upstream}
    tls_server_name: upstream.internal
    allow_public_unauthenticated_access: true
  - from: http://tlsskip.localhost
    to: {tls_upstream}
    tls_skip_verify: true
    allow_public_unauthenticated_access: true
  - from: http://static.localhost
    response:
      status: 200
      body: static ok
    allow_public_unauthenticated_access: true
{directory}"#,
        directory = options.directory.as_deref().unwrap_or("")
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
        .args(["-addext", "subjectAltName=DNS:app.localhost,DNS:admin.localhost,DNS:authenticate.localhost,DNS:cert.localhost"])
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

/// Run `openssl` in `dir`; its stdout.
fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new P-256 CA (`{name}-ca.pem`, `{name}-ca.key` in `dir`) and a certificate it signed for
/// `subject` with the extensions `ext` (`{name}.pem`, `{name}.key`).
fn ca_and_leaf(dir: &std::path::Path, name: &str, ca_subject: &str, subject: &str, ext: &str) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let (ca_pem, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
    let (pem, key, csr, ext_file) =
        (format!("{name}.pem"), format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"));
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "1", "-subj", ca_subject, "-keyout", &ca_key, "-out", &ca_pem],
        ]
        .concat(),
    );
    openssl(dir, &[&["req"][..], &ec, &["-subj", subject, "-keyout", &key, "-out", &csr]].concat());
    std::fs::write(dir.join(&ext_file), ext).expect("ext file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &pem,
            "-extfile",
            &ext_file,
        ],
    );
}

/// A private CA (`upstream-ca.pem` in `dir`) and a server certificate it signed for
/// `upstream.internal`: (certificate PEM, key PEM).
fn private_ca_certificate(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    ca_and_leaf(
        dir,
        "upstream",
        "/CN=portcullis test CA",
        "/CN=upstream.internal",
        "subjectAltName=DNS:upstream.internal\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    (
        std::fs::read(dir.join("upstream.pem")).expect("cert"),
        std::fs::read(dir.join("upstream.key")).expect("key"),
    )
}

/// A client CA (`client-ca.pem` in `dir`) and a client certificate it signed: (certificate and
/// key PEM, SHA-256 fingerprint as `AA:BB:...`).
fn client_certificate(dir: &std::path::Path) -> (Vec<u8>, String) {
    ca_and_leaf(
        dir,
        "client",
        "/CN=portcullis client CA",
        "/CN=alice-laptop",
        "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n\
         subjectAltName=email:alice@example.com,DNS:alice-laptop.corp.example,URI:spiffe://example.com/alice\n",
    );
    let fingerprint = openssl(dir, &["x509", "-in", "client.pem", "-noout", "-fingerprint", "-sha256"]);
    let fingerprint = fingerprint.trim().rsplit('=').next().unwrap_or_default().to_owned();
    let mut identity = std::fs::read(dir.join("client.pem")).expect("client cert");
    identity.extend(std::fs::read(dir.join("client.key")).expect("client key"));
    (identity, fingerprint)
}
