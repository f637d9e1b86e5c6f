//! Subject, queue-group, bucket and stream names.

/// The prefix used when the configuration names none.
pub const DEFAULT_PREFIX: &str = "portcullis";

/// The queue group every service endpoint joins, so any number of instances share the load.
pub const QUEUE_GROUP: &str = "portcullis";

/// Whether `prefix` is usable both as a subject token and inside bucket/stream names.
pub fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 32
        && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The services that answer requests, as named in NATS service discovery (`nats micro ls`).
/// (The proxy only asks.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceName {
    Authorize,
    Authenticate,
    Cache,
}

impl ServiceName {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Authorize => "authorize",
            ServiceName::Authenticate => "authenticate",
            ServiceName::Cache => "cache",
        }
    }
}

/// All names of one installation, derived from its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    prefix: String,
}

impl Default for Contract {
    fn default() -> Self {
        Contract::new(DEFAULT_PREFIX)
    }
}

impl Contract {
    /// `prefix` must satisfy [`is_valid_prefix`]; configuration validation checks it.
    pub fn new(prefix: &str) -> Self {
        Contract { prefix: prefix.to_owned() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Name of the NATS micro service for `service` (e.g. `portcullis-authorize`).
    pub fn service_name(&self, service: ServiceName) -> String {
        format!("{}-{}", self.prefix, service.as_str())
    }

    /// The subject group of `service`'s endpoints (e.g. `portcullis.authorize`).
    pub fn service_group(&self, service: ServiceName) -> String {
        format!("{}.{}", self.prefix, service.as_str())
    }

    pub fn queue_group(&self) -> &'static str {
        QUEUE_GROUP
    }

    /// `authorize.check`: [`crate::messages::CheckRequest`] → [`crate::messages::CheckReply`].
    pub fn authorize_check(&self) -> String {
        format!("{}.{}", self.service_group(ServiceName::Authorize), endpoint::CHECK)
    }

    /// `authorize.check_batch`: [`crate::messages::CheckBatchRequest`] →
    /// [`crate::messages::CheckBatchReply`]: the checks a proxy has in flight at one moment,
    /// in one message (each decided on its own).
    pub fn authorize_check_batch(&self) -> String {
        format!("{}.{}", self.service_group(ServiceName::Authorize), endpoint::CHECK_BATCH)
    }

    /// `authenticate.http`: [`crate::messages::HttpRequest`] → [`crate::messages::HttpReply`].
    pub fn authenticate_http(&self) -> String {
        format!("{}.{}", self.service_group(ServiceName::Authenticate), endpoint::HTTP)
    }

    /// `cache.session.create`: [`crate::messages::CreateSessionRequest`] →
    /// [`crate::messages::CreateSessionReply`].
    pub fn cache_session_create(&self) -> String {
        format!("{}.{}", self.service_group(ServiceName::Cache), endpoint::SESSION_CREATE)
    }

    /// `cache.session.get`: [`crate::messages::GetSessionRequest`] →
    /// [`crate::messages::SessionReply`].
    pub fn cache_session_get(&self) -> String {
        format!("{}.{}", self.service_group(ServiceName::Cache), endpoint::SESSION_GET)
    }

    /// `cache.session.revoke`: [`crate::messages::RevokeSessionRequest`] →
    /// [`crate::messages::SessionReply`].
    pub fn cache_session_revoke(&self) -> String {
        format!("{}.{}", self.service_group(ServiceName::Cache), endpoint::SESSION_REVOKE)
    }

    /// `cache.session.list`: [`crate::messages::ListSessionsRequest`] →
    /// [`crate::messages::ListSessionsReply`].
    pub fn cache_session_list(&self) -> String {
        format!("{}.{}", self.service_group(ServiceName::Cache), endpoint::SESSION_LIST)
    }

    /// `cache.session.revoke_where`: [`crate::messages::RevokeWhereRequest`] →
    /// [`crate::messages::RevokedReply`].
    pub fn cache_session_revoke_where(&self) -> String {
        format!("{}.{}", self.service_group(ServiceName::Cache), endpoint::SESSION_REVOKE_WHERE)
    }

    /// `cache.directory.sync`: [`crate::messages::DirectorySyncRequest`] →
    /// [`crate::messages::DirectorySyncReply`] (asks for a sync now; the outcome is an event).
    pub fn cache_directory_sync(&self) -> String {
        format!("{}.{}", self.service_group(ServiceName::Cache), endpoint::DIRECTORY_SYNC)
    }

    /// `cache.directory.show`: [`crate::messages::DirectoryShowRequest`] →
    /// [`crate::messages::DirectoryShowReply`].
    pub fn cache_directory_show(&self) -> String {
        format!("{}.{}", self.service_group(ServiceName::Cache), endpoint::DIRECTORY_SHOW)
    }

    /// KV bucket of the synced directory: users (`u` + SHA-256 of the id) and groups (`g` +
    /// SHA-256 of the id), each a [`crate::messages::DirectoryRecord`], plus the pending
    /// sync request under `sync-request`.
    pub fn directory_bucket(&self) -> String {
        self.bucket("directory")
    }

    /// KV bucket of leases for singleton jobs, key = job name, value =
    /// [`crate::messages::Lease`].
    pub fn leases_bucket(&self) -> String {
        self.bucket("leases")
    }

    /// KV bucket of sessions, key = session id, value = [`crate::messages::Session`].
    pub fn sessions_bucket(&self) -> String {
        self.bucket("sessions")
    }

    /// KV bucket of users, key = user id (`sub`), value = [`crate::messages::User`].
    pub fn users_bucket(&self) -> String {
        self.bucket("users")
    }

    /// KV bucket of single-use login states, key = OAuth `state`, value =
    /// [`crate::messages::LoginState`]; entries expire with the bucket's `max_age`.
    pub fn logins_bucket(&self) -> String {
        self.bucket("logins")
    }

    /// The JetStream stream holding every event, on subjects [`Contract::events_wildcard`].
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_ascii_uppercase())
    }

    /// Subjects captured by the events stream (`portcullis.events.>`).
    pub fn events_wildcard(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// The subject an event of `kind` (e.g. `session.created`) is published on.
    pub fn event_subject(&self, kind: &str) -> String {
        format!("{}.events.{kind}", self.prefix)
    }

    fn bucket(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }
}

