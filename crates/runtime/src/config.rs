//! The configuration: a Pomerium `config.yaml` (the keys Portcullis supports keep Pomerium's
//! meaning) plus Portcullis's own sections, loaded with figment from the file and
//! `PORTCULLIS_*` environment overrides (`PORTCULLIS_NATS__URL` sets `nats.url`).
//!
//! Loading is two steps: [`load`] extracts the raw document, [`RawConfig::validate`] checks it
//! in full and returns a typed [`Config`] or every problem found, each naming its field.
//! Nothing binds or connects before validation passes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use portcullis_policy::{Policy, PolicyError};
use portcullis_schemas::{Contract, DEFAULT_PREFIX, is_valid_prefix};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::crypto::{Secret, sha256_b64};
use crate::duration;
use crate::signing::SigningKey;

mod directory;
pub use directory::*;

/// Environment variables with this prefix override file keys (`__` nests).
pub const ENV_PREFIX: &str = "PORTCULLIS_";
/// Pomerium's default cookie name, kept so existing cookies' names stay stable.
pub const DEFAULT_COOKIE_NAME: &str = "_pomerium";
/// Pomerium's callback path on the authenticate service.
pub const OAUTH_CALLBACK_PATH: &str = "/oauth2/callback";

const DEFAULT_COOKIE_EXPIRE: Duration = Duration::from_secs(14 * 3600);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
const DEFAULT_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// `PORTCULLIS_*` variables that are not configuration keys (lower case, prefix removed).
const NOT_CONFIG_ENV: &[&str] = &["config", "log_format", "bin"];

/// Route keys Pomerium has that would make a route match or allow more if ignored: refusing
/// to start is safer than warning.
const UNSUPPORTED_WIDENING_ROUTE_KEYS: &[&str] = &["regex_priority_order"];

/// Top-level keys Portcullis reads. Anything else in the file is warned about.
const KNOWN_KEYS: &[&str] = &[
    "address",
    "insecure_server",
    "certificate_file",
    "certificate_key_file",
    "client_ca_file",
    "authenticate_service_url",
    "idp_provider",
    "idp_provider_url",
    "idp_client_id",
    "idp_client_secret",
    "idp_client_secret_file",
    "idp_scopes",
    "shared_secret",
    "shared_secret_file",
    "cookie_secret",
    "cookie_secret_file",
    "cookie_name",
    "cookie_expire",
    "cookie_domain",
    "signing_key",
    "signing_key_file",
    "pass_identity_headers",
    "jwt_claims_headers",
    "jwt_groups_filter",
    "routes",
    "nats",
    "sessions",
    "events",
    "decision_cache",
    "directory",
    "proxy_threads",
];
const KNOWN_ROUTE_KEYS: &[&str] = &[
    "from",
    "to",
    "prefix",
    "path",
    "allow_public_unauthenticated_access",
    "allow_any_authenticated_user",
    "allowed_users",
    "allowed_domains",
    "allowed_idp_claims",
    "cors_allow_preflight",
    "policy",
    "pass_identity_headers",
    "regex",
    "prefix_rewrite",
    "regex_rewrite_pattern",
    "regex_rewrite_substitution",
    "host_rewrite",
    "host_rewrite_header",
    "preserve_host_header",
    "set_request_headers",
    "remove_request_headers",
    "set_response_headers",
    "timeout",
    "idle_timeout",
    "redirect",
    "response",
    "load_balancing_policy",
    "allow_websockets",
    "jwt_claims_headers",
    "jwt_groups_filter",
    "tls_skip_verify",
    "tls_server_name",
    "tls_custom_ca_file",
    "tls_client_cert_file",
    "tls_client_key_file",
];
const KNOWN_NATS_KEYS: &[&str] = &["url", "creds_file", "subject_prefix", "request_timeout"];
const KNOWN_SESSIONS_KEYS: &[&str] = &["refresh_before", "sweep_interval"];
const KNOWN_EVENTS_KEYS: &[&str] = &["max_age", "max_bytes", "replicas", "mode"];
const KNOWN_DECISION_CACHE_KEYS: &[&str] = &["enabled", "max_entries"];
const DEFAULT_DECISION_CACHE_ENTRIES: usize = 100_000;

const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(60);
const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `routes[2].from`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("invalid configuration:\n{}", list(.0))]
    Invalid(Vec<FieldError>),
}

fn list(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
}

/// A string or a list of strings (Pomerium accepts both, comma-separated strings too).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => {
                s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect()
            }
            StringOrList::Many(v) => v,
        }
    }
}

/// Accept a string, or a number or boolean as its text: environment overrides arrive typed
/// (`PORTCULLIS_IDP_CLIENT_SECRET=123456` is a number), and a secret is still a string.
fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(serde::de::Error::custom("expected a string")),
    }
}

/// A duration as a Go string (`"14h"`) or a number of seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    Text(String),
    Seconds(f64),
}

