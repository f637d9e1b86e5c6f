//! CloudEvents published on the events stream: type names and the `data` of each.
//!
//! Events follow CloudEvents 1.0 and its NATS protocol binding. The event `id` is also the
//! `Nats-Msg-Id`, so a retried publish is stored once. Data never carries tokens.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::messages::RevokeReason;

/// CloudEvents `type` of [`SessionCreated`].
pub const SESSION_CREATED: &str = "io.portcullis.session.created.v1";
/// CloudEvents `type` of [`SessionRevoked`].
pub const SESSION_REVOKED: &str = "io.portcullis.session.revoked.v1";
/// CloudEvents `type` of [`SessionRefreshed`].
pub const SESSION_REFRESHED: &str = "io.portcullis.session.refreshed.v1";
/// CloudEvents `type` of [`SessionExpired`].
pub const SESSION_EXPIRED: &str = "io.portcullis.session.expired.v1";
/// CloudEvents `type` of [`UserUpdated`].
pub const USER_UPDATED: &str = "io.portcullis.user.updated.v1";

/// CloudEvents `type` of [`DirectorySynced`].
pub const DIRECTORY_SYNCED: &str = "io.portcullis.directory.synced.v1";
/// CloudEvents `type` of [`DirectoryUserGroupsChanged`].
pub const DIRECTORY_USER_GROUPS_CHANGED: &str = "io.portcullis.directory.user.groups_changed.v1";
/// CloudEvents `type` of [`DirectorySyncFailed`].
pub const DIRECTORY_SYNC_FAILED: &str = "io.portcullis.directory.sync_failed.v1";

/// The content type of structured-mode events.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// What an event is about, with its CloudEvents type and subject suffix.
pub trait EventData: Serialize {
    /// CloudEvents `type`.
    const TYPE: &'static str;
    /// Subject suffix after `<prefix>.events.`.
    const KIND: &'static str;
    /// CloudEvents `subject`: the id the event is about.
    fn subject(&self) -> &str;
}

/// A person signed in and a session was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionCreated {
    pub session_id: String,
    pub user_id: String,
    pub email: Option<String>,
    /// The IdP's issuer URL.
    pub idp: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
}

impl EventData for SessionCreated {
    const TYPE: &'static str = SESSION_CREATED;
    const KIND: &'static str = "session.created";
    fn subject(&self) -> &str {
        &self.session_id
    }
}

/// A session ended before its expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionRevoked {
    pub session_id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub idp: String,
    pub reason: RevokeReason,
    /// RFC 3339.
    pub revoked_at: String,
}

impl EventData for SessionRevoked {
    const TYPE: &'static str = SESSION_REVOKED;
    const KIND: &'static str = "session.revoked";
    fn subject(&self) -> &str {
        &self.session_id
    }
}

/// A session's tokens were refreshed at the IdP (and its claims updated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionRefreshed {
    pub session_id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub idp: String,
    /// RFC 3339.
    pub refreshed_at: String,
    /// RFC 3339: when the new tokens expire, if known.
    pub tokens_expire_at: Option<String>,
}

impl EventData for SessionRefreshed {
    const TYPE: &'static str = SESSION_REFRESHED;
    const KIND: &'static str = "session.refreshed";
    fn subject(&self) -> &str {
        &self.session_id
    }
}

/// A session reached its end (`cookie_expire`) and was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionExpired {
    pub session_id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub idp: String,
    /// RFC 3339.
    pub expired_at: String,
}

impl EventData for SessionExpired {
    const TYPE: &'static str = SESSION_EXPIRED;
    const KIND: &'static str = "session.expired";
    fn subject(&self) -> &str {
        &self.session_id
    }
}

/// What the IdP says about a user changed (at sign-in or refresh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserUpdated {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// Which of `email`, `name`, `groups` changed.
    pub changed: Vec<String>,
    pub idp: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl EventData for UserUpdated {
    const TYPE: &'static str = USER_UPDATED;
    const KIND: &'static str = "user.updated";
    fn subject(&self) -> &str {
        &self.user_id
    }
}

/// A directory sync finished and its changes are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DirectorySynced {
    /// The provider's name (`scim`, `ldap`, `okta`, ...).
    pub provider: String,
    pub users: u64,
    pub groups: u64,
    /// Users whose group membership changed (one `directory.user.groups_changed` each).
    pub users_changed: u64,
    /// Records written or deleted in the directory bucket.
    pub records_written: u64,
    pub duration_ms: u64,
    /// Set when the sync was asked for with `portcullis directory sync --now`.
    pub request_id: Option<String>,
    /// RFC 3339.
    pub synced_at: String,
}

impl EventData for DirectorySynced {
    const TYPE: &'static str = DIRECTORY_SYNCED;
    const KIND: &'static str = "directory.synced";
    fn subject(&self) -> &str {
        &self.provider
    }
}

/// One user's directory groups changed (or the user appeared or left the directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DirectoryUserGroupsChanged {
    /// The provider's user id.
    pub user_id: String,
    pub email: Option<String>,
    /// Group ids the user joined.
    pub added: Vec<String>,
    /// Group ids the user left.
    pub removed: Vec<String>,
    pub provider: String,
}

impl EventData for DirectoryUserGroupsChanged {
    const TYPE: &'static str = DIRECTORY_USER_GROUPS_CHANGED;
    const KIND: &'static str = "directory.user.groups_changed";
    fn subject(&self) -> &str {
        &self.user_id
    }
}

/// A directory sync failed; nothing stored changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DirectorySyncFailed {
    pub provider: String,
    /// What went wrong (never a credential).
    pub error: String,
    /// Consecutive failures so far.
    pub attempt: u32,
    /// RFC 3339: when the next attempt is due.
    pub retry_at: String,
    pub request_id: Option<String>,
}

impl EventData for DirectorySyncFailed {
    const TYPE: &'static str = DIRECTORY_SYNC_FAILED;
    const KIND: &'static str = "directory.sync_failed";
    fn subject(&self) -> &str {
        &self.provider
    }
}

/// Every event type with its data schema file stem, for tests and tools.
pub const ALL: [(&str, &str); 8] = [
    (SESSION_CREATED, "event.session.created.v1"),
    (SESSION_REVOKED, "event.session.revoked.v1"),
    (SESSION_REFRESHED, "event.session.refreshed.v1"),
    (SESSION_EXPIRED, "event.session.expired.v1"),
    (USER_UPDATED, "event.user.updated.v1"),
    (DIRECTORY_SYNCED, "event.directory.synced.v1"),
    (DIRECTORY_USER_GROUPS_CHANGED, "event.directory.user.groups_changed.v1"),
    (DIRECTORY_SYNC_FAILED, "event.directory.sync_failed.v1"),
];
