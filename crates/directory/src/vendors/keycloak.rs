//! Keycloak's admin REST API, as a client with a service account (client credentials at
//! `{url}/realms/{realm}/protocol/openid-connect/token`): `GET /admin/realms/{realm}/users`,
//! `…/groups` (with their `subGroups`, or `…/groups/{id}/children` on Keycloak 23 and later,
//! which no longer nests them), and each group's `…/groups/{id}/members`, paged by
//! `first`/`max` until a short page.
//!
//! User ids are Keycloak's user ids, which are what Keycloak's OIDC `sub` carries. Group
//! names are group paths (`/engineering/platform`), as the group mapper writes them with
//! "full group path"; a subgroup's members are members of its parent too.

use std::collections::HashSet;

use futures::StreamExt;
use futures::future::BoxFuture;
use portcullis_runtime::config::KeycloakSettings;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use url::Url;

use crate::http::{Api, MAX_PAGES, endpoint, join};
use crate::{Builder, Progress, Provider, ProviderError, View, oauth};

const PAGE_SIZE: usize = 100;
/// Group member listings in flight at once; the request rate limit still applies.
const PARALLEL_REQUESTS: usize = 4;

pub struct Keycloak {
    settings: KeycloakSettings,
    api: Api,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: Option<String>,
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Group {
    id: Option<String>,
    name: Option<String>,
    path: Option<String>,
    sub_groups: Option<Vec<Group>>,
    sub_group_count: Option<u64>,
}

/// A group member: a user, of which only the id matters here.
#[derive(Deserialize)]
struct Member {
    id: Option<String>,
}

/// The access token of one sync. Keycloak's tokens are short-lived (five minutes unless the
/// realm says otherwise), so a token refused midway is replaced once.
struct Session {
    token: Mutex<String>,
}

impl Keycloak {
    pub fn new(settings: KeycloakSettings, api: Api) -> Keycloak {
        Keycloak { settings, api }
    }

    async fn token(&self) -> Result<String, ProviderError> {
        let s = &self.settings;
        let url = join(&s.url, &["realms", s.realm.as_str(), "protocol", "openid-connect", "token"]);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.expose()),
        ];
        oauth::client_credentials(&self.api, url, Some(&form), None).await
    }

    /// `{url}/admin/realms/{realm}/{segments…}?{query…}`.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let realm = self.settings.realm.as_str();
        let mut url = join(&self.settings.url, &[&["admin", "realms", realm], segments].concat());
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// GET `url` with the session's token, renewing the token once if it is refused.
    async fn get<T: DeserializeOwned>(&self, url: Url, session: &Session) -> Result<T, ProviderError> {
        let token = session.token.lock().await.clone();
        match self.api.get(url.clone(), &token).await {
            Ok((value, _)) => Ok(value),
            Err(ProviderError::Auth(_)) => {
                let fresh = {
                    let mut current = session.token.lock().await;
                    // Another request may have renewed it meanwhile.
                    if *current == token {
                        *current = self.token().await?;
                    }
                    current.clone()
                };
                Ok(self.api.get(url, &fresh).await?.0)
            }
            Err(e) => Err(e),
        }
    }

    /// Every item of a listing, `first`/`max` at a time, until a page comes back short.
    async fn list<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        session: &Session,
        what: &str,
        progress: &Progress,
    ) -> Result<Vec<T>, ProviderError> {
        let mut all = Vec::new();
        let max = PAGE_SIZE.to_string();
        for _ in 0..MAX_PAGES {
            let first = all.len().to_string();
            let mut url = self.url(segments, query);
            url.query_pairs_mut().append_pair("first", &first).append_pair("max", &max);
            let page: Vec<T> = self.get(url, session).await?;
            let got = page.len();
            all.extend(page);
            progress.read(what, all.len());
            if got < PAGE_SIZE {
                return Ok(all);
            }
        }
        Err(ProviderError::Invalid(format!("{} never stops paging", endpoint(&self.url(segments, &[])))))
    }

    /// Every group, with each subgroup's parent: top-level groups first, then their subgroups
    /// as nested in the listing or, when the server leaves them out, from `children`.
    async fn groups(
        &self,
        session: &Session,
        progress: &Progress,
    ) -> Result<Vec<(String, String, Option<String>)>, ProviderError> {
        let full = [("briefRepresentation", "false")];
        let top: Vec<Group> = self.list(&["groups"], &full, session, "groups", progress).await?;
        let mut todo: Vec<(Group, Option<String>)> = top.into_iter().map(|g| (g, None)).collect();
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        while let Some((group, parent)) = todo.pop() {
            let Some(id) = group.id else { continue };
            // A group listed twice (or a server looping) is walked once.
            if !seen.insert(id.clone()) {
                continue;
            }
            let mut children = group.sub_groups.unwrap_or_default();
            if children.is_empty() && group.sub_group_count.is_some_and(|n| n > 0) {
                children =
                    self.list(&["groups", &id, "children"], &full, session, "groups", progress).await?;
            }
            todo.extend(children.into_iter().map(|c| (c, Some(id.clone()))));
            let name = group.path.or(group.name).unwrap_or_else(|| id.clone());
            found.push((id, name, parent));
        }
        Ok(found)
    }

    /// The ids of the users directly in group `id`.
    async fn members(
        &self,
        id: String,
        session: &Session,
        progress: &Progress,
    ) -> Result<(String, Vec<String>), ProviderError> {
        let members: Vec<Member> =
            self.list(&["groups", &id, "members"], &[], session, "group members", progress).await?;
        Ok((id, members.into_iter().filter_map(|m| m.id).collect()))
    }

    async fn fetch_view(&self, progress: &Progress) -> Result<View, ProviderError> {
        let session = Session { token: Mutex::new(self.token().await?) };
        let users: Vec<User> = self.list(&["users"], &[], &session, "users", progress).await?;
        let groups = self.groups(&session, progress).await?;
        let mut b = Builder::default();
        // Disabled users stay listed but belong to no group.
        let mut disabled = HashSet::new();
        for u in users {
            let Some(id) = u.id else { continue };
            if u.enabled == Some(false) {
                disabled.insert(id.clone());
            }
            let name = full_name(u.first_name.as_deref(), u.last_name.as_deref()).or(u.username);
            b.user(id, u.email.as_deref(), name.as_deref());
        }
        let mut ids = Vec::new();
        for (id, name, parent) in groups {
            b.group(id.as_str(), name, None);
            if let Some(parent) = parent {
                b.subgroup(parent, id.as_str());
            }
            ids.push(id);
        }
        let session = &session;
        let mut listings =
            futures::stream::iter(ids.into_iter().map(|id| self.members(id, session, progress)))
                .buffer_unordered(PARALLEL_REQUESTS);
        while let Some(listing) = listings.next().await {
            let (group, members) = listing?;
            for user in members.into_iter().filter(|u| !disabled.contains(u)) {
                b.member(group.as_str(), user);
            }
        }
        Ok(b.finish())
    }
}

/// "First Last" of whichever parts are there.
fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> =
        [first, last].into_iter().flatten().map(str::trim).filter(|s| !s.is_empty()).collect();
    if parts.is_empty() { None } else { Some(parts.join(" ")) }
}

impl Provider for Keycloak {
    fn name(&self) -> &'static str {
        "keycloak"
    }

    fn fetch<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<View, ProviderError>> {
        Box::pin(self.fetch_view(progress))
    }
}