/// The document as written.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawConfig {
    pub address: Option<String>,
    pub insecure_server: Option<bool>,
    pub certificate_file: Option<PathBuf>,
    pub certificate_key_file: Option<PathBuf>,
    /// Pomerium's `client_ca_file`: CAs for downstream client certificates (mTLS).
    pub client_ca_file: Option<PathBuf>,
    pub authenticate_service_url: Option<String>,
    pub idp_provider: Option<String>,
    pub idp_provider_url: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub idp_client_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub idp_client_secret: Option<String>,
    pub idp_client_secret_file: Option<PathBuf>,
    pub idp_scopes: Option<StringOrList>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub shared_secret: Option<String>,
    pub shared_secret_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub cookie_secret: Option<String>,
    pub cookie_secret_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub cookie_name: Option<String>,
    pub cookie_expire: Option<RawDuration>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub cookie_domain: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub signing_key: Option<String>,
    pub signing_key_file: Option<PathBuf>,
    pub pass_identity_headers: Option<bool>,
    pub jwt_claims_headers: Option<ClaimHeaders>,
    pub jwt_groups_filter: Option<StringOrList>,
    #[serde(default)]
    pub routes: Vec<Value>,
    #[serde(default)]
    pub nats: RawNats,
    #[serde(default)]
    pub sessions: RawSessions,
    #[serde(default)]
    pub events: RawEvents,
    #[serde(default)]
    pub decision_cache: RawDecisionCache,
    #[serde(default)]
    pub directory: RawDirectory,
    pub proxy_threads: Option<i64>,
    /// Keys not read by Portcullis, for warnings.
    #[serde(skip)]
    pub unknown_keys: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawNats {
    pub url: Option<String>,
    pub creds_file: Option<PathBuf>,
    pub subject_prefix: Option<String>,
    pub request_timeout: Option<RawDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawSessions {
    pub refresh_before: Option<RawDuration>,
    pub sweep_interval: Option<RawDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawDecisionCache {
    pub enabled: Option<bool>,
    pub max_entries: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawEvents {
    pub max_age: Option<RawDuration>,
    pub max_bytes: Option<i64>,
    pub replicas: Option<i64>,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawRoute {
    from: Option<String>,
    to: Option<StringOrList>,
    prefix: Option<String>,
    path: Option<String>,
    #[serde(default)]
    allow_public_unauthenticated_access: bool,
    #[serde(default)]
    allow_any_authenticated_user: bool,
    #[serde(default)]
    allowed_users: Vec<String>,
    #[serde(default)]
    allowed_domains: Vec<String>,
    /// Claim name → accepted values (any value of any listed claim).
    #[serde(default)]
    allowed_idp_claims: serde_json::Map<String, Value>,
    #[serde(default)]
    cors_allow_preflight: bool,
    policy: Option<Value>,
    pass_identity_headers: Option<bool>,
    regex: Option<String>,
    prefix_rewrite: Option<String>,
    regex_rewrite_pattern: Option<String>,
    regex_rewrite_substitution: Option<String>,
    host_rewrite: Option<String>,
    host_rewrite_header: Option<String>,
    #[serde(default)]
    preserve_host_header: bool,
    #[serde(default)]
    set_request_headers: BTreeMap<String, String>,
    #[serde(default)]
    remove_request_headers: Vec<String>,
    #[serde(default)]
    set_response_headers: BTreeMap<String, String>,
    timeout: Option<RawDuration>,
    idle_timeout: Option<RawDuration>,
    redirect: Option<RawRedirect>,
    response: Option<RawResponse>,
    load_balancing_policy: Option<String>,
    #[serde(default)]
    allow_websockets: bool,
    jwt_claims_headers: Option<ClaimHeaders>,
    jwt_groups_filter: Option<StringOrList>,
    #[serde(default)]
    tls_skip_verify: bool,
    tls_server_name: Option<String>,
    tls_custom_ca_file: Option<PathBuf>,
    tls_client_cert_file: Option<PathBuf>,
    tls_client_key_file: Option<PathBuf>,
}

/// `jwt_claims_headers`: a map of header → claim, or a list of claims (headers then are
/// `X-Pomerium-Claim-<Claim>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ClaimHeaders {
    Map(BTreeMap<String, String>),
    List(StringOrList),
}

impl ClaimHeaders {
    fn pairs(&self) -> Vec<(String, String)> {
        match self {
            ClaimHeaders::Map(m) => m.iter().map(|(h, c)| (h.to_ascii_lowercase(), c.clone())).collect(),
            ClaimHeaders::List(l) => l
                .clone()
                .into_vec()
                .into_iter()
                .map(|c| (format!("x-pomerium-claim-{}", c.to_ascii_lowercase()), c))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawRedirect {
    #[serde(default)]
    https_redirect: bool,
    scheme_redirect: Option<String>,
    host_redirect: Option<String>,
    port_redirect: Option<u16>,
    path_redirect: Option<String>,
    #[serde(default)]
    strip_query: bool,
    response_code: Option<u16>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawResponse {
    status: Option<u16>,
    body: Option<String>,
}

/// The validated configuration every service reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub authenticate_url: Url,
    pub idp: IdpConfig,
    pub shared_secret: Secret,
    pub cookie_secret: Secret,
    pub cookie: CookieConfig,
    pub signing_key: SigningKey,
    pub routes: Vec<Route>,
    /// Routes by host, for lookups that do not scan every route.
    pub route_index: RouteIndex,
    pub nats: NatsConfig,
    pub sessions: SessionsConfig,
    pub events: EventsConfig,
    pub decision_cache: DecisionCacheConfig,
    /// How many threads serve proxy connections (Portcullis's own `proxy_threads`, like
    /// Envoy's `--concurrency` or nginx's `worker_processes`); `None`: one per core.
    pub proxy_threads: Option<usize>,
    /// Directory sync (Portcullis's own section `directory:`); `None` when not configured.
    pub directory: Option<DirectoryConfig>,
    /// Non-fatal findings (unknown keys), to log at start.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: SocketAddr,
    /// `None` with `insecure_server: true`.
    pub tls: Option<TlsFiles>,
    /// PEM of the CAs that sign client certificates; with it every request must present
    /// a certificate they signed (else 495), and `client_certificate` criteria can match it.
    pub client_ca_pem: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate_file: PathBuf,
    pub certificate_key_file: PathBuf,
}

#[derive(Clone)]
pub struct IdpConfig {
    pub provider_url: Url,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for IdpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpConfig")
            .field("provider_url", &self.provider_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"..")
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct CookieConfig {
    pub name: String,
    pub expire: Duration,
    pub domain: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    pub creds_file: Option<PathBuf>,
    pub contract: Contract,
    /// Deadline of every request-reply call between services.
    pub request_timeout: Duration,
}

/// Session lifecycle (Portcullis's own section `sessions:`).
#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// Refresh tokens this long before they expire.
    pub refresh_before: Duration,
    /// How often the cache service looks for sessions to refresh or expire.
    pub sweep_interval: Duration,
}

/// The proxy's soft cache of authorize decisions (Portcullis's own section `decision_cache:`).
#[derive(Debug, Clone)]
pub struct DecisionCacheConfig {
    pub enabled: bool,
    /// The cache is emptied when it grows past this.
    pub max_entries: usize,
}

/// How events are published (Portcullis's own section `events:`).
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Stream retention by age.
    pub max_age: Duration,
    /// Stream retention by size; -1 is unlimited.
    pub max_bytes: i64,
    /// Stream replicas (1, or 3 in a cluster).
    pub replicas: usize,
    pub mode: EventMode,
}

/// CloudEvents NATS binding content mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventMode {
    /// The whole event as `application/cloudevents+json`.
    Structured,
    /// `ce-` headers, the data as the body.
    Binary,
}

/// Where a route listens: scheme, host (lower case) and optional explicit port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFrom {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

/// One route, validated and with its policy compiled.
#[derive(Debug, Clone)]
pub struct Route {
    /// Content hash of the route's configuration: the same on every instance that reads the
    /// same route, different as soon as anything in it changes.
    pub id: String,
    /// Position in the file, for messages.
    pub index: usize,
    pub from: RouteFrom,
    pub to: Vec<Url>,
    /// Relative load-balancing weight of each `to` entry (Pomerium's `url,weight`); all 1
    /// when none is given.
    pub weights: Vec<u32>,
    pub prefix: Option<String>,
    pub path: Option<String>,
    pub policy: Policy,
    pub pass_identity_headers: bool,
    /// A full-match path regex (takes precedence over `path` and `prefix`, as in Pomerium).
    pub regex: Option<regex::Regex>,
    /// What replaces the matched `prefix` in the upstream path.
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<(regex::Regex, String)>,
    pub host: HostRewrite,
    /// Headers set on the upstream request; values may use `${pomerium.jwt}`.
    pub set_request_headers: Vec<(String, String)>,
    pub remove_request_headers: Vec<String>,
    /// Headers set on responses (Pomerium's security defaults plus the route's own).
    pub set_response_headers: Vec<(String, String)>,
    /// Deadline for the upstream's response headers (`0s` in the config: none).
    pub timeout: Duration,
    /// How long a response body or a websocket may go without a byte in either direction
    /// before the proxy closes it; `None` (`0s` in the config) never.
    pub idle_timeout: Option<Duration>,
    pub action: RouteAction,
    /// How a request picks one of several `to` upstreams.
    pub load_balancing: LoadBalancing,
    /// Proxy `Upgrade: websocket` requests (both directions) after authorization.
    pub allow_websockets: bool,
    /// (header, claim) pairs passed to the upstream with the identity.
    pub jwt_claims_headers: Vec<(String, String)>,
    /// Only these groups go into the JWT and claim headers (`None`: all).
    pub jwt_groups_filter: Option<Vec<String>>,
    /// TLS settings for `https://` upstreams (`None`: system roots, upstream host name).
    pub upstream_tls: Option<UpstreamTls>,
}

/// A route's TLS settings towards its upstreams (files read when the configuration loads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Accept any certificate (Pomerium's `tls_skip_verify`; for tests and emergencies).
    pub skip_verify: bool,
    /// The name to send (SNI) and to verify instead of the URL's host.
    pub server_name: Option<String>,
    /// PEM of extra trusted CAs.
    pub custom_ca_pem: Option<String>,
    /// PEM of a client certificate chain and its key, for upstreams that want mTLS.
    pub client_cert_pem: Option<(String, String)>,
}

/// Pomerium's `load_balancing_policy` values that Portcullis implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancing {
    RoundRobin,
    Random,
    /// The upstream with the fewest requests in flight (counted by this proxy process).
    LeastRequest,
    /// Requests of one session stick to one upstream (hash of the session id).
    RingHash,
}

/// The `Host` the upstream receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRewrite {
    /// The upstream's own host (Pomerium's default).
    Upstream,
    /// The host the client asked for (`preserve_host_header`).
    Preserve,
    /// A fixed host (`host_rewrite`).
    Fixed(String),
    /// The value of a request header (`host_rewrite_header`).
    FromHeader(String),
}

/// What an allowed request on the route gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    Forward,
    Redirect(Redirect),
    Respond { status: u16, body: String },
}

