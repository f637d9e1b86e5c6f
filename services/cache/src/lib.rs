//! The cache service: the only writer of sessions and users.
//!
//! Owns: creating, reading and revoking sessions (request-reply), the sessions and users
//! buckets (OIDC tokens stay sealed with a key derived from the shared secret), and the
//! `session.created` / `session.revoked` events. Must never answer from its own memory when
//! KV says otherwise: every read goes to the bucket.

#![forbid(unsafe_code)]

mod app;
mod handlers;

pub use app::{App, BuildError};
