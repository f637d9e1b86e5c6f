//! The NATS contract of Portcullis: every subject, queue group, bucket, stream and event
//! type, next to the Rust type of every message that travels on them.
//!
//! No other crate spells a subject or a bucket name. All names hang off a configurable
//! prefix (default [`DEFAULT_PREFIX`]) so several installations can share one NATS.
//! JSON Schema files for every message are generated from these types into
//! `schemas/json/` (`just schemas`); a test fails when they are stale.

#![forbid(unsafe_code)]

pub mod events;
pub mod messages;
mod names;
pub use names::endpoint as names_endpoint;

pub use names::{Contract, DEFAULT_PREFIX, ServiceName, is_valid_prefix};

/// Every JSON Schema this crate publishes: (file stem, schema).
pub fn all_schemas() -> Vec<(&'static str, schemars::Schema)> {
    use schemars::schema_for;
    vec![
        ("authorize.check.request", schema_for!(messages::CheckRequest)),
        ("authorize.check.reply", schema_for!(messages::CheckReply)),
        ("authorize.check_batch.request", schema_for!(messages::CheckBatchRequest)),
        ("authorize.check_batch.reply", schema_for!(messages::CheckBatchReply)),
        ("authenticate.http.request", schema_for!(messages::HttpRequest)),
        ("authenticate.http.reply", schema_for!(messages::HttpReply)),
        ("cache.session.create.request", schema_for!(messages::CreateSessionRequest)),
        ("cache.session.create.reply", schema_for!(messages::CreateSessionReply)),
        ("cache.session.get.request", schema_for!(messages::GetSessionRequest)),
        ("cache.session.revoke.request", schema_for!(messages::RevokeSessionRequest)),
        ("cache.session.reply", schema_for!(messages::SessionReply)),
        ("error.reply", schema_for!(messages::ErrorReply)),
        ("kv.session", schema_for!(messages::Session)),
        ("kv.user", schema_for!(messages::User)),
        ("kv.login_state", schema_for!(messages::LoginState)),
        ("event.session.created.v1", schema_for!(events::SessionCreated)),
        ("event.session.revoked.v1", schema_for!(events::SessionRevoked)),
        ("event.session.refreshed.v1", schema_for!(events::SessionRefreshed)),
        ("event.session.expired.v1", schema_for!(events::SessionExpired)),
        ("event.user.updated.v1", schema_for!(events::UserUpdated)),
        ("cache.session.list.request", schema_for!(messages::ListSessionsRequest)),
        ("cache.session.list.reply", schema_for!(messages::ListSessionsReply)),
        ("cache.session.revoke_where.request", schema_for!(messages::RevokeWhereRequest)),
        ("cache.session.revoke_where.reply", schema_for!(messages::RevokedReply)),
        ("kv.lease", schema_for!(messages::Lease)),
        ("kv.directory", schema_for!(messages::DirectoryRecord)),
        ("cache.directory.sync.request", schema_for!(messages::DirectorySyncRequest)),
        ("cache.directory.sync.reply", schema_for!(messages::DirectorySyncReply)),
        ("cache.directory.show.request", schema_for!(messages::DirectoryShowRequest)),
        ("cache.directory.show.reply", schema_for!(messages::DirectoryShowReply)),
        ("event.directory.synced.v1", schema_for!(events::DirectorySynced)),
        ("event.directory.user.groups_changed.v1", schema_for!(events::DirectoryUserGroupsChanged)),
        ("event.directory.sync_failed.v1", schema_for!(events::DirectorySyncFailed)),
    ]
}