/// Pomerium's `redirect` route settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub strip_query: bool,
    pub status: u16,
}

/// Pomerium's default security headers on responses (a route's `set_response_headers`
/// overrides them by name).
pub const DEFAULT_RESPONSE_HEADERS: [(&str, &str); 2] =
    [("x-frame-options", "SAMEORIGIN"), ("x-xss-protection", "1; mode=block")];
/// Most proxy serving threads `proxy_threads` may ask for.
pub const MAX_PROXY_THREADS: i64 = 256;
/// Pomerium's default upstream timeout.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(30);

/// Pomerium's default stream idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

impl Route {
    /// Whether `set_request_headers` uses `${pomerium.<what>}` (or `${portcullis.<what>}`).
    pub fn uses_template(&self, what: &str) -> bool {
        // Asked for every check: no allocation.
        let names = |v: &str, prefix: &str| {
            v.match_indices(prefix).any(|(at, _)| {
                v[at + prefix.len()..].strip_prefix(what).is_some_and(|rest| rest.starts_with('}'))
            })
        };
        self.set_request_headers.iter().any(|(_, v)| names(v, "${pomerium.") || names(v, "${portcullis."))
    }

    /// Whether this route serves `host` (lower case, no port) on `port` and `path`.
    pub fn matches(&self, host: &str, port: Option<u16>, path: &str) -> bool {
        if !self.from.matches_host(host) {
            return false;
        }
        if let (Some(want), Some(got)) = (self.from.port, port)
            && want != got
        {
            return false;
        }
        if let Some(r) = &self.regex {
            return r.is_match(path);
        }
        if let Some(p) = &self.path {
            return path == p;
        }
        if let Some(p) = &self.prefix {
            return path.starts_with(p.as_str());
        }
        true
    }

    /// The path the upstream receives for the (normalised) request `path`.
    pub fn upstream_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        if let (Some(prefix), Some(rewrite)) = (&self.prefix, &self.prefix_rewrite)
            && let Some(rest) = path.strip_prefix(prefix.as_str())
        {
            return std::borrow::Cow::Owned(format!("{rewrite}{rest}"));
        }
        if let Some((re, substitution)) = &self.regex_rewrite {
            return re.replace(path, substitution.as_str());
        }
        std::borrow::Cow::Borrowed(path)
    }
}

impl RouteFrom {
    /// `host` is the route's host, or matches its `*.` wildcard (one or more labels).
    pub fn matches_host(&self, host: &str) -> bool {
        match self.host.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
            None => self.host == host,
        }
    }
}

/// Route positions by host: exact hosts first, then wildcard hosts, each in file order.
#[derive(Debug, Clone, Default)]
pub struct RouteIndex {
    exact: std::collections::HashMap<String, Vec<usize>>,
    /// Suffix after `*.` → route positions, in file order.
    wildcard: std::collections::HashMap<String, Vec<usize>>,
}

impl RouteIndex {
    pub fn build(routes: &[Route]) -> RouteIndex {
        let mut index = RouteIndex::default();
        for (i, r) in routes.iter().enumerate() {
            match r.from.host.strip_prefix("*.") {
                Some(suffix) => index.wildcard.entry(suffix.to_owned()).or_default().push(i),
                None => index.exact.entry(r.from.host.clone()).or_default().push(i),
            }
        }
        index
    }
}

