//! The proxy service: the only network edge.
//!
//! Owns: TLS, HTTP/1.1 and HTTP/2, route matching, forwarding to upstreams over a pooled
//! client, the internal `/.portcullis/*` endpoints on route hosts, and carrying requests
//! for the authenticate host to the authenticate service over NATS. Must never read the
//! sessions bucket, forward a request authorize did not allow, or trust identity headers
//! sent by the client.

#![forbid(unsafe_code)]

mod app;
mod balance;
mod checks;
mod cookie;
mod deadline;
mod decisions;
mod drain;
mod error;
mod forward;
mod h1;
mod handler;
mod idle;
mod internal;
pub mod path;
mod server;
mod upstream;
mod upstream_tls;
mod x509;

pub use app::{App, BuildError};

/// The body type of every request and response the proxy handles.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The comma-separated tokens of every `name` field (`Connection`, `Upgrade`), trimmed, empty
/// ones left out; a value that is not text has none.
pub(crate) fn header_tokens<'a>(
    headers: &'a http::HeaderMap,
    name: http::header::HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}
