//! Auth0's Management API, with roles as the groups: a client-credentials token from
//! `{url}/oauth/token` for the audience `{url}/api/v2/`, then `GET /api/v2/users`,
//! `GET /api/v2/roles` and each role's `GET /api/v2/roles/{id}/users`, paged by `page` and
//! `per_page` with `include_totals=true` until the pages cover `total`.
//!
//! User ids are Auth0's `user_id`s (`auth0|…`, `google-oauth2|…`), which are what Auth0's
//! OIDC `sub` carries. Group ids are role ids, names role names.

use std::collections::HashSet;

use futures::StreamExt;
use futures::future::BoxFuture;
use portcullis_runtime::config::Auth0Settings;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::http::{Api, endpoint, join};
use crate::{Builder, Progress, Provider, ProviderError, View, oauth};

const PAGE_SIZE: u64 = 50;
/// Role member listings in flight at once; the request rate limit still applies.
const PARALLEL_REQUESTS: usize = 4;
/// A listing with more pages than this is taken for a server that never stops paging.
const MAX_PAGES: u64 = 100_000;

pub struct Auth0 {
    settings: Auth0Settings,
    api: Api,
}

/// One page with totals; the items are under `users` or `roles`.
#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new", alias = "users", alias = "roles")]
    items: Vec<T>,
    total: Option<u64>,
}

#[derive(Deserialize)]
struct User {
    user_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    blocked: bool,
}

#[derive(Deserialize)]
struct Role {
    id: Option<String>,
    name: Option<String>,
}

impl Auth0 {
    pub fn new(settings: Auth0Settings, api: Api) -> Auth0 {
        Auth0 { settings, api }
    }

    /// A Management API token: the audience is the tenant's `/api/v2/`.
    async fn token(&self) -> Result<String, ProviderError> {
        let s = &self.settings;
        let body = serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": s.client_id,
            "client_secret": s.client_secret.expose(),
            "audience": join(&s.url, &["api", "v2", ""]).as_str(),
        });
        oauth::client_credentials(&self.api, join(&s.url, &["oauth", "token"]), None, Some(&body)).await
    }

    /// `{url}/api/v2/{segments…}`.
    fn url(&self, segments: &[&str]) -> Url {
        join(&self.settings.url, &[&["api", "v2"], segments].concat())
    }

    /// Every item of a listing, page by page, until the pages cover the total (or one is empty).
    async fn list<T: DeserializeOwned>(
        &self,
        base: Url,
        token: &str,
        what: &str,
        progress: &Progress,
    ) -> Result<Vec<T>, ProviderError> {
        let mut all = Vec::new();
        let per_page = PAGE_SIZE.to_string();
        for page in 0..MAX_PAGES {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("page", &page.to_string())
                .append_pair("per_page", &per_page)
                .append_pair("include_totals", "true");
            let (got, _): (Page<T>, _) = self.api.get(url, token).await?;
            let empty = got.items.is_empty();
            all.extend(got.items);
            progress.read(what, all.len());
            if empty || got.total.is_none_or(|total| (page + 1) * PAGE_SIZE >= total) {
                return Ok(all);
            }
        }
        Err(ProviderError::Invalid(format!("{} never stops paging", endpoint(&base))))
    }

    /// The users holding role `id`.
    async fn holders(
        &self,
        id: String,
        token: &str,
        progress: &Progress,
    ) -> Result<(String, Vec<User>), ProviderError> {
        let users = self.list(self.url(&["roles", &id, "users"]), token, "role members", progress).await?;
        Ok((id, users))
    }

    async fn fetch_view(&self, progress: &Progress) -> Result<View, ProviderError> {
        let token = self.token().await?;
        let users: Vec<User> = self.list(self.url(&["users"]), &token, "users", progress).await?;
        let roles: Vec<Role> = self.list(self.url(&["roles"]), &token, "roles", progress).await?;
        let mut b = Builder::default();
        // Blocked users stay listed but hold no role.
        let mut blocked = HashSet::new();
        for u in users {
            let Some(id) = u.user_id else { continue };
            if u.blocked {
                blocked.insert(id.clone());
            }
            b.user(id, u.email.as_deref(), u.name.as_deref());
        }
        let mut ids = Vec::new();
        for r in roles {
            let Some(id) = r.id else { continue };
            b.group(id.as_str(), r.name.unwrap_or_else(|| id.clone()), None);
            ids.push(id);
        }
        let token = token.as_str();
        let mut listings = futures::stream::iter(ids.into_iter().map(|id| self.holders(id, token, progress)))
            .buffer_unordered(PARALLEL_REQUESTS);
        while let Some(listing) = listings.next().await {
            let (role, holders) = listing?;
            for u in holders {
                let Some(id) = u.user_id else { continue };
                // A holder the user listing did not reach (it stops at Auth0's 1000-result
                // window) is still a user.
                if !b.has_user(&id) {
                    b.user(id.as_str(), u.email.as_deref(), u.name.as_deref());
                }
                if !blocked.contains(&id) {
                    b.member(role.as_str(), id);
                }
            }
        }
        Ok(b.finish())
    }
}

impl Provider for Auth0 {
    fn name(&self) -> &'static str {
        "auth0"
    }

    fn fetch<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<View, ProviderError>> {
        Box::pin(self.fetch_view(progress))
    }
}