impl Config {
    /// The route serving `host` (lower case, no port), `port` and normalised `path`: routes
    /// naming the host exactly come first, then wildcard routes; file order within each.
    pub fn find_route(&self, host: &str, port: Option<u16>, path: &str) -> Option<&Route> {
        self.find_route_position(host, port, path).map(|i| &self.routes[i])
    }

    /// [`Config::find_route`], as the route's position in `routes`.
    pub fn find_route_position(&self, host: &str, port: Option<u16>, path: &str) -> Option<usize> {
        let try_list =
            |list: &[usize]| list.iter().copied().find(|&i| self.routes[i].matches(host, port, path));
        if let Some(list) = self.route_index.exact.get(host)
            && let Some(i) = try_list(list)
        {
            return Some(i);
        }
        if self.route_index.wildcard.is_empty() {
            return None;
        }
        // Every suffix after a label of the host (`a.b.example.com` → `b.example.com`,
        // `example.com`, `com`) may have wildcard routes; take them in file order.
        let mut candidates: Vec<usize> = host
            .match_indices('.')
            .filter_map(|(i, _)| self.route_index.wildcard.get(&host[i + 1..]))
            .flatten()
            .copied()
            .collect();
        candidates.sort_unstable();
        try_list(&candidates)
    }

    /// Whether `url` points at a host some route serves (for redirect-target checks).
    pub fn is_route_url(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        matches!(url.scheme(), "http" | "https")
            && url.username().is_empty()
            && url.password().is_none()
            && self.routes.iter().any(|r| {
                r.from.matches_host(&host)
                    && r.from.port.is_none_or(|p| Some(p) == url.port_or_known_default())
            })
    }

    pub fn route_by_id(&self, id: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.id == id)
    }
}

/// Load `path` with environment overrides; returns the raw document (validate next).
pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
    let read_err = |message: String| ConfigError::Read { path: path.to_owned(), message };
    if !path.is_file() {
        return Err(read_err("no such file".into()));
    }
    let env = Env::prefixed(ENV_PREFIX).ignore(NOT_CONFIG_ENV).split("__");
    let figment = Figment::from(Yaml::file_exact(path)).merge(env);
    let value: Value = figment.extract().map_err(|e| read_err(e.to_string()))?;
    let mut raw: RawConfig = serde_json::from_value(value.clone()).map_err(|e| {
        ConfigError::Invalid(vec![FieldError { field: "(document)".into(), message: e.to_string() }])
    })?;
    raw.unknown_keys = unknown_keys(&value);
    Ok(raw)
}

/// Load and validate in one step.
pub fn load_and_validate(path: &Path) -> Result<Config, ConfigError> {
    load(path)?.validate()
}

fn unknown_keys(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(map) = doc.as_object() else {
        return out;
    };
    for key in map.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            out.push(key.clone());
        }
    }
    for (section, known) in [
        ("nats", KNOWN_NATS_KEYS),
        ("sessions", KNOWN_SESSIONS_KEYS),
        ("events", KNOWN_EVENTS_KEYS),
        ("decision_cache", KNOWN_DECISION_CACHE_KEYS),
    ] {
        if let Some(m) = map.get(section).and_then(Value::as_object) {
            out.extend(m.keys().filter(|k| !known.contains(&k.as_str())).map(|k| format!("{section}.{k}")));
        }
    }
    if let Some(routes) = map.get("routes").and_then(Value::as_array) {
        for (i, r) in routes.iter().enumerate() {
            if let Some(r) = r.as_object() {
                out.extend(
                    r.keys()
                        .filter(|k| !KNOWN_ROUTE_KEYS.contains(&k.as_str()))
                        .map(|k| format!("routes[{i}].{k}")),
                );
            }
        }
    }
    out
}

/// Collects field errors while validation goes on, so the user sees them all at once.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    /// Record `result`'s error under `field`; return its value.
    fn check<T, E: std::fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.add(field, e.to_string())).ok()
    }
}

impl RawConfig {
    /// Check everything; return the typed configuration or every problem found.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut p = Problems::default();
        let server = self.server(&mut p);
        let authenticate_url = self.authenticate_url(&mut p);
        let idp = self.idp(&mut p);
        let shared_secret =
            secret(&mut p, "shared_secret", &self.shared_secret, &self.shared_secret_file, true).flatten();
        let cookie_secret =
            secret(&mut p, "cookie_secret", &self.cookie_secret, &self.cookie_secret_file, false);
        let cookie = self.cookie(&mut p);
        let signing_key = match (&self.signing_key, &self.signing_key_file, &shared_secret) {
            (Some(_), Some(_), _) => {
                p.add("signing_key", "set either signing_key or signing_key_file, not both");
                None
            }
            (Some(text), None, _) => p.check("signing_key", SigningKey::from_config_text(text)),
            (None, Some(path), _) => {
                let text = p.check("signing_key_file", read_secret_file(path));
                text.and_then(|t| p.check("signing_key_file", SigningKey::from_config_text(&t)))
            }
            (None, None, Some(shared)) => Some(SigningKey::derive_from(shared)),
            (None, None, None) => None,
        };
        let defaults = RouteDefaults {
            pass_identity_headers: self.pass_identity_headers.unwrap_or(true),
            jwt_claims_headers: self.jwt_claims_headers.as_ref().map(ClaimHeaders::pairs).unwrap_or_default(),
            jwt_groups_filter: self.jwt_groups_filter.clone().map(StringOrList::into_vec),
        };
        let routes = routes(&mut p, &self.routes, &defaults);
        let nats = self.nats(&mut p);
        let sessions = self.sessions_config(&mut p);
        let events = self.events_config(&mut p);
        let directory = if self.directory.is_empty() { None } else { self.directory.validate(&mut p) };
        let proxy_threads = match self.proxy_threads {
            None => None,
            Some(n @ 1..=MAX_PROXY_THREADS) => Some(n as usize),
            Some(_) => {
                p.add(
                    "proxy_threads",
                    format!("must be between 1 and {MAX_PROXY_THREADS} (leave it out for one per core)"),
                );
                None
            }
        };
        let warnings: Vec<String> =
            self.unknown_keys.iter().map(|k| format!("{k}: unknown or unsupported key, ignored")).collect();
        if let Some(auth_host) = authenticate_url.as_ref().and_then(|u| u.host_str()) {
            let auth_host = auth_host.to_ascii_lowercase();
            for r in routes.iter().filter(|r| r.from.host == auth_host) {
                p.add(
                    format!("routes[{}].from", r.index),
                    "must not use the host of authenticate_service_url (that host belongs to the sign-in flow)",
                );
            }
        }

