//! Directory providers behind one trait: each lists users, groups and memberships from one
//! kind of directory (SCIM, LDAP, Okta, Microsoft Entra ID, Google Workspace, GitHub,
//! GitLab, Keycloak, Auth0) and returns a complete [`View`] or an error, never a partial view.
//!
//! The cache service compares views and writes what changed (see `diff`); this crate does no
//! NATS and keeps no state between fetches.

#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use portcullis_runtime::config::{DirectoryConfig, DirectoryProvider};
use portcullis_schemas::messages::{DirectoryGroup, DirectoryUser};
use tracing::info;

pub mod diff;
pub mod http;
mod ldap;
mod oauth;
mod scim;
mod vendors;

pub use diff::{Changes, UserChange};

/// Everything a directory says, complete: users (with the ids of all their groups, nested
/// memberships resolved) and groups, each sorted by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub users: Vec<DirectoryUser>,
    pub groups: Vec<DirectoryGroup>,
}

/// Why a fetch failed. Messages never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot reach {what}: {message}")]
    Unreachable { what: String, message: String },
    #[error("{what} answered {status}: {detail}")]
    Status { what: String, status: u16, detail: String },
    #[error("{what} kept answering 429 (rate limited) after {attempts} attempts")]
    RateLimited { what: String, attempts: u32 },
    #[error("unexpected answer from {what}: {message}")]
    Decode { what: String, message: String },
    #[error("credentials refused: {0}")]
    Auth(String),
    #[error("ldap: {0}")]
    Ldap(String),
    #[error("{0}")]
    Invalid(String),
}

/// Logs how far a long fetch has come, at most every few seconds.
pub struct Progress {
    provider: &'static str,
    every: Duration,
    last: Mutex<Instant>,
}

impl Progress {
    pub fn new(provider: &'static str) -> Progress {
        Progress { provider, every: Duration::from_secs(5), last: Mutex::new(Instant::now()) }
    }

    /// `count` items of `what` read so far.
    pub fn read(&self, what: &str, count: usize) {
        let Ok(mut last) = self.last.lock() else { return };
        if last.elapsed() >= self.every {
            *last = Instant::now();
            info!(provider = self.provider, what, count, "directory sync in progress");
        }
    }
}

/// One kind of directory.
pub trait Provider: Send + Sync {
    /// As written in `directory.provider`.
    fn name(&self) -> &'static str;

    /// List every user, group and membership. All or nothing: an error means no view.
    fn fetch<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<View, ProviderError>>;
}

/// The provider the configuration names.
pub fn provider(config: &DirectoryConfig) -> Result<Box<dyn Provider>, ProviderError> {
    let api = http::Api::new(config.requests_per_second, config.refresh_timeout)?;
    Ok(match &config.provider {
        DirectoryProvider::Scim(s) => Box::new(scim::Scim::new(s.clone(), api)),
        DirectoryProvider::Ldap(s) => Box::new(ldap::Ldap3::new(s.clone())),
        DirectoryProvider::Okta(s) => Box::new(vendors::okta::Okta::new(s.clone(), api)),
        DirectoryProvider::Azure(s) => Box::new(vendors::azure::Azure::new(s.clone(), api)),
        DirectoryProvider::Google(s) => Box::new(vendors::google::Google::new(s.clone(), api)?),
        DirectoryProvider::Github(s) => Box::new(vendors::github::Github::new(s.clone(), api)),
        DirectoryProvider::Gitlab(s) => Box::new(vendors::gitlab::Gitlab::new(s.clone(), api)),
        DirectoryProvider::Keycloak(s) => Box::new(vendors::keycloak::Keycloak::new(s.clone(), api)),
        DirectoryProvider::Auth0(s) => Box::new(vendors::auth0::Auth0::new(s.clone(), api)),
    })
}

/// Ids as small numbers, so a directory's memberships (hundreds of thousands of pairs) cost
/// eight bytes each rather than two strings.
#[derive(Default)]
struct Interner {
    index: HashMap<String, u32>,
    ids: Vec<String>,
}

impl Interner {
    fn get_or_add(&mut self, id: &str) -> u32 {
        if let Some(i) = self.index.get(id) {
            return *i;
        }
        let i = self.ids.len() as u32;
        self.index.insert(id.to_owned(), i);
        self.ids.push(id.to_owned());
        i
    }
}

/// Collects what a provider lists, then resolves nested groups into a [`View`].
#[derive(Default)]
pub struct Builder {
    users: HashMap<String, DirectoryUser>,
    groups: HashMap<String, DirectoryGroup>,
    user_ids: Interner,
    group_ids: Interner,
    /// (group, user) direct memberships.
    members: Vec<(u32, u32)>,
    /// (parent group, child group).
    subgroups: Vec<(u32, u32)>,
}

