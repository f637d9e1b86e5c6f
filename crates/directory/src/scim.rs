//! SCIM 2.0 (RFC 7643/7644): `GET /Users` and `GET /Groups`, paged with `startIndex` and
//! `count`, optionally filtered. Memberships come from each group's `members` (users and
//! nested groups); a user's own `groups` attribute, when the server sends it, adds to them.

use std::collections::HashSet;

use futures::future::BoxFuture;
use portcullis_runtime::config::ScimSettings;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::http::{Api, join};
use crate::{Builder, Progress, Provider, ProviderError, View};

pub struct Scim {
    settings: ScimSettings,
    api: Api,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse<T> {
    total_results: Option<u64>,
    #[serde(rename = "Resources", default = "Vec::new")]
    resources: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: String,
    user_name: Option<String>,
    display_name: Option<String>,
    name: Option<Name>,
    #[serde(default)]
    emails: Vec<MultiValue>,
    active: Option<bool>,
    #[serde(default)]
    groups: Vec<MultiValue>,
}

#[derive(Deserialize)]
struct Name {
    formatted: Option<String>,
}

#[derive(Deserialize)]
struct MultiValue {
    value: Option<String>,
    #[serde(default)]
    primary: bool,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Group {
    id: String,
    display_name: Option<String>,
    #[serde(default)]
    members: Vec<MultiValue>,
}

impl Scim {
    pub fn new(settings: ScimSettings, api: Api) -> Scim {
        Scim { settings, api }
    }

    /// Every resource of `resource` (`Users` or `Groups`), page by page, each page handed to
    /// `take` and dropped (a large directory is never held twice).
    async fn list<T: DeserializeOwned>(
        &self,
        resource: &str,
        filter: Option<&str>,
        progress: &Progress,
        mut take: impl FnMut(Vec<T>),
    ) -> Result<(), ProviderError> {
        let token = self.settings.bearer_token.as_ref().map(|t| t.expose()).unwrap_or_default();
        let mut start = 1u64;
        loop {
            let mut url = join(&self.settings.url, &[resource]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("startIndex", &start.to_string());
                q.append_pair("count", &self.settings.page_size.to_string());
                if let Some(f) = filter {
                    q.append_pair("filter", f);
                }
            }
            let mut request = self.api.client().get(url).header("accept", "application/scim+json");
            if !token.is_empty() {
                request = request.bearer_auth(token);
            }
            let (page, _): (ListResponse<T>, _) = self.api.json(request).await?;
            let got = page.resources.len() as u64;
            take(page.resources);
            start += got;
            progress.read(resource, (start - 1) as usize);
            // An empty page ends the listing even when totalResults says otherwise.
            if got == 0 || page.total_results.is_none_or(|total| start > total) {
                return Ok(());
            }
        }
    }

    async fn fetch_view(&self, progress: &Progress) -> Result<View, ProviderError> {
        let mut b = Builder::default();
        let mut inactive: HashSet<String> = HashSet::new();
        self.list("Users", self.settings.user_filter.as_deref(), progress, |users: Vec<User>| {
            for u in users {
                let email = u
                    .emails
                    .iter()
                    .find(|e| e.primary)
                    .or_else(|| u.emails.first())
                    .and_then(|e| e.value.as_deref());
                let name = u
                    .display_name
                    .as_deref()
                    .or(u.name.as_ref().and_then(|n| n.formatted.as_deref()))
                    .or(u.user_name.as_deref());
                b.user(&u.id, email, name);
                // A deactivated user stays listed but belongs to no group.
                if u.active == Some(false) {
                    inactive.insert(u.id);
                    continue;
                }
                for g in u.groups.iter().filter_map(|g| g.value.as_deref()) {
                    b.member(g, &u.id);
                }
            }
        })
        .await?;
        // Members without a `type` are told apart once every group is known.
        let mut untyped: Vec<(String, String)> = Vec::new();
        self.list("Groups", self.settings.group_filter.as_deref(), progress, |groups: Vec<Group>| {
            for g in groups {
                for m in &g.members {
                    let Some(id) = m.value.as_deref() else { continue };
                    match m.kind.as_deref() {
                        Some(k) if k.eq_ignore_ascii_case("group") => b.subgroup(&g.id, id),
                        Some(_) if inactive.contains(id) => {}
                        Some(_) => b.member(&g.id, id),
                        None => untyped.push((g.id.clone(), id.to_owned())),
                    }
                }
                b.group(&g.id, g.display_name.unwrap_or_else(|| g.id.clone()), None);
            }
        })
        .await?;
        for (group, id) in untyped {
            if b.has_group(&id) && !b.has_user(&id) {
                b.subgroup(&group, &id);
            } else if !inactive.contains(&id) {
                b.member(&group, &id);
            }
        }
        Ok(b.finish())
    }
}

impl Provider for Scim {
    fn name(&self) -> &'static str {
        "scim"
    }

    fn fetch<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<View, ProviderError>> {
        Box::pin(self.fetch_view(progress))
    }
}