        match (server, authenticate_url, idp, shared_secret, cookie, signing_key, nats, sessions, events) {
            (
                Some(server),
                Some(authenticate_url),
                Some(idp),
                Some(shared_secret),
                Some(cookie),
                Some(signing_key),
                Some(nats),
                Some(sessions),
                Some(events),
            ) if p.0.is_empty() => {
                // Without a cookie_secret, derive one from the shared secret: every instance
                // then agrees on it, unlike Pomerium's random per-process fallback.
                let cookie_secret = cookie_secret.flatten().unwrap_or_else(|| {
                    Secret::from_bytes(shared_secret.derive(b"portcullis cookie secret v1"))
                });
                let route_index = RouteIndex::build(&routes);
                Ok(Config {
                    route_index,
                    server,
                    authenticate_url,
                    idp,
                    shared_secret,
                    cookie_secret,
                    cookie,
                    signing_key,
                    routes,
                    nats,
                    sessions,
                    events,
                    decision_cache: self.decision_cache_config(),
                    proxy_threads,
                    directory,
                    warnings,
                })
            }
            _ => {
                if p.0.is_empty() {
                    p.add("(document)", "incomplete configuration");
                }
                Err(ConfigError::Invalid(p.0))
            }
        }
    }

    fn server(&self, p: &mut Problems) -> Option<ServerConfig> {
        let address = p.check("address", parse_address(self.address.as_deref().unwrap_or(":443")));
        let tls = match (
            self.insecure_server.unwrap_or(false),
            &self.certificate_file,
            &self.certificate_key_file,
        ) {
            (_, Some(cert), Some(key)) => {
                for (field, path) in [("certificate_file", cert), ("certificate_key_file", key)] {
                    if !path.is_file() {
                        p.add(field, format!("no such file: {}", path.display()));
                    }
                }
                Some(TlsFiles { certificate_file: cert.clone(), certificate_key_file: key.clone() })
            }
            (_, Some(_), None) => {
                p.add("certificate_key_file", "required when certificate_file is set");
                None
            }
            (_, None, Some(_)) => {
                p.add("certificate_file", "required when certificate_key_file is set");
                None
            }
            (true, None, None) => None,
            (false, None, None) => {
                p.add("certificate_file", "set certificate_file and certificate_key_file, or insecure_server: true to serve plain HTTP");
                None
            }
        };
        let client_ca_pem = match &self.client_ca_file {
            None => None,
            Some(path) if tls.is_none() => {
                p.add(
                    "client_ca_file",
                    format!(
                        "needs TLS (certificate_file) to ask for client certificates: {}",
                        path.display()
                    ),
                );
                None
            }
            Some(path) => p.check(
                "client_ca_file",
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display())),
            ),
        };
        Some(ServerConfig { address: address?, tls, client_ca_pem })
    }

    fn authenticate_url(&self, p: &mut Problems) -> Option<Url> {
        let Some(text) = &self.authenticate_service_url else {
            p.add("authenticate_service_url", "required (e.g. https://authenticate.example.com)");
            return None;
        };
        let url = p.check("authenticate_service_url", http_url(text))?;
        if url.path() != "/" || url.query().is_some() {
            p.add("authenticate_service_url", "must be a bare origin without path or query");
            return None;
        }
        Some(url)
    }

    fn idp(&self, p: &mut Problems) -> Option<IdpConfig> {
        match self.idp_provider.as_deref() {
            Some("oidc") | None => {}
            Some(other) => {
                p.add("idp_provider", format!("`{other}` is not supported; use `oidc` with idp_provider_url"))
            }
        }
        let provider_url = match &self.idp_provider_url {
            Some(u) => p.check("idp_provider_url", http_url(u)),
            None => {
                p.add("idp_provider_url", "required (the IdP's issuer URL)");
                None
            }
        };
        let client_id = self.idp_client_id.clone().filter(|s| !s.is_empty());
        if client_id.is_none() {
            p.add("idp_client_id", "required");
        }
        let client_secret = match (&self.idp_client_secret, &self.idp_client_secret_file) {
            (Some(_), Some(_)) => {
                p.add(
                    "idp_client_secret",
                    "set either idp_client_secret or idp_client_secret_file, not both",
                );
                None
            }
            (Some(s), None) => Some(s.clone()),
            (None, Some(path)) => p.check("idp_client_secret_file", read_secret_file(path)),
            (None, None) => {
                p.add("idp_client_secret", "required (or idp_client_secret_file)");
                None
            }
        };
        let scopes = match self.idp_scopes.clone().map(StringOrList::into_vec) {
            Some(s) if s.is_empty() => {
                p.add("idp_scopes", "must not be empty");
                return None;
            }
            Some(mut s) => {
                if !s.iter().any(|x| x == "openid") {
                    s.insert(0, "openid".into());
                }
                s
            }
            None => DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
        };
        Some(IdpConfig {
            provider_url: provider_url?,
            client_id: client_id?,
            client_secret: client_secret?,
            scopes,
        })
    }

    fn cookie(&self, p: &mut Problems) -> Option<CookieConfig> {
        let name = self.cookie_name.clone().unwrap_or_else(|| DEFAULT_COOKIE_NAME.into());
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            p.add("cookie_name", "must be a non-empty token of letters, digits, `-`, `_` or `.`");
        }
        let expire = match &self.cookie_expire {
            None => Some(DEFAULT_COOKIE_EXPIRE),
            Some(d) => p.check("cookie_expire", raw_duration(d)),
        };
        if expire.is_some_and(|e| e < Duration::from_secs(5)) {
            p.add("cookie_expire", "must be at least 5s");
        }
        let domain = self.cookie_domain.clone().filter(|d| !d.is_empty());
        if let Some(d) = &domain
            && d.contains(['/', ':', ' ', ';'])
        {
            p.add("cookie_domain", "must be a bare domain such as example.com");
        }
        Some(CookieConfig { name, expire: expire?, domain })
    }

    fn nats(&self, p: &mut Problems) -> Option<NatsConfig> {
        let url = self.nats.url.clone().unwrap_or_else(|| DEFAULT_NATS_URL.into());
        if url.is_empty() {
            p.add("nats.url", "must not be empty");
        }
        if let Some(path) = &self.nats.creds_file
            && !path.is_file()
        {
            p.add("nats.creds_file", format!("no such file: {}", path.display()));
        }
        let prefix = self.nats.subject_prefix.clone().unwrap_or_else(|| DEFAULT_PREFIX.into());
        if !is_valid_prefix(&prefix) {
            p.add("nats.subject_prefix", "must be 1-32 characters of a-z, 0-9 or `_`");
            return None;
        }
        let request_timeout = match &self.nats.request_timeout {
            None => DEFAULT_REQUEST_TIMEOUT,
            Some(d) => p.check("nats.request_timeout", raw_duration(d))?,
        };
        if request_timeout.is_zero() {
            p.add("nats.request_timeout", "must be positive");
        }
        Some(NatsConfig {
            url,
            creds_file: self.nats.creds_file.clone(),
            contract: Contract::new(&prefix),
            request_timeout,
        })
    }
}

