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
