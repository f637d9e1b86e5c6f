//! Google Workspace through the Admin SDK Directory API, as a service account with domain-wide
//! delegation acting as an administrator: a token by the JWT-bearer grant (RFC 7523) signed
//! with the service account's key, then `GET /admin/directory/v1/users`, `…/groups` and each
//! group's `…/groups/{id}/members`, paged by `nextPageToken` → `pageToken=`.
//!
//! User ids are Google's numeric user ids, which are what Google's OIDC `sub` carries.

use std::collections::HashSet;

use futures::StreamExt;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_runtime::config::GoogleSettings;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::http::{Api, MAX_PAGES, endpoint, join};
use crate::{Builder, Progress, Provider, ProviderError, View, oauth};

const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Read-only access to users and groups; the service account's delegation must grant both.
const SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly \
                      https://www.googleapis.com/auth/admin.directory.group.readonly";
/// Lifetime asked for the assertion; Google accepts at most an hour.
const ASSERTION_SECONDS: u64 = 3600;
/// The API's maximum page sizes.
const USERS_PAGE: &str = "500";
const GROUPS_PAGE: &str = "200";
/// Group member listings in flight at once; the request rate limit still applies.
const PARALLEL_REQUESTS: usize = 4;

pub struct Google {
    settings: GoogleSettings,
    api: Api,
    client_email: String,
    key_id: Option<String>,
    key: EncodingKey,
    token_uri: Url,
}

