//! GitHub organisation teams as groups: `GET /orgs/{org}/members`, `GET /orgs/{org}/teams` and
//! each team's `GET /orgs/{org}/teams/{slug}/members`, paged by `Link: rel="next"`.
//!
//! User ids are GitHub's numeric user ids (the login can be renamed, the id cannot), names
//! are logins; GitHub does not give members' email addresses to organisations. Group ids are
//! team ids and names team slugs, as a `teams` claim writes them. A child team's members are
//! members of its parent team too, as GitHub itself counts them.

use futures::StreamExt;
use futures::future::BoxFuture;
use portcullis_runtime::config::GithubSettings;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::http::{Api, join, next_on_same_host};
use crate::{Builder, Progress, Provider, ProviderError, View};

/// GitHub's maximum page size.
const PAGE_SIZE: &str = "100";
const API_VERSION: &str = "2022-11-28";
/// Team member listings in flight at once; the request rate limit still applies.
const PARALLEL_REQUESTS: usize = 4;

pub struct Github {
    settings: GithubSettings,
    api: Api,
}

#[derive(Deserialize)]
struct Team {
    id: u64,
    slug: Option<String>,
    parent: Option<Parent>,
}

#[derive(Deserialize)]
struct Parent {
    id: u64,
}

#[derive(Deserialize)]
struct Member {
    id: u64,
    login: Option<String>,
}

impl Github {
    pub fn new(settings: GithubSettings, api: Api) -> Github {
        Github { settings, api }
    }

    /// `{api_url}/orgs/{org}/{segments…}?per_page=100`.
    fn url(&self, segments: &[&str]) -> Url {
        let org = self.settings.organization.as_str();
        let mut url = join(&self.settings.api_url, &[&["orgs", org], segments].concat());
        url.query_pairs_mut().append_pair("per_page", PAGE_SIZE);
        url
    }

    /// Every item of a listing, following `Link: rel="next"`.
    async fn list<T: DeserializeOwned>(
        &self,
        first: Url,
        what: &str,
        progress: &Progress,
    ) -> Result<Vec<T>, ProviderError> {
        let request = |url: Url| {
            self.api
                .client()
                .get(url)
                .bearer_auth(self.settings.token.expose())
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", API_VERSION)
        };
        self.api.link_paged(first, request, next_on_same_host, what, progress).await
    }

    /// The members of the team `id` (by its `slug`).
    async fn members(
        &self,
        id: u64,
        slug: String,
        progress: &Progress,
    ) -> Result<(u64, Vec<Member>), ProviderError> {
        let members = self.list(self.url(&["teams", &slug, "members"]), "team members", progress).await?;
        Ok((id, members))
    }

    async fn fetch_view(&self, progress: &Progress) -> Result<View, ProviderError> {
        let members: Vec<Member> = self.list(self.url(&["members"]), "members", progress).await?;
        let teams: Vec<Team> = self.list(self.url(&["teams"]), "teams", progress).await?;
        let mut b = Builder::default();
        for m in members {
            b.user(m.id.to_string(), None, m.login.as_deref());
        }
        let mut slugs = Vec::new();
        for t in teams {
            let Some(slug) = t.slug else { continue };
            b.group(t.id.to_string(), slug.as_str(), None);
            if let Some(parent) = t.parent {
                b.subgroup(parent.id.to_string(), t.id.to_string());
            }
            slugs.push((t.id, slug));
        }
        let mut listings =
            futures::stream::iter(slugs.into_iter().map(|(id, slug)| self.members(id, slug, progress)))
                .buffer_unordered(PARALLEL_REQUESTS);
        while let Some(listing) = listings.next().await {
            let (team, members) = listing?;
            for m in members {
                let user = m.id.to_string();
                // Someone in a team but missing from the organisation listing is still a user.
                if !b.has_user(&user) {
                    b.user(user.as_str(), None, m.login.as_deref());
                }
                b.member(team.to_string(), user);
            }
        }
        Ok(b.finish())
    }
}

impl Provider for Github {
    fn name(&self) -> &'static str {
        "github"
    }

    fn fetch<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<View, ProviderError>> {
        Box::pin(self.fetch_view(progress))
    }
}