impl RawConfig {
    fn sessions_config(&self, p: &mut Problems) -> Option<SessionsConfig> {
        let refresh_before = match &self.sessions.refresh_before {
            None => DEFAULT_REFRESH_BEFORE,
            Some(d) => p.check("sessions.refresh_before", raw_duration(d))?,
        };
        let sweep_interval = match &self.sessions.sweep_interval {
            None => DEFAULT_SWEEP_INTERVAL,
            Some(d) => p.check("sessions.sweep_interval", raw_duration(d))?,
        };
        if sweep_interval < Duration::from_millis(100) {
            p.add("sessions.sweep_interval", "must be at least 100ms");
        }
        Some(SessionsConfig { refresh_before, sweep_interval })
    }

    fn decision_cache_config(&self) -> DecisionCacheConfig {
        DecisionCacheConfig {
            enabled: self.decision_cache.enabled.unwrap_or(true),
            max_entries: self
                .decision_cache
                .max_entries
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_DECISION_CACHE_ENTRIES),
        }
    }

    fn events_config(&self, p: &mut Problems) -> Option<EventsConfig> {
        let max_age = match &self.events.max_age {
            None => DEFAULT_EVENTS_MAX_AGE,
            Some(d) => p.check("events.max_age", raw_duration(d))?,
        };
        let max_bytes = self.events.max_bytes.unwrap_or(-1);
        if max_bytes == 0 || max_bytes < -1 {
            p.add("events.max_bytes", "must be a positive number of bytes, or -1 for no limit");
        }
        let replicas = self.events.replicas.unwrap_or(1);
        if !(1..=5).contains(&replicas) {
            p.add("events.replicas", "must be between 1 and 5");
        }
        let mode = match self.events.mode.as_deref() {
            None | Some("structured") => EventMode::Structured,
            Some("binary") => EventMode::Binary,
            Some(other) => {
                p.add("events.mode", format!("`{other}` is not a mode; use structured or binary"));
                return None;
            }
        };
        Some(EventsConfig { max_age, max_bytes, replicas: replicas.max(1) as usize, mode })
    }
}

fn secret(
    p: &mut Problems,
    field: &str,
    inline: &Option<String>,
    file: &Option<PathBuf>,
    required: bool,
) -> Option<Option<Secret>> {
    let file_field = format!("{field}_file");
    let text = match (inline, file) {
        (Some(_), Some(_)) => {
            p.add(field, format!("set either {field} or {file_field}, not both"));
            return None;
        }
        (Some(t), None) => t.clone(),
        (None, Some(path)) => p.check(&file_field, read_secret_file(path))?,
        (None, None) if required => {
            p.add(field, "required: 32 random bytes, base64 (`head -c32 /dev/urandom | base64`)");
            return None;
        }
        (None, None) => return Some(None),
    };
    p.check(field, Secret::from_base64(&text)).map(Some)
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn raw_duration(d: &RawDuration) -> Result<Duration, String> {
    match d {
        RawDuration::Text(t) => duration::parse(t),
        RawDuration::Seconds(s) => Duration::try_from_secs_f64(*s).map_err(|e| e.to_string()),
    }
}

/// `:443`, `0.0.0.0:80`, `[::1]:8443`, `localhost:8080`.
fn parse_address(text: &str) -> Result<SocketAddr, String> {
    let bad = || format!("`{text}` is not an address (expected host:port, e.g. :443 or 127.0.0.1:8443)");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip: IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other.parse().map_err(|_| bad())?,
    };
    Ok(SocketAddr::new(ip, port))
}

