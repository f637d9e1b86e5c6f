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
mod serve_h1;
mod server;
mod upstream;
mod upstream_tls;
mod x509;

pub use app::{App, BuildError};

/// The body type of every request and response the proxy handles.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request from a client: none (a request `serve_h1` read), or hyper's.
pub enum RequestBody {
    Empty,
    Hyper(hyper::body::Incoming),
}

impl hyper::body::Body for RequestBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Empty => std::task::Poll::Ready(None),
            RequestBody::Hyper(body) => std::pin::Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            RequestBody::Empty => hyper::body::SizeHint::with_exact(0),
            RequestBody::Hyper(body) => body.size_hint(),
        }
    }
}

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