impl Builder {
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn has_user(&self, id: &str) -> bool {
        self.users.contains_key(id)
    }

    pub fn has_group(&self, id: &str) -> bool {
        self.groups.contains_key(id)
    }

    /// Add a user; the email is lower-cased and blank names dropped. Later duplicates win.
    pub fn user(&mut self, id: impl Into<String>, email: Option<&str>, name: Option<&str>) {
        let id = id.into();
        let clean = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let user = DirectoryUser {
            id: id.clone(),
            email: clean(email).map(|e| e.to_lowercase()),
            name: clean(name),
            groups: Vec::new(),
        };
        self.users.insert(id, user);
    }

    pub fn group(&mut self, id: impl Into<String>, name: impl Into<String>, email: Option<&str>) {
        let id = id.into();
        let email = email.map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase);
        self.groups.insert(id.clone(), DirectoryGroup { id, name: name.into(), email });
    }

    /// `user` is directly in `group`.
    pub fn member(&mut self, group: impl AsRef<str>, user: impl AsRef<str>) {
        let g = self.group_ids.get_or_add(group.as_ref());
        let u = self.user_ids.get_or_add(user.as_ref());
        self.members.push((g, u));
    }

    /// Members of `child` are members of `parent` too.
    pub fn subgroup(&mut self, parent: impl AsRef<str>, child: impl AsRef<str>) {
        let p = self.group_ids.get_or_add(parent.as_ref());
        let c = self.group_ids.get_or_add(child.as_ref());
        self.subgroups.push((p, c));
    }

    /// Resolve nesting (cycles are harmless) and sort. Memberships naming users or groups
    /// the directory did not list are dropped.
    pub fn finish(self) -> View {
        let Builder { mut users, groups, user_ids, group_ids, members, subgroups } = self;
        let known_group: Vec<bool> = group_ids.ids.iter().map(|id| groups.contains_key(id)).collect();
        let mut parents: Vec<Vec<u32>> = vec![Vec::new(); group_ids.ids.len()];
        for (parent, child) in subgroups {
            if known_group[parent as usize] && known_group[child as usize] {
                parents[child as usize].push(parent);
            }
        }
        let mut direct: Vec<Vec<u32>> = vec![Vec::new(); user_ids.ids.len()];
        for (group, user) in members {
            if known_group[group as usize] {
                direct[user as usize].push(group);
            }
        }
        // Every group a member of group `g` is in, through any depth of nesting (cached).
        let mut closure: Vec<Option<Vec<u32>>> = vec![None; group_ids.ids.len()];
        let mut all: Vec<u32> = Vec::new();
        for (u, groups_of_user) in direct.into_iter().enumerate() {
            if groups_of_user.is_empty() {
                continue;
            }
            let Some(user) = users.get_mut(&user_ids.ids[u]) else { continue };
            all.clear();
            for g in groups_of_user {
                let up = closure[g as usize].get_or_insert_with(|| ancestors(g, &parents));
                all.extend_from_slice(up);
            }
            let mut names: Vec<String> = all.iter().map(|g| group_ids.ids[*g as usize].clone()).collect();
            names.sort_unstable();
            names.dedup();
            user.groups = names;
        }
        let mut users: Vec<DirectoryUser> = users.into_values().collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        let mut groups: Vec<DirectoryGroup> = groups.into_values().collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        View { users, groups }
    }
}

/// `group` and every group it is nested in.
fn ancestors(group: u32, parents: &[Vec<u32>]) -> Vec<u32> {
    let mut seen = BTreeSet::from([group]);
    let mut todo = vec![group];
    while let Some(g) = todo.pop() {
        for p in &parents[g as usize] {
            if seen.insert(*p) {
                todo.push(*p);
            }
        }
    }
    seen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_groups_resolve_and_cycles_end() {
        let mut b = Builder::default();
        b.user("u1", Some("Alice@Example.COM"), Some("Alice"));
        b.user("u2", None, Some("  "));
        for g in ["a", "b", "c", "d"] {
            b.group(g, g.to_uppercase(), None);
        }
        b.member("a", "u1");
        b.member("d", "u2");
        b.member("a", "ghost");
        b.member("ghost-group", "u1");
        b.subgroup("b", "a");
        b.subgroup("c", "b");
        b.subgroup("a", "c"); // a cycle
        let view = b.finish();
        let u1 = &view.users[0];
        assert_eq!(u1.email.as_deref(), Some("alice@example.com"));
        assert_eq!(u1.groups, ["a", "b", "c"]);
        assert_eq!(view.users[1].groups, ["d"]);
        assert_eq!(view.users[1].name, None);
        assert_eq!(view.users.len(), 2);
    }
}
