//! The cache service: the only writer of sessions, users and the directory.
//!
//! Owns: creating, reading, listing and revoking sessions (request-reply), the sessions and
//! users buckets (OIDC tokens stay sealed with a key derived from the shared secret), the
//! session lifecycle (refresh before tokens expire, expiry) and the directory sync, each a
//! singleton job under a KV lease, and the session, user and directory events. Must never answer from its own memory when
//! KV says otherwise: every read goes to the bucket.

#![forbid(unsafe_code)]

mod app;
mod directory;
mod handlers;
mod lease;
mod lifecycle;

pub use app::{App, BuildError};