/// Endpoint names inside each service group.
pub mod endpoint {
    pub const CHECK: &str = "check";
    pub const CHECK_BATCH: &str = "check_batch";
    pub const HTTP: &str = "http";
    pub const SESSION_CREATE: &str = "session.create";
    pub const SESSION_GET: &str = "session.get";
    pub const SESSION_REVOKE: &str = "session.revoke";
    pub const SESSION_LIST: &str = "session.list";
    pub const SESSION_REVOKE_WHERE: &str = "session.revoke_where";
    pub const DIRECTORY_SYNC: &str = "directory.sync";
    pub const DIRECTORY_SHOW: &str = "directory.show";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_match_the_design() {
        let c = Contract::default();
        assert_eq!(c.authorize_check(), "portcullis.authorize.check");
        assert_eq!(c.authorize_check_batch(), "portcullis.authorize.check_batch");
        assert_eq!(c.authenticate_http(), "portcullis.authenticate.http");
        assert_eq!(c.cache_session_create(), "portcullis.cache.session.create");
        assert_eq!(c.cache_session_revoke(), "portcullis.cache.session.revoke");
        assert_eq!(c.sessions_bucket(), "portcullis_sessions");
        assert_eq!(c.events_stream(), "PORTCULLIS_EVENTS");
        assert_eq!(c.directory_bucket(), "portcullis_directory");
        assert_eq!(c.cache_directory_sync(), "portcullis.cache.directory.sync");
        assert_eq!(c.events_wildcard(), "portcullis.events.>");
        assert_eq!(c.event_subject("session.revoked"), "portcullis.events.session.revoked");
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(is_valid_prefix("portcullis"));
        assert!(is_valid_prefix("team_a2"));
        // `-` would map to `_` in bucket names, so `team-a` and `team_a` would collide.
        for bad in ["", "a.b", "a>", "A", "a b", "*", "team-a"] {
            assert!(!is_valid_prefix(bad), "{bad:?}");
        }
    }
}
