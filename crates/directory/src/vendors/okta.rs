//! Okta's management API: `GET /api/v1/users`, `GET /api/v1/groups` and each group's
//! `GET /api/v1/groups/{id}/users`, paged by `Link: rel="next"` (an `after` cursor).
//!
//! Okta takes its API tokens as `Authorization: SSWS {token}`, not as a bearer token, so the
//! requests are built here rather than with [`Api::get`](crate::http::Api::get).
//!
//! User ids are Okta's user ids (`00u…`), which are what Okta's OIDC `sub` carries; group names
//! are what the `groups` claim carries.

use std::collections::HashSet;

use futures::StreamExt;
use futures::future::BoxFuture;
use portcullis_runtime::config::OktaSettings;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::http::{Api, join, next_on_same_host};
use crate::{Builder, Progress, Provider, ProviderError, View};

/// Items per page; Okta's maximum for users and group members.
const PAGE_SIZE: &str = "200";
/// Group member listings in flight at once; the request rate limit still applies.
const PARALLEL_REQUESTS: usize = 4;

pub struct Okta {
    settings: OktaSettings,
    api: Api,
}

#[derive(Deserialize)]
struct User {
    id: Option<String>,
    status: Option<String>,
    profile: Option<UserProfile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserProfile {
    email: Option<String>,
    login: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct Group {
    id: Option<String>,
    profile: Option<GroupProfile>,
}

#[derive(Deserialize)]
struct GroupProfile {
    name: Option<String>,
}

/// A group member: a user object, of which only the id matters here.
#[derive(Deserialize)]
struct Member {
    id: Option<String>,
}

impl Okta {
    pub fn new(settings: OktaSettings, api: Api) -> Okta {
        Okta { settings, api }
    }

    /// `{url}/api/v1/{segments…}?limit=200`.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = join(&self.settings.url, &[&["api", "v1"], segments].concat());
        url.query_pairs_mut().append_pair("limit", PAGE_SIZE);
        url
    }

    /// Every item of a listing, following `Link: rel="next"`.
    async fn list<T: DeserializeOwned>(
        &self,
        first: Url,
        what: &str,
        progress: &Progress,
    ) -> Result<Vec<T>, ProviderError> {
        let authorization = format!("SSWS {}", self.settings.api_token.expose());
        let request = |url: Url| {
            self.api
                .client()
                .get(url)
                .header("authorization", &authorization)
                .header("accept", "application/json")
        };
        self.api.link_paged(first, request, next_on_same_host, what, progress).await
    }

    /// The ids of the users directly in group `id`.
    async fn members(&self, id: String, progress: &Progress) -> Result<(String, Vec<String>), ProviderError> {
        let members: Vec<Member> =
            self.list(self.url(&["groups", &id, "users"]), "group members", progress).await?;
        Ok((id, members.into_iter().filter_map(|m| m.id).collect()))
    }

    async fn fetch_view(&self, progress: &Progress) -> Result<View, ProviderError> {
        let users: Vec<User> = self.list(self.url(&["users"]), "users", progress).await?;
        let groups: Vec<Group> = self.list(self.url(&["groups"]), "groups", progress).await?;
        let mut b = Builder::default();
        // Deprovisioned and suspended users stay listed but belong to no group.
        let mut inactive = HashSet::new();
        for u in users {
            let Some(id) = u.id else { continue };
            if u.status.as_deref().is_some_and(is_inactive) {
                inactive.insert(id.clone());
            }
            let profile = u.profile.as_ref();
            let email = profile.and_then(|p| p.email.as_deref());
            let name = profile.and_then(display_name);
            b.user(id, email, name.as_deref());
        }
        let mut ids = Vec::new();
        for g in groups {
            let Some(id) = g.id else { continue };
            let name = g.profile.and_then(|p| p.name).unwrap_or_else(|| id.clone());
            b.group(id.clone(), name, None);
            ids.push(id);
        }
        let mut listings = futures::stream::iter(ids.into_iter().map(|id| self.members(id, progress)))
            .buffer_unordered(PARALLEL_REQUESTS);
        while let Some(listing) = listings.next().await {
            let (group, members) = listing?;
            for user in members.into_iter().filter(|u| !inactive.contains(u)) {
                b.member(group.as_str(), user);
            }
        }
        Ok(b.finish())
    }
}

/// Okta statuses of users who cannot sign in.
fn is_inactive(status: &str) -> bool {
    status.eq_ignore_ascii_case("DEPROVISIONED") || status.eq_ignore_ascii_case("SUSPENDED")
}

/// "First Last", else the login.
fn display_name(p: &UserProfile) -> Option<String> {
    let full = [p.first_name.as_deref(), p.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if full.is_empty() { p.login.clone() } else { Some(full) }
}

impl Provider for Okta {
    fn name(&self) -> &'static str {
        "okta"
    }

    fn fetch<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<View, ProviderError>> {
        Box::pin(self.fetch_view(progress))
    }
}
