//! GitLab groups and subgroups as groups, through the REST API v4 (`{url}/api/v4`):
//! with `group` set, `GET /groups/{id or path}` and `GET /groups/{id}/descendant_groups`;
//! without, every group the token's user belongs to (`GET /groups?min_access_level=10`).
//! Then each group's direct members, `GET /groups/{id}/members`. Listings are paged by
//! `Link: rel="next"`.
//!
//! GitLab has no user listing for ordinary tokens, so the users are the members of the groups.
//! User ids are GitLab's numeric user ids, which are what GitLab's OIDC `sub` carries. Group ids
//! are numeric group ids and names full paths (`acme/platform`), as the `groups` claim writes
//! them; a subgroup's members are members of its parent too.

use futures::StreamExt;
use futures::future::BoxFuture;
use portcullis_runtime::config::GitlabSettings;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::http::{Api, join, next_link};
use crate::{Builder, Progress, Provider, ProviderError, View};

/// GitLab's maximum page size.
const PAGE_SIZE: &str = "100";
/// Guest: every group the token's user is a member of.
const MIN_ACCESS_LEVEL: &str = "10";
/// Group member listings in flight at once; the request rate limit still applies.
const PARALLEL_REQUESTS: usize = 4;

pub struct Gitlab {
    settings: GitlabSettings,
    api: Api,
}

#[derive(Deserialize)]
struct Group {
    id: u64,
    full_path: Option<String>,
    parent_id: Option<u64>,
}

#[derive(Deserialize)]
struct Member {
    id: u64,
    username: Option<String>,
    name: Option<String>,
    state: Option<String>,
    email: Option<String>,
    public_email: Option<String>,
}

impl Gitlab {
    pub fn new(settings: GitlabSettings, api: Api) -> Gitlab {
        Gitlab { settings, api }
    }

    /// `{url}/api/v4/{segments…}?{query…}`.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = join(&self.settings.url, &[&["api", "v4"], segments].concat());
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn request(&self, url: Url) -> reqwest::RequestBuilder {
        self.api
            .client()
            .get(url)
            .header("private-token", self.settings.token.expose())
            .header("accept", "application/json")
    }

    /// Every item of a listing, following `Link: rel="next"`.
    async fn list<T: DeserializeOwned>(
        &self,
        first: Url,
        what: &str,
        progress: &Progress,
    ) -> Result<Vec<T>, ProviderError> {
        let follow = |headers: &HeaderMap, url: &Url| {
            Ok(next_link(headers, url).map(|link| with_query_of(url, &link)))
        };
        self.api.link_paged(first, |url| self.request(url), follow, what, progress).await
    }

    /// The groups to sync: the configured group and its descendants, or every group the
    /// token's user is a member of.
    async fn groups(&self, progress: &Progress) -> Result<Vec<Group>, ProviderError> {
        let paged = [("per_page", PAGE_SIZE)];
        let Some(root) = self.settings.group.as_deref() else {
            let url =
                self.url(&["groups"], &[("per_page", PAGE_SIZE), ("min_access_level", MIN_ACCESS_LEVEL)]);
            return self.list(url, "groups", progress).await;
        };
        let (root, _): (Group, _) = self.api.json(self.request(self.url(&["groups", root], &[]))).await?;
        let id = root.id.to_string();
        let mut groups =
            self.list(self.url(&["groups", &id, "descendant_groups"], &paged), "groups", progress).await?;
        groups.push(root);
        Ok(groups)
    }

    /// The direct members of group `id`.
    async fn members(&self, id: u64, progress: &Progress) -> Result<(u64, Vec<Member>), ProviderError> {
        let url = self.url(&["groups", &id.to_string(), "members"], &[("per_page", PAGE_SIZE)]);
        Ok((id, self.list(url, "group members", progress).await?))
    }

    async fn fetch_view(&self, progress: &Progress) -> Result<View, ProviderError> {
        let groups = self.groups(progress).await?;
        let mut b = Builder::default();
        let mut ids = Vec::new();
        for g in groups {
            let id = g.id.to_string();
            b.group(id.as_str(), g.full_path.unwrap_or_else(|| id.clone()), None);
            if let Some(parent) = g.parent_id {
                b.subgroup(parent.to_string(), id);
            }
            ids.push(g.id);
        }
        let mut listings = futures::stream::iter(ids.into_iter().map(|id| self.members(id, progress)))
            .buffer_unordered(PARALLEL_REQUESTS);
        while let Some(listing) = listings.next().await {
            let (group, members) = listing?;
            for m in members {
                let user = m.id.to_string();
                let email = m.email.as_deref().filter(|e| !e.trim().is_empty()).or(m.public_email.as_deref());
                let name = m.name.as_deref().filter(|n| !n.trim().is_empty()).or(m.username.as_deref());
                b.user(user.as_str(), email, name);
                // Blocked and deactivated users stay listed but belong to no group.
                if m.state.as_deref().is_none_or(|s| s == "active") {
                    b.member(group.to_string(), user);
                }
            }
        }
        Ok(b.finish())
    }
}

/// `current` with the query of `link`. GitLab builds its links from its own external URL,
/// which may not be the URL configured here (an internal address, say); the query (page or
/// cursor) is all that differs between pages, and the token never leaves the configured host.
fn with_query_of(current: &Url, link: &Url) -> Url {
    let mut next = current.clone();
    next.set_query(link.query());
    next
}

impl Provider for Gitlab {
    fn name(&self) -> &'static str {
        "gitlab"
    }

    fn fetch<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<View, ProviderError>> {
        Box::pin(self.fetch_view(progress))
    }
}