fn http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{text}` must be an http or https URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(url)
}

/// Global settings a route inherits unless it sets its own.
struct RouteDefaults {
    pass_identity_headers: bool,
    jwt_claims_headers: Vec<(String, String)>,
    jwt_groups_filter: Option<Vec<String>>,
}

fn routes(p: &mut Problems, raw: &[Value], defaults: &RouteDefaults) -> Vec<Route> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, value) in raw.iter().enumerate() {
        let field = |k: &str| format!("routes[{i}].{k}");
        for key in UNSUPPORTED_WIDENING_ROUTE_KEYS {
            if value.get(key).is_some() {
                p.add(
                    field(key),
                    "not supported yet; refusing to start, since ignoring it would widen the route",
                );
            }
        }
        let r: RawRoute = match serde_json::from_value(value.clone()) {
            Ok(r) => r,
            Err(e) => {
                p.add(format!("routes[{i}]"), e.to_string());
                continue;
            }
        };
        let from = match r.from.as_deref() {
            Some(t) => p.check(&field("from"), route_from(t)),
            None => {
                p.add(field("from"), "required");
                None
            }
        };
        let action = route_action(p, &r, &field);
        // Pomerium reads each `to` entry whole (a single string is one upstream), with an
        // optional `,weight` after the URL.
        let entries = match r.to.clone() {
            Some(StringOrList::One(s)) => vec![s],
            Some(StringOrList::Many(v)) => v,
            None => Vec::new(),
        };
        let (to, weights): (Vec<Url>, Vec<u32>) = match entries.is_empty() {
            false => weighted_upstreams(p, &field("to"), &entries),
            true if !matches!(action, RouteAction::Forward) => (Vec::new(), Vec::new()),
            true => {
                p.add(field("to"), "required: the upstream URL(s) (or `redirect` or `response`)");
                (Vec::new(), Vec::new())
            }
        };
        let regex = r.regex.as_deref().and_then(|re| {
            p.check(&field("regex"), regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| e.to_string()))
        });
        let regex_rewrite = match (&r.regex_rewrite_pattern, &r.regex_rewrite_substitution) {
            (Some(pat), Some(sub)) => p
                .check(&field("regex_rewrite_pattern"), regex::Regex::new(pat).map_err(|e| e.to_string()))
                .map(|re| (re, sub.clone())),
            (None, None) => None,
            _ => {
                p.add(
                    field("regex_rewrite_pattern"),
                    "regex_rewrite_pattern and regex_rewrite_substitution go together",
                );
                None
            }
        };
        if r.prefix_rewrite.is_some() && r.prefix.is_none() {
            p.add(field("prefix_rewrite"), "needs `prefix` (the part it replaces)");
        }
        let host = match (r.preserve_host_header, &r.host_rewrite, &r.host_rewrite_header) {
            (false, None, None) => HostRewrite::Upstream,
            (true, None, None) => HostRewrite::Preserve,
            (false, Some(h), None) => HostRewrite::Fixed(h.clone()),
            (false, None, Some(h)) => HostRewrite::FromHeader(h.to_ascii_lowercase()),
            _ => {
                p.add(
                    field("host_rewrite"),
                    "use only one of preserve_host_header, host_rewrite, host_rewrite_header",
                );
                HostRewrite::Upstream
            }
        };
        let set_request_headers = header_pairs(p, &field("set_request_headers"), &r.set_request_headers);
        let mut set_response_headers: Vec<(String, String)> = DEFAULT_RESPONSE_HEADERS
            .iter()
            .filter(|(k, _)| !r.set_response_headers.keys().any(|n| n.eq_ignore_ascii_case(k)))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        set_response_headers.extend(header_pairs(p, &field("set_response_headers"), &r.set_response_headers));
        let load_balancing = match r.load_balancing_policy.as_deref() {
            None | Some("ROUND_ROBIN") | Some("round_robin") => LoadBalancing::RoundRobin,
            Some("RANDOM") | Some("random") => LoadBalancing::Random,
            Some("LEAST_REQUEST") | Some("least_request") => LoadBalancing::LeastRequest,
            Some("RING_HASH") | Some("ring_hash") | Some("MAGLEV") | Some("maglev") => {
                LoadBalancing::RingHash
            }
            Some(other) => {
                p.add(
                    field("load_balancing_policy"),
                    format!("`{other}` is not one of ROUND_ROBIN, RANDOM, LEAST_REQUEST, RING_HASH, MAGLEV"),
                );
                LoadBalancing::RoundRobin
            }
        };
        let upstream_tls = upstream_tls(p, &r, &field);
        let timeout = match &r.timeout {
            None => DEFAULT_ROUTE_TIMEOUT,
            Some(d) => p.check(&field("timeout"), raw_duration(d)).unwrap_or(DEFAULT_ROUTE_TIMEOUT),
        };
        // `0s` turns the deadline off, as in Pomerium (long polls, streams).
        let timeout = if timeout.is_zero() { Duration::MAX } else { timeout };
        let idle_timeout = match &r.idle_timeout {
            None => Some(DEFAULT_IDLE_TIMEOUT),
            Some(d) => {
                p.check(&field("idle_timeout"), raw_duration(d)).and_then(|d| (!d.is_zero()).then_some(d))
            }
        };
        for (k, v) in [("prefix", &r.prefix), ("path", &r.path)] {
            if v.as_deref().is_some_and(|s| !s.starts_with('/')) {
                p.add(field(k), "must start with `/`");
            }
        }
        if r.allow_public_unauthenticated_access
            && (r.allow_any_authenticated_user
                || !r.allowed_users.is_empty()
                || !r.allowed_domains.is_empty())
        {
            p.add(
                field("allow_public_unauthenticated_access"),
                "cannot be combined with allow_any_authenticated_user, allowed_users or allowed_domains",
            );
        }
        if r.allow_any_authenticated_user && (!r.allowed_users.is_empty() || !r.allowed_domains.is_empty()) {
            p.add(
                field("allow_any_authenticated_user"),
                "cannot be combined with allowed_users or allowed_domains",
            );
        }
        let policy = match route_policy(&r) {
            Ok(policy) => Some(policy),
            Err((key, e)) => {
                p.add(field(key), e.to_string());
                None
            }
        };
        if let (Some(from), Some(policy)) = (from, policy) {
            if to.is_empty() && matches!(action, RouteAction::Forward) {
                continue;
            }
            out.push(Route {
                id: route_id(value),
                index: i,
                from,
                to,
                weights,
                prefix: r.prefix.clone(),
                path: r.path.clone(),
                policy,
                pass_identity_headers: r.pass_identity_headers.unwrap_or(defaults.pass_identity_headers),
                regex,
                prefix_rewrite: r.prefix_rewrite.clone(),
                regex_rewrite,
                host,
                set_request_headers,
                remove_request_headers: r
                    .remove_request_headers
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
                set_response_headers,
                timeout,
                idle_timeout,
                action,
                load_balancing,
                allow_websockets: r.allow_websockets,
                jwt_claims_headers: r
                    .jwt_claims_headers
                    .as_ref()
                    .map(ClaimHeaders::pairs)
                    .unwrap_or_else(|| defaults.jwt_claims_headers.clone()),
                jwt_groups_filter: r
                    .jwt_groups_filter
                    .clone()
                    .map(StringOrList::into_vec)
                    .or_else(|| defaults.jwt_groups_filter.clone()),
                upstream_tls,
            });
        }
    }
    out
}

/// The route's upstream TLS settings, with their files read.
fn upstream_tls(p: &mut Problems, r: &RawRoute, field: &dyn Fn(&str) -> String) -> Option<UpstreamTls> {
    let read = |p: &mut Problems, key: &str, path: &PathBuf| {
        p.check(
            &field(key),
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display())),
        )
    };
    let custom_ca_pem = r.tls_custom_ca_file.as_ref().and_then(|f| read(p, "tls_custom_ca_file", f));
    let client_cert_pem = match (&r.tls_client_cert_file, &r.tls_client_key_file) {
        (Some(c), Some(k)) => match (read(p, "tls_client_cert_file", c), read(p, "tls_client_key_file", k)) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        },
        (None, None) => None,
        _ => {
            p.add(field("tls_client_cert_file"), "tls_client_cert_file and tls_client_key_file go together");
            None
        }
    };
    let any = r.tls_skip_verify
        || r.tls_server_name.is_some()
        || custom_ca_pem.is_some()
        || client_cert_pem.is_some();
    any.then(|| UpstreamTls {
        skip_verify: r.tls_skip_verify,
        server_name: r.tls_server_name.clone(),
        custom_ca_pem,
        client_cert_pem,
    })
}

/// `redirect` or `response`, else forwarding.
fn route_action(p: &mut Problems, r: &RawRoute, field: &dyn Fn(&str) -> String) -> RouteAction {
    match (&r.redirect, &r.response) {
        (Some(_), Some(_)) => {
            p.add(field("redirect"), "a route has either `redirect` or `response`, not both");
            RouteAction::Forward
        }
        (Some(rd), None) => {
            let status = rd.response_code.unwrap_or(301);
            if ![301, 302, 303, 307, 308].contains(&status) {
                p.add(field("redirect.response_code"), "must be 301, 302, 303, 307 or 308");
            }
            if rd.path_redirect.as_deref().is_some_and(|s| !s.starts_with('/')) {
                p.add(field("redirect.path_redirect"), "must start with `/`");
            }
            let scheme =
                if rd.https_redirect { Some("https".to_owned()) } else { rd.scheme_redirect.clone() };
            RouteAction::Redirect(Redirect {
                scheme,
                host: rd.host_redirect.clone(),
                port: rd.port_redirect,
                path: rd.path_redirect.clone(),
                strip_query: rd.strip_query,
                status,
            })
        }
        (None, Some(resp)) => {
            let status = resp.status.unwrap_or(200);
            if !(200..=599).contains(&status) {
                p.add(field("response.status"), "must be an HTTP status from 200 to 599");
            }
            RouteAction::Respond { status, body: resp.body.clone().unwrap_or_default() }
        }
        (None, None) => RouteAction::Forward,
    }
}

/// Validate header names and the template variables in values.
fn header_pairs(p: &mut Problems, field: &str, raw: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in raw {
        if name.is_empty()
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-!#$%&'*+.^`|~".contains(&b))
        {
            p.add(format!("{field}.{name}"), "not a valid header name");
            continue;
        }
        let mut rest = value.as_str();
        let mut ok = true;
        while let Some(start) = rest.find("${") {
            let Some(end) = rest[start..].find('}') else { break };
            let var = &rest[start + 2..start + end];
            let known = ["jwt", "id_token", "access_token", "client_cert_fingerprint"]
                .iter()
                .any(|v| var == format!("pomerium.{v}") || var == format!("portcullis.{v}"));
            if !known {
                p.add(
                    format!("{field}.{name}"),
                    format!(
                        "template `${{{var}}}` is not supported (use ${{pomerium.jwt}}, ${{pomerium.id_token}} or ${{pomerium.access_token}})"
                    ),
                );
                ok = false;
            }
            rest = &rest[start + end + 1..];
        }
        if ok {
            out.push((name.to_ascii_lowercase(), value.clone()));
        }
    }
    out
}

