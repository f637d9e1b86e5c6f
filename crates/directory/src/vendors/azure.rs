//! Microsoft Entra ID through Microsoft Graph: a client-credentials token from
//! `{login_url}/{tenant}/oauth2/v2.0/token`, then `GET /v1.0/users/delta` and
//! `GET /v1.0/groups/delta` (with `members`), following `@odata.nextLink` until the
//! `@odata.deltaLink` appears. Each sync is a full enumeration; the delta link is not kept.
//!
//! The delta form is used because it is the one listing that returns every group's members
//! (users and nested groups) in the same pages as the groups, instead of one request per group.
//!
//! User ids are object ids (the `oid` claim): Entra's `sub` is pairwise per application and
//! cannot be listed. Group ids are object ids, which is what the `groups` claim carries.

use std::collections::HashMap;

use futures::future::BoxFuture;
use portcullis_runtime::config::AzureSettings;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::http::{Api, MAX_PAGES, endpoint, join, same_origin};
use crate::{Builder, Progress, Provider, ProviderError, View, oauth};

const USER_TYPE: &str = "#microsoft.graph.user";
const GROUP_TYPE: &str = "#microsoft.graph.group";

pub struct Azure {
    settings: AzureSettings,
    api: Api,
}

/// One page of a delta listing.
#[derive(Deserialize)]
struct DeltaPage<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: Option<String>,
    display_name: Option<String>,
    mail: Option<String>,
    user_principal_name: Option<String>,
    /// A disabled account is listed with no groups.
    account_enabled: Option<bool>,
    /// Present on entries a delta reports as deleted.
    #[serde(rename = "@removed")]
    removed: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Group {
    id: Option<String>,
    display_name: Option<String>,
    mail: Option<String>,
    #[serde(rename = "members@delta")]
    members: Option<Vec<Member>>,
    #[serde(rename = "@removed")]
    removed: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Member {
    #[serde(rename = "@odata.type")]
    kind: Option<String>,
    id: Option<String>,
    #[serde(rename = "@removed")]
    removed: Option<serde_json::Value>,
}

/// A group as gathered over the pages it appears on: Graph may split a large group's members
/// across several entries, the later ones without the group's properties.
#[derive(Default)]
struct Gathered {
    name: Option<String>,
    mail: Option<String>,
    users: Vec<String>,
    groups: Vec<String>,
}

impl Azure {
    pub fn new(settings: AzureSettings, api: Api) -> Azure {
        Azure { settings, api }
    }

    /// An application token for Graph (`{graph_url}/.default` = the app's granted permissions).
    async fn token(&self) -> Result<String, ProviderError> {
        let s = &self.settings;
        let url = join(&s.login_url, &[s.tenant_id.as_str(), "oauth2", "v2.0", "token"]);
        let scope = format!("{}/.default", s.graph_url.as_str().trim_end_matches('/'));
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.expose()),
            ("scope", scope.as_str()),
        ];
        oauth::client_credentials(&self.api, url, Some(&form), None).await
    }

    /// `{graph_url}/v1.0/{resource}/delta?$select=…`.
    fn delta_url(&self, resource: &str, select: &str) -> Url {
        let mut url = join(&self.settings.graph_url, &["v1.0", resource, "delta"]);
        url.query_pairs_mut().append_pair("$select", select);
        url
    }

    /// Every entry of a delta listing, following `@odata.nextLink`; the page that carries
    /// `@odata.deltaLink` instead is the last.
    async fn delta<T: DeserializeOwned>(
        &self,
        first: Url,
        token: &str,
        what: &str,
        progress: &Progress,
    ) -> Result<Vec<T>, ProviderError> {
        let mut all = Vec::new();
        let mut next = Some(first);
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            let (page, _): (DeltaPage<T>, _) = self.api.get(url.clone(), token).await?;
            all.extend(page.value);
            progress.read(what, all.len());
            next = next_page(page.next_link.as_deref(), &url)?;
            pages += 1;
            if pages > MAX_PAGES {
                return Err(ProviderError::Invalid(format!("{} never stops paging", endpoint(&url))));
            }
        }
        Ok(all)
    }

    async fn fetch_view(&self, progress: &Progress) -> Result<View, ProviderError> {
        let token = self.token().await?;
        let users: Vec<User> = self
            .delta(
                self.delta_url("users", "id,displayName,mail,userPrincipalName,accountEnabled"),
                &token,
                "users",
                progress,
            )
            .await?;
        let groups: Vec<Group> = self
            .delta(self.delta_url("groups", "id,displayName,mail,members"), &token, "groups", progress)
            .await?;
        let mut b = Builder::default();
        let mut disabled = std::collections::HashSet::new();
        for u in users.into_iter().filter(|u| u.removed.is_none()) {
            let Some(id) = u.id else { continue };
            if u.account_enabled == Some(false) {
                disabled.insert(id.clone());
            }
            let email =
                u.mail.as_deref().filter(|m| !m.trim().is_empty()).or(u.user_principal_name.as_deref());
            b.user(id, email, u.display_name.as_deref());
        }
        for (id, g) in gather(groups) {
            b.group(id.as_str(), g.name.unwrap_or_else(|| id.clone()), g.mail.as_deref());
            for user in g.users.into_iter().filter(|u| !disabled.contains(u)) {
                b.member(id.as_str(), user);
            }
            for child in g.groups {
                b.subgroup(id.as_str(), child);
            }
        }
        Ok(b.finish())
    }
}

/// Merge the entries of each group; deleted groups and removed members are left out, and
/// members other than users and groups (devices, service principals, contacts) ignored.
fn gather(entries: Vec<Group>) -> HashMap<String, Gathered> {
    let mut groups: HashMap<String, Gathered> = HashMap::new();
    for entry in entries.into_iter().filter(|g| g.removed.is_none()) {
        let Some(id) = entry.id else { continue };
        let g = groups.entry(id).or_default();
        g.name = entry.display_name.or(g.name.take());
        g.mail = entry.mail.or(g.mail.take());
        for m in entry.members.into_iter().flatten().filter(|m| m.removed.is_none()) {
            let Some(member) = m.id else { continue };
            match m.kind.as_deref() {
                Some(USER_TYPE) => g.users.push(member),
                Some(GROUP_TYPE) => g.groups.push(member),
                _ => {}
            }
        }
    }
    groups
}

/// The next page, if `link` names one on the host `current` is on: the token goes with every
/// request, so a link elsewhere is refused rather than followed.
fn next_page(link: Option<&str>, current: &Url) -> Result<Option<Url>, ProviderError> {
    let Some(link) = link else { return Ok(None) };
    let next = current.join(link).map_err(|e| ProviderError::Decode {
        what: endpoint(current),
        message: format!("@odata.nextLink is not a URL: {e}"),
    })?;
    same_origin(Some(next), current)
}

impl Provider for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn fetch<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<View, ProviderError>> {
        Box::pin(self.fetch_view(progress))
    }
}
