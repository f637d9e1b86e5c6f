//! `directory:`: the directory provider the cache service syncs users and groups from.
//!
//! ```yaml
//! directory:
//!   provider: scim            # scim, ldap, okta, azure, google, github, gitlab, keycloak, auth0
//!   refresh_interval: 10m
//!   refresh_timeout: 5m
//!   requests_per_second: 10   # towards the provider's API; 0 = no limit
//!   scim:
//!     url: https://scim.example.com/scim/v2
//!     bearer_token_file: /run/secrets/scim-token
//! ```
//!
//! Every credential can be given inline (`bearer_token`), from a file (`bearer_token_file`)
//! or from the environment (`PORTCULLIS_DIRECTORY__SCIM__BEARER_TOKEN`). The provider's own
//! section is checked strictly: an unknown key there is an error, as a mistyped credential key
//! would otherwise leave the sync unauthenticated.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use super::{Problems, RawDuration, raw_duration, read_secret_file};

const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(600);
const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_REQUESTS_PER_SECOND: f64 = 10.0;

/// The provider names, as written in `directory.provider`.
pub const PROVIDERS: &[&str] =
    &["scim", "ldap", "okta", "azure", "google", "github", "gitlab", "keycloak", "auth0"];

pub(super) const KNOWN_DIRECTORY_KEYS: &[&str] = &[
    "provider",
    "refresh_interval",
    "refresh_timeout",
    "requests_per_second",
    "scim",
    "ldap",
    "okta",
    "azure",
    "google",
    "github",
    "gitlab",
    "keycloak",
    "auth0",
];

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawDirectory {
    pub provider: Option<String>,
    pub refresh_interval: Option<RawDuration>,
    pub refresh_timeout: Option<RawDuration>,
    pub requests_per_second: Option<f64>,
    /// The provider sections, read once `provider` says which one counts.
    #[serde(flatten)]
    pub sections: Map<String, Value>,
}

/// A credential from the configuration. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    pub fn new(value: impl Into<String>) -> Credential {
        Credential(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(..)")
    }
}

/// The validated `directory:` section.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    pub provider: DirectoryProvider,
    /// How often the directory is synced.
    pub refresh_interval: Duration,
    /// A sync taking longer is abandoned (nothing stored changes).
    pub refresh_timeout: Duration,
    /// Requests per second towards the provider; `None` = no limit.
    pub requests_per_second: Option<f64>,
}

// Built once per configuration load; the size of the largest settings does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum DirectoryProvider {
    Scim(ScimSettings),
    Ldap(LdapSettings),
    Okta(OktaSettings),
    Azure(AzureSettings),
    Google(GoogleSettings),
    Github(GithubSettings),
    Gitlab(GitlabSettings),
    Keycloak(KeycloakSettings),
    Auth0(Auth0Settings),
}

impl DirectoryProvider {
    pub fn name(&self) -> &'static str {
        match self {
            DirectoryProvider::Scim(_) => "scim",
            DirectoryProvider::Ldap(_) => "ldap",
            DirectoryProvider::Okta(_) => "okta",
            DirectoryProvider::Azure(_) => "azure",
            DirectoryProvider::Google(_) => "google",
            DirectoryProvider::Github(_) => "github",
            DirectoryProvider::Gitlab(_) => "gitlab",
            DirectoryProvider::Keycloak(_) => "keycloak",
            DirectoryProvider::Auth0(_) => "auth0",
        }
    }
}

/// SCIM 2.0 (RFC 7644): `GET /Users` and `GET /Groups` with `startIndex`/`count` paging.
#[derive(Debug, Clone)]
pub struct ScimSettings {
    /// The SCIM base URL (the one `/Users` hangs off).
    pub url: Url,
    pub bearer_token: Option<Credential>,
    /// SCIM filters (`filter=`) applied to the user and group listings.
    pub user_filter: Option<String>,
    pub group_filter: Option<String>,
    pub page_size: u32,
}

/// How LDAP group membership is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapMembership {
    /// The group's member attribute lists member DNs (`member`, `uniqueMember`) or, with
    /// `memberUid`, user ids.
    Member,
    /// Each user's `memberOf` attribute lists group DNs.
    MemberOf,
}