/// Pomerium's conversion of the legacy keys: one allow rule OR-ing them, then the route's
/// PPL rules.
fn route_policy(r: &RawRoute) -> Result<Policy, (&'static str, PolicyError)> {
    let mut legacy = Vec::new();
    if r.allow_public_unauthenticated_access {
        legacy.push(json!({"accept": true}));
    }
    if r.cors_allow_preflight {
        legacy.push(json!({"cors_preflight": true}));
    }
    if r.allow_any_authenticated_user {
        legacy.push(json!({"authenticated_user": true}));
    }
    for d in &r.allowed_domains {
        legacy.push(json!({"domain": {"is": d}}));
    }
    for u in &r.allowed_users {
        legacy.push(json!({"user": {"is": u}}));
        legacy.push(json!({"email": {"is": u}}));
    }
    // Pomerium: one `claim/<name>: value` per listed value.
    for (claim, values) in &r.allowed_idp_claims {
        let values = match values {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for v in values {
            legacy.push(json!({ format!("claim/{claim}"): v }));
        }
    }
    let mut policy = if legacy.is_empty() {
        Policy::default()
    } else {
        Policy::from_ppl(&json!({"allow": {"or": legacy}})).map_err(|e| ("allowed_users", e))?
    };
    if let Some(ppl) = &r.policy {
        policy.extend(Policy::from_ppl(ppl).map_err(|e| ("policy", e))?);
    }
    Ok(policy)
}

fn route_id(value: &Value) -> String {
    // serde_json maps are ordered by key, so equal routes serialise equally.
    let canonical = serde_json::to_vec(value).unwrap_or_default();
    sha256_b64(&canonical)[..16].to_owned()
}

fn route_from(text: &str) -> Result<RouteFrom, String> {
    // URLs cannot hold `*`: take a leading `*.` off, parse, and put it back.
    let (wildcard, parseable) = match text.split_once("://*.") {
        Some((scheme, rest)) => (true, format!("{scheme}://{rest}")),
        None => (false, text.to_owned()),
    };
    if parseable.contains('*') {
        return Err("a wildcard is allowed only as the first label (`*.example.com`)".into());
    }
    let url = http_url(&parseable)?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` must be scheme://host[:port] without path (use prefix or path to match paths)"
        ));
    }
    let mut host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if wildcard {
        host = format!("*.{host}");
    }
    Ok(RouteFrom { scheme: url.scheme().to_owned(), host, port: url.port() })
}

/// `to` entries (`URL` or `URL,weight`) as URLs and weights. As in Pomerium, a weight is a
/// whole number above zero, and either every entry has one or none does.
fn weighted_upstreams(p: &mut Problems, field: &str, entries: &[String]) -> (Vec<Url>, Vec<u32>) {
    let mut to = Vec::with_capacity(entries.len());
    let mut weights = Vec::with_capacity(entries.len());
    let mut weighted = 0;
    for entry in entries {
        let (url, weight) = match entry.split_once(',') {
            None => (entry.trim(), None),
            Some((url, w)) => match w.trim().parse::<u32>() {
                Ok(0) | Err(_) => {
                    p.add(field, format!("`{entry}`: the weight after `,` must be a whole number above 0"));
                    continue;
                }
                Ok(w) => (url.trim(), Some(w)),
            },
        };
        let Some(url) = p.check(field, upstream_url(url)) else { continue };
        weighted += usize::from(weight.is_some());
        to.push(url);
        weights.push(weight.unwrap_or(1));
    }
    if weighted != 0 && weighted != to.len() {
        p.add(field, "give every upstream a weight (`URL,weight`) or none");
    }
    (to, weights)
}

fn upstream_url(text: &str) -> Result<Url, String> {
    let url = http_url(text)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{text}` must not have a query or fragment"));
    }
    Ok(url)
}

/// Hosts of all routes, for logs and diagnostics.
pub fn route_hosts(config: &Config) -> BTreeSet<String> {
    config.routes.iter().map(|r| r.from.host.clone()).collect()
}

#[cfg(test)]
mod tests;
