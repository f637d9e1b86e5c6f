//! The authenticate service: the login flow with the OpenID Connect IdP.
//!
//! Owns: discovery, the authorization code flow with PKCE (S256), `state` and `nonce`; the
//! single-use login state (sealed, in the logins bucket, bound to the browser by a cookie);
//! the callback (code exchange, ID token checks, userinfo); sign-out (with RP-initiated
//! logout at the IdP) and the user page. Its HTTP endpoints are reached through the proxy as
//! HTTP carried over NATS, so it has no listener. Must never hold a session anywhere but
//! through the cache service.

#![forbid(unsafe_code)]

mod app;
mod handlers;
mod http;

pub use app::{App, BuildError};
