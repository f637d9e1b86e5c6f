//! What a new view changes against the stored one: the records to write or delete, and the
//! users whose groups changed (one event each).

use std::collections::{BTreeSet, HashMap, HashSet};

use portcullis_schemas::messages::{DirectoryGroup, DirectoryUser};

use crate::View;

/// One user's membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChange {
    pub user_id: String,
    pub email: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// New or changed users.
    pub put_users: Vec<DirectoryUser>,
    /// Ids of users no longer listed.
    pub delete_users: Vec<String>,
    pub put_groups: Vec<DirectoryGroup>,
    pub delete_groups: Vec<String>,
    /// Users whose set of groups changed, including users who appeared or left with groups.
    pub user_changes: Vec<UserChange>,
}

impl Changes {
    pub fn records(&self) -> usize {
        self.put_users.len() + self.delete_users.len() + self.put_groups.len() + self.delete_groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records() == 0
    }
}

/// Compare `new` with what is stored (users and groups by id). `new` is consumed: what
/// changed moves into the result rather than being copied (large directories).
pub fn diff(
    stored_users: &HashMap<String, DirectoryUser>,
    stored_groups: &HashMap<String, DirectoryGroup>,
    new: View,
) -> Changes {
    let mut c = Changes::default();
    let mut seen_users: HashSet<&str> = HashSet::with_capacity(stored_users.len());
    for user in new.users {
        let old = stored_users.get_key_value(&user.id);
        if let Some((key, _)) = old {
            seen_users.insert(key.as_str());
        }
        let old = old.map(|(_, u)| u);
        let before: BTreeSet<&str> =
            old.map(|o| o.groups.iter().map(String::as_str).collect()).unwrap_or_default();
        let after: BTreeSet<&str> = user.groups.iter().map(String::as_str).collect();
        if before != after {
            c.user_changes.push(UserChange {
                user_id: user.id.clone(),
                email: user.email.clone(),
                added: after.difference(&before).map(|s| (*s).to_owned()).collect(),
                removed: before.difference(&after).map(|s| (*s).to_owned()).collect(),
            });
        }
        if old != Some(&user) {
            c.put_users.push(user);
        }
    }
    let mut gone: Vec<&DirectoryUser> =
        stored_users.values().filter(|u| !seen_users.contains(u.id.as_str())).collect();
    gone.sort_by(|a, b| a.id.cmp(&b.id));
    for old in gone {
        c.delete_users.push(old.id.clone());
        if !old.groups.is_empty() {
            c.user_changes.push(UserChange {
                user_id: old.id.clone(),
                email: old.email.clone(),
                added: Vec::new(),
                removed: old.groups.clone(),
            });
        }
    }
    let mut seen_groups: HashSet<&str> = HashSet::with_capacity(stored_groups.len());
    for group in new.groups {
        if let Some((key, old)) = stored_groups.get_key_value(&group.id) {
            seen_groups.insert(key.as_str());
            if *old == group {
                continue;
            }
        }
        c.put_groups.push(group);
    }
    let mut gone: Vec<String> =
        stored_groups.keys().filter(|id| !seen_groups.contains(id.as_str())).cloned().collect();
    gone.sort();
    c.delete_groups = gone;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, groups: &[&str]) -> DirectoryUser {
        DirectoryUser {
            id: id.into(),
            email: Some(format!("{id}@example.com")),
            name: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn group(id: &str) -> DirectoryGroup {
        DirectoryGroup { id: id.into(), name: id.to_uppercase(), email: None }
    }

    #[test]
    fn only_what_changed_is_written() {
        let stored_users: HashMap<_, _> =
            [user("a", &["g1"]), user("b", &["g1", "g2"]), user("c", &["g2"]), user("d", &[])]
                .into_iter()
                .map(|u| (u.id.clone(), u))
                .collect();
        let stored_groups: HashMap<_, _> =
            [group("g1"), group("g2")].into_iter().map(|g| (g.id.clone(), g)).collect();
        let mut renamed = group("g2");
        renamed.name = "Platform".into();
        let new = View {
            users: vec![user("a", &["g1"]), user("b", &["g2", "g3"]), user("e", &[]), user("f", &["g3"])],
            groups: vec![group("g1"), renamed.clone(), group("g3")],
        };
        let c = diff(&stored_users, &stored_groups, new.clone());
        assert_eq!(c.put_users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["b", "e", "f"]);
        assert_eq!(c.delete_users, ["c", "d"]);
        assert_eq!(c.put_groups, [renamed, group("g3")]);
        assert!(c.delete_groups.is_empty());
        let changes: Vec<(&str, Vec<String>, Vec<String>)> =
            c.user_changes.iter().map(|u| (u.user_id.as_str(), u.added.clone(), u.removed.clone())).collect();
        assert_eq!(
            changes,
            [
                ("b", vec!["g3".to_owned()], vec!["g1".to_owned()]),
                ("f", vec!["g3".to_owned()], vec![]),
                ("c", vec![], vec!["g2".to_owned()]),
            ]
        );
        // The same view again: nothing to do.
        let users: HashMap<_, _> = new.users.iter().map(|u| (u.id.clone(), u.clone())).collect();
        let groups: HashMap<_, _> = new.groups.iter().map(|g| (g.id.clone(), g.clone())).collect();
        assert_eq!(diff(&users, &groups, new), Changes::default());
    }
}