#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: Url,
    pub start_tls: bool,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Credential>,
    pub tls_custom_ca_file: Option<PathBuf>,
    pub tls_skip_verify: bool,
    pub user_base_dn: String,
    pub user_filter: String,
    /// `dn` means the entry's DN.
    pub user_id_attribute: String,
    pub user_email_attribute: String,
    pub user_name_attribute: String,
    pub group_base_dn: String,
    pub group_filter: String,
    /// `dn` means the entry's DN.
    pub group_id_attribute: String,
    pub group_name_attribute: String,
    pub group_email_attribute: String,
    pub group_member_attribute: String,
    pub user_member_of_attribute: String,
    pub membership: LdapMembership,
    pub page_size: u32,
}

/// Okta's management API (`/api/v1/users`, `/api/v1/groups`, `/api/v1/groups/{id}/users`).
#[derive(Debug, Clone)]
pub struct OktaSettings {
    /// The org URL, e.g. `https://example.okta.com`.
    pub url: Url,
    pub api_token: Credential,
}

/// Microsoft Entra ID through Microsoft Graph (`users/delta`, `groups/delta`).
#[derive(Debug, Clone)]
pub struct AzureSettings {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Credential,
    /// Default `https://login.microsoftonline.com` (national clouds differ).
    pub login_url: Url,
    /// Default `https://graph.microsoft.com`.
    pub graph_url: Url,
}

/// Google Workspace Admin SDK Directory API with a service account and domain-wide
/// delegation.
#[derive(Debug, Clone)]
pub struct GoogleSettings {
    /// The service account key JSON (`client_email`, `private_key`, `token_uri`).
    pub service_account: Credential,
    /// An administrator the service account acts as.
    pub impersonate_user: String,
    /// Default `my_customer`.
    pub customer: String,
    /// Default `https://admin.googleapis.com`.
    pub api_url: Url,
}

/// GitHub organisation teams as groups.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    pub organization: String,
    pub token: Credential,
    /// Default `https://api.github.com` (GitHub Enterprise Server: `https://HOST/api/v3`).
    pub api_url: Url,
}

/// GitLab groups (and subgroups) as groups.
#[derive(Debug, Clone)]
pub struct GitlabSettings {
    /// Default `https://gitlab.com`.
    pub url: Url,
    pub token: Credential,
    /// Limit to this group and its subgroups (id or full path); default all groups the token
    /// is a member of.
    pub group: Option<String>,
}

/// Keycloak's admin REST API, with a client-credentials service account.
#[derive(Debug, Clone)]
pub struct KeycloakSettings {
    /// The server URL, e.g. `https://keycloak.example.com`.
    pub url: Url,
    pub realm: String,
    pub client_id: String,
    pub client_secret: Credential,
}

/// Auth0's Management API; roles are the groups.
#[derive(Debug, Clone)]
pub struct Auth0Settings {
    /// `https://TENANT.auth0.com` (a bare domain is accepted).
    pub url: Url,
    pub client_id: String,
    pub client_secret: Credential,
}

impl RawDirectory {
    pub(super) fn is_empty(&self) -> bool {
        self.provider.is_none()
            && self.refresh_interval.is_none()
            && self.refresh_timeout.is_none()
            && self.requests_per_second.is_none()
            && self.sections.is_empty()
    }

