//! The settings of each bucket and of the events stream, in one place, so whichever service
//! creates them first creates them the same way.

use std::time::Duration;

use crate::bus::BucketSpec;
use crate::config::Config;

/// How long a login may take from sign-in redirect to callback.
pub const LOGIN_STATE_TTL: Duration = Duration::from_secs(600);

/// Sessions: removed by the server once older than the session lifetime (plus a margin).
pub fn sessions(config: &Config) -> BucketSpec {
    BucketSpec {
        name: config.nats.contract.sessions_bucket(),
        description: "Portcullis sessions (tokens sealed)",
        max_age: config.cookie.expire + Duration::from_secs(3600),
        history: 1,
    }
}

pub fn users(config: &Config) -> BucketSpec {
    BucketSpec {
        name: config.nats.contract.users_bucket(),
        description: "Portcullis users",
        max_age: Duration::ZERO,
        history: 1,
    }
}

/// The synced directory (users, groups, a pending sync request); written by the cache's sync.
pub fn directory(config: &Config) -> BucketSpec {
    BucketSpec {
        name: config.nats.contract.directory_bucket(),
        description: "Portcullis directory users and groups",
        max_age: Duration::ZERO,
        history: 1,
    }
}

/// Directory-bucket key of a user (`u` + SHA-256 of the provider's id, base64url).
pub fn directory_user_key(id: &str) -> String {
    format!("u{}", crate::crypto::sha256_b64(id.as_bytes()))
}

/// Directory-bucket key of a group (`g` + SHA-256 of the provider's id, base64url).
pub fn directory_group_key(id: &str) -> String {
    format!("g{}", crate::crypto::sha256_b64(id.as_bytes()))
}

/// Directory-bucket key of a pending `portcullis directory sync --now`.
pub const DIRECTORY_SYNC_REQUEST_KEY: &str = "sync-request";

/// Leases of singleton jobs (expiry is in the value and checked by revision).
pub fn leases(config: &Config) -> BucketSpec {
    BucketSpec {
        name: config.nats.contract.leases_bucket(),
        description: "Portcullis leases of singleton jobs",
        max_age: Duration::ZERO,
        history: 1,
    }
}

/// Single-use login states; the bucket's max age is their time to live.
pub fn logins(config: &Config) -> BucketSpec {
    BucketSpec {
        name: config.nats.contract.logins_bucket(),
        description: "Portcullis login states (single use, sealed)",
        max_age: LOGIN_STATE_TTL,
        history: 1,
    }
}

/// The users-bucket key of `user_id`. User ids come from the IdP and may hold characters a
/// KV key cannot, so the key is their SHA-256 (base64url).
pub fn user_key(user_id: &str) -> String {
    crate::crypto::sha256_b64(user_id.as_bytes())
}
