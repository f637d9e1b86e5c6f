//! The authorize service: decides every request.
//!
//! Owns: policy evaluation (PPL, compiled once per configuration), the identity JWT it signs
//! for upstreams, and an in-memory replica of sessions and users kept current by watching
//! the KV buckets. Must never call the IdP or write state, and never reads KV on the path of
//! a request whose session it already knows.

#![forbid(unsafe_code)]

mod app;
pub mod check;
pub mod jwt;
pub mod replica;

pub use app::{App, BuildError};