    pub(super) fn validate(&self, p: &mut Problems) -> Option<DirectoryConfig> {
        for key in self.sections.keys() {
            if !KNOWN_DIRECTORY_KEYS.contains(&key.as_str()) {
                p.add(format!("directory.{key}"), "unknown key");
            }
        }
        let Some(name) = self.provider.as_deref() else {
            p.add("directory.provider", format!("required: one of {}", PROVIDERS.join(", ")));
            return None;
        };
        let duration = |p: &mut Problems, field: &str, d: &Option<RawDuration>, default: Duration| match d {
            None => Some(default),
            Some(d) => match p.check(field, raw_duration(d)) {
                Some(v) if v.is_zero() => {
                    p.add(field, "must be longer than zero");
                    None
                }
                v => v,
            },
        };
        let refresh_interval =
            duration(p, "directory.refresh_interval", &self.refresh_interval, DEFAULT_REFRESH_INTERVAL);
        let refresh_timeout =
            duration(p, "directory.refresh_timeout", &self.refresh_timeout, DEFAULT_REFRESH_TIMEOUT);
        let requests_per_second = match self.requests_per_second {
            None => Some(DEFAULT_REQUESTS_PER_SECOND),
            Some(0.0) => None,
            Some(r) if r.is_finite() && r >= 0.01 => Some(r),
            Some(_) => {
                p.add(
                    "directory.requests_per_second",
                    "must be at least 0.01 (requests per second), or 0 for no limit",
                );
                None
            }
        };
        let empty = Map::new();
        let section = match self.sections.get(name) {
            Some(Value::Object(m)) => m,
            Some(_) => {
                p.add(format!("directory.{name}"), "must be a map of the provider's settings");
                return None;
            }
            None => &empty,
        };
        let mut f = Fields { p, section: format!("directory.{name}"), map: section, used: Vec::new() };
        let provider = match name {
            "scim" => f.scim().map(DirectoryProvider::Scim),
            "ldap" => f.ldap().map(DirectoryProvider::Ldap),
            "okta" => f.okta().map(DirectoryProvider::Okta),
            "azure" => f.azure().map(DirectoryProvider::Azure),
            "google" => f.google().map(DirectoryProvider::Google),
            "github" => f.github().map(DirectoryProvider::Github),
            "gitlab" => f.gitlab().map(DirectoryProvider::Gitlab),
            "keycloak" => f.keycloak().map(DirectoryProvider::Keycloak),
            "auth0" => f.auth0().map(DirectoryProvider::Auth0),
            other => {
                f.p.add(
                    "directory.provider",
                    format!("`{other}` is not a provider; use one of {}", PROVIDERS.join(", ")),
                );
                return None;
            }
        };
        f.unknown();
        Some(DirectoryConfig {
            provider: provider?,
            refresh_interval: refresh_interval?,
            refresh_timeout: refresh_timeout?,
            requests_per_second,
        })
    }
}

/// Reads one provider section, recording every problem under its field path.
struct Fields<'a> {
    p: &'a mut Problems,
    section: String,
    map: &'a Map<String, Value>,
    used: Vec<&'static str>,
}