/// The fields of a service account key file this provider uses.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// One page of a listing; the items are under `users`, `groups` or `members`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    #[serde(default = "Vec::new", alias = "users", alias = "groups", alias = "members")]
    items: Vec<T>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: Option<String>,
    primary_email: Option<String>,
    name: Option<UserName>,
    #[serde(default)]
    suspended: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserName {
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct Group {
    id: Option<String>,
    email: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Member {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Who a group member is.
enum Kind {
    User(String),
    Group(String),
    /// Every user of the customer (the whole domain).
    Everyone,
}

impl Google {
    /// Reads the service account key; an unusable key is a configuration error, told without
    /// any of the key's content.
    pub fn new(settings: GoogleSettings, api: Api) -> Result<Google, ProviderError> {
        let sa: ServiceAccount = serde_json::from_str(settings.service_account.expose()).map_err(|e| {
            ProviderError::Invalid(format!(
                "directory.google.service_account is not a service account key (JSON with client_email and \
                 private_key): {:?} error at line {}, column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let key = EncodingKey::from_rsa_pem(sa.private_key.as_bytes()).map_err(|_| {
            ProviderError::Invalid(
                "directory.google.service_account: private_key is not an RSA private key in PEM form".into(),
            )
        })?;
        let token_uri = sa.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI);
        let token_uri = Url::parse(token_uri).map_err(|e| {
            ProviderError::Invalid(format!("directory.google.service_account: token_uri is not a URL: {e}"))
        })?;
        Ok(Google { settings, api, client_email: sa.client_email, key_id: sa.private_key_id, key, token_uri })
    }

    /// The signed assertion: the service account (`iss`) acting as the administrator (`sub`).
    fn assertion(&self) -> Result<String, ProviderError> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            iss: &self.client_email,
            sub: &self.settings.impersonate_user,
            scope: SCOPES,
            aud: self.token_uri.as_str(),
            iat,
            exp: iat + ASSERTION_SECONDS,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| ProviderError::Invalid(format!("cannot sign the service account assertion: {e}")))
    }

    async fn token(&self) -> Result<String, ProviderError> {
        let assertion = self.assertion()?;
        let form = [("grant_type", JWT_BEARER), ("assertion", assertion.as_str())];
        oauth::client_credentials(&self.api, self.token_uri.clone(), Some(&form), None).await
    }

    /// `{api_url}/admin/directory/v1/{segments…}?{query…}`.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = join(&self.settings.api_url, &[&["admin", "directory", "v1"], segments].concat());
        url.query_pairs_mut().extend_pairs(query);
        url
    }

    /// Every item of a listing, asking for each next page with the previous `nextPageToken`.
    async fn list<T: DeserializeOwned>(
        &self,
        first: &Url,
        token: &str,
        what: &str,
        progress: &Progress,
    ) -> Result<Vec<T>, ProviderError> {
        let mut all = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = first.clone();
            if let Some(t) = &page_token {
                url.query_pairs_mut().append_pair("pageToken", t);
            }
            let (page, _): (Page<T>, _) = self.api.get(url, token).await?;
            all.extend(page.items);
            progress.read(what, all.len());
            page_token = page.next_page_token.filter(|t| !t.is_empty());
            if page_token.is_none() {
                return Ok(all);
            }
        }
        Err(ProviderError::Invalid(format!("{} never stops paging", endpoint(first))))
    }

    /// The members of group `id`.
    async fn members(
        &self,
        id: String,
        token: &str,
        progress: &Progress,
    ) -> Result<(String, Vec<Kind>), ProviderError> {
        let url = self.url(&["groups", &id, "members"], &[("maxResults", GROUPS_PAGE)]);
        let members: Vec<Member> = self.list(&url, token, "group members", progress).await?;
        Ok((id, members.into_iter().filter_map(kind).collect()))
    }

    async fn fetch_view(&self, progress: &Progress) -> Result<View, ProviderError> {
        let token = self.token().await?;
        let customer = self.settings.customer.as_str();
        let users_url = self.url(&["users"], &[("customer", customer), ("maxResults", USERS_PAGE)]);
        let users: Vec<User> = self.list(&users_url, &token, "users", progress).await?;
        let groups_url = self.url(&["groups"], &[("customer", customer), ("maxResults", GROUPS_PAGE)]);
        let groups: Vec<Group> = self.list(&groups_url, &token, "groups", progress).await?;
        let mut b = Builder::default();
        // Suspended users stay listed but belong to no group.
        let mut active = Vec::new();
        let mut suspended = HashSet::new();
        for u in users {
            let Some(id) = u.id else { continue };
            b.user(id.as_str(), u.primary_email.as_deref(), u.name.and_then(|n| n.full_name).as_deref());
            if u.suspended {
                suspended.insert(id);
            } else {
                active.push(id);
            }
        }
        let mut ids = Vec::new();
        for g in groups {
            let Some(id) = g.id else { continue };
            let name = g.name.or_else(|| g.email.clone()).unwrap_or_else(|| id.clone());
            b.group(id.as_str(), name, g.email.as_deref());
            ids.push(id);
        }
        let token = token.as_str();
        let mut listings = futures::stream::iter(ids.into_iter().map(|id| self.members(id, token, progress)))
            .buffer_unordered(PARALLEL_REQUESTS);
        while let Some(listing) = listings.next().await {
            let (group, members) = listing?;
            for m in members {
                match m {
                    Kind::User(u) if !suspended.contains(&u) => b.member(group.as_str(), u),
                    Kind::User(_) => {}
                    Kind::Group(child) => b.subgroup(group.as_str(), child),
                    Kind::Everyone => {
                        for u in &active {
                            b.member(group.as_str(), u.as_str());
                        }
                    }
                }
            }
        }
        Ok(b.finish())
    }
}

/// What a member entry stands for; `None` without an id.
fn kind(m: Member) -> Option<Kind> {
    match m.kind.as_deref() {
        Some(k) if k.eq_ignore_ascii_case("GROUP") => m.id.map(Kind::Group),
        Some(k) if k.eq_ignore_ascii_case("CUSTOMER") => Some(Kind::Everyone),
        // USER, and EXTERNAL users (who are not listed, so their memberships are dropped).
        _ => m.id.map(Kind::User),
    }
}

impl Provider for Google {
    fn name(&self) -> &'static str {
        "google"
    }

    fn fetch<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<View, ProviderError>> {
        Box::pin(self.fetch_view(progress))
    }
}