impl Fields<'_> {
    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.section)
    }

    fn unknown(&mut self) {
        for key in self.map.keys() {
            if !self.used.contains(&key.as_str()) {
                let field = self.field(key);
                self.p.add(field, format!("unknown key (known: {})", self.used.join(", ")));
            }
        }
    }

    fn string(&mut self, key: &'static str) -> Option<String> {
        self.used.push(key);
        match self.map.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                let field = self.field(key);
                self.p.add(field, "must be a non-empty string");
                None
            }
        }
    }

    fn required(&mut self, key: &'static str) -> Option<String> {
        let present = self.map.contains_key(key);
        let value = self.string(key);
        if !present {
            let field = self.field(key);
            self.p.add(field, "required");
        }
        value
    }

    fn or(&mut self, key: &'static str, default: &str) -> String {
        self.string(key).unwrap_or_else(|| default.to_owned())
    }

    fn bool(&mut self, key: &'static str) -> bool {
        self.used.push(key);
        match self.map.get(key) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                let field = self.field(key);
                self.p.add(field, "must be true or false");
                false
            }
        }
    }

    fn number(&mut self, key: &'static str, default: u32, max: u32) -> u32 {
        self.used.push(key);
        match self.map.get(key) {
            None => default,
            Some(v) => match v.as_u64().filter(|n| (1..=u64::from(max)).contains(n)) {
                Some(n) => n as u32,
                None => {
                    let field = self.field(key);
                    self.p.add(field, format!("must be a whole number from 1 to {max}"));
                    default
                }
            },
        }
    }

    fn path(&mut self, key: &'static str) -> Option<PathBuf> {
        let path = PathBuf::from(self.string(key)?);
        if !path.is_file() {
            let field = self.field(key);
            self.p.add(field, format!("no such file: {}", path.display()));
            return None;
        }
        Some(path)
    }

    /// An http(s) URL; `default` when absent.
    fn url(&mut self, key: &'static str, default: Option<&str>) -> Option<Url> {
        let text = match (self.string(key), default) {
            (Some(t), _) => t,
            (None, Some(d)) => d.to_owned(),
            (None, None) => {
                if !self.map.contains_key(key) {
                    let field = self.field(key);
                    self.p.add(field, "required");
                }
                return None;
            }
        };
        self.parse_url(key, &text, &["http", "https"])
    }

    fn parse_url(&mut self, key: &'static str, text: &str, schemes: &[&str]) -> Option<Url> {
        let field = self.field(key);
        match Url::parse(text) {
            Ok(u) if schemes.contains(&u.scheme()) && u.host_str().is_some() => {
                if !u.username().is_empty() || u.password().is_some() {
                    self.p.add(field, "must not carry credentials; use the credential keys");
                    return None;
                }
                Some(u)
            }
            Ok(_) => {
                self.p.add(field, format!("must be an {} URL with a host", schemes.join(" or ")));
                None
            }
            Err(e) => {
                self.p.add(field, format!("not a URL: {e}"));
                None
            }
        }
    }

    /// A credential given inline (`key`) or as a file (`key_file`); never both.
    fn credential(
        &mut self,
        key: &'static str,
        file_key: &'static str,
        required: bool,
    ) -> Option<Credential> {
        let inline = self.string(key);
        let file = self.string(file_key);
        match (inline, file) {
            (Some(_), Some(_)) => {
                let field = self.field(key);
                self.p.add(field, format!("set either {key} or {file_key}, not both"));
                None
            }
            (Some(v), None) => Some(Credential(v)),
            (None, Some(path)) => {
                let field = self.field(file_key);
                self.p.check(&field, read_secret_file(std::path::Path::new(&path))).map(Credential)
            }
            (None, None) => {
                if required {
                    let field = self.field(key);
                    self.p.add(field, format!("required (or {file_key})"));
                }
                None
            }
        }
    }

    fn scim(&mut self) -> Option<ScimSettings> {
        let url = self.url("url", None);
        let bearer_token = self.credential("bearer_token", "bearer_token_file", false);
        Some(ScimSettings {
            url: url?,
            bearer_token,
            user_filter: self.string("user_filter"),
            group_filter: self.string("group_filter"),
            page_size: self.number("page_size", 100, 1000),
        })
    }

    fn ldap(&mut self) -> Option<LdapSettings> {
        let url = self.required("url").and_then(|t| self.parse_url("url", &t, &["ldap", "ldaps"]));
        let start_tls = self.bool("start_tls");
        if start_tls && url.as_ref().is_some_and(|u| u.scheme() == "ldaps") {
            let field = self.field("start_tls");
            self.p.add(field, "ldaps:// is already TLS; start_tls is for ldap:// URLs");
        }
        let bind_dn = self.string("bind_dn");
        let bind_password = self.credential("bind_password", "bind_password_file", false);
        if bind_password.is_some() && bind_dn.is_none() {
            let field = self.field("bind_dn");
            self.p.add(field, "required with bind_password");
        }
        let membership = match self.string("membership").as_deref() {
            None | Some("member") => LdapMembership::Member,
            Some("member_of") => LdapMembership::MemberOf,
            Some(other) => {
                let field = self.field("membership");
                self.p.add(field, format!("`{other}` is not a mode; use member or member_of"));
                LdapMembership::Member
            }
        };
        let user_base_dn = self.required("user_base_dn");
        let group_base_dn = self.string("group_base_dn").or_else(|| user_base_dn.clone());
        Some(LdapSettings {
            url: url?,
            start_tls,
            bind_dn,
            bind_password,
            tls_custom_ca_file: self.path("tls_custom_ca_file"),
            tls_skip_verify: self.bool("tls_skip_verify"),
            user_filter: self.or("user_filter", "(|(objectClass=inetOrgPerson)(objectClass=person))"),
            user_id_attribute: self.or("user_id_attribute", "uid"),
            user_email_attribute: self.or("user_email_attribute", "mail"),
            user_name_attribute: self.or("user_name_attribute", "cn"),
            group_filter: self.or(
                "group_filter",
                "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))",
            ),
            group_id_attribute: self.or("group_id_attribute", "dn"),
            group_name_attribute: self.or("group_name_attribute", "cn"),
            group_email_attribute: self.or("group_email_attribute", "mail"),
            group_member_attribute: self.or("group_member_attribute", "member"),
            user_member_of_attribute: self.or("user_member_of_attribute", "memberOf"),
            membership,
            page_size: self.number("page_size", 500, 10_000),
            user_base_dn: user_base_dn?,
            group_base_dn: group_base_dn?,
        })
    }

    fn okta(&mut self) -> Option<OktaSettings> {
        let url = self.url("url", None);
        let api_token = self.credential("api_token", "api_token_file", true);
        Some(OktaSettings { url: url?, api_token: api_token? })
    }

    fn azure(&mut self) -> Option<AzureSettings> {
        let tenant_id = self.required("tenant_id");
        let client_id = self.required("client_id");
        let client_secret = self.credential("client_secret", "client_secret_file", true);
        let login_url = self.url("login_url", Some("https://login.microsoftonline.com"));
        let graph_url = self.url("graph_url", Some("https://graph.microsoft.com"));
        Some(AzureSettings {
            tenant_id: tenant_id?,
            client_id: client_id?,
            client_secret: client_secret?,
            login_url: login_url?,
            graph_url: graph_url?,
        })
    }

    fn google(&mut self) -> Option<GoogleSettings> {
        let service_account = self.credential("service_account", "service_account_file", true);
        if let Some(sa) = &service_account {
            let ok = serde_json::from_str::<Value>(sa.expose()).ok().is_some_and(|v| {
                ["client_email", "private_key"].iter().all(|k| v.get(*k).and_then(Value::as_str).is_some())
            });
            if !ok {
                let field = self.field("service_account");
                self.p.add(field, "must be a service account key (JSON with client_email and private_key)");
            }
        }
        let impersonate_user = self.required("impersonate_user");
        Some(GoogleSettings {
            service_account: service_account?,
            impersonate_user: impersonate_user?,
            customer: self.or("customer", "my_customer"),
            api_url: self.url("api_url", Some("https://admin.googleapis.com"))?,
        })
    }

    fn github(&mut self) -> Option<GithubSettings> {
        let organization = self.required("organization");
        let token = self.credential("token", "token_file", true);
        let api_url = self.url("api_url", Some("https://api.github.com"));
        Some(GithubSettings { organization: organization?, token: token?, api_url: api_url? })
    }

    fn gitlab(&mut self) -> Option<GitlabSettings> {
        let url = self.url("url", Some("https://gitlab.com"));
        let token = self.credential("token", "token_file", true);
        Some(GitlabSettings { url: url?, token: token?, group: self.string("group") })
    }

    fn keycloak(&mut self) -> Option<KeycloakSettings> {
        let url = self.url("url", None);
        let realm = self.required("realm");
        let client_id = self.required("client_id");
        let client_secret = self.credential("client_secret", "client_secret_file", true);
        Some(KeycloakSettings {
            url: url?,
            realm: realm?,
            client_id: client_id?,
            client_secret: client_secret?,
        })
    }

    fn auth0(&mut self) -> Option<Auth0Settings> {
        let url = match self.string("domain") {
            Some(d) if !d.contains("://") => self.parse_url("domain", &format!("https://{d}"), &["https"]),
            Some(d) => self.parse_url("domain", &d, &["http", "https"]),
            None => {
                let field = self.field("domain");
                self.p.add(field, "required, e.g. example.us.auth0.com");
                None
            }
        };
        let client_id = self.required("client_id");
        let client_secret = self.credential("client_secret", "client_secret_file", true);
        Some(Auth0Settings { url: url?, client_id: client_id?, client_secret: client_secret? })
    }
}
