//! The one place that turns outcomes into error responses: HTML for browsers, JSON for API
//! clients, never with internals, tokens or cookies.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_runtime::pages;

use crate::Body;

/// Whether the client is a browser that should see pages and redirects.
pub fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.contains("text/html")
        && !headers
            .get("x-requested-with")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"xmlhttprequest"))
}

pub fn body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    body(Bytes::new())
}

fn response(status: StatusCode, content_type: &str, content: String) -> Response<Body> {
    let mut r = Response::new(body(content));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_str(content_type).unwrap_or(http::HeaderValue::from_static("text/plain")),
    );
    r.headers_mut().insert(CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

/// An error response. `title` is a short phrase, `message` a sentence for people.
pub fn error(
    status: StatusCode,
    title: &str,
    message: &str,
    reasons: &[String],
    html: bool,
) -> Response<Body> {
    if html {
        response(
            status,
            "text/html; charset=utf-8",
            pages::error_page(status.as_u16(), title, message, reasons),
        )
    } else {
        response(status, "application/json", pages::error_json(status.as_u16(), title, message, reasons))
    }
}

pub fn bad_request(message: &str, html: bool) -> Response<Body> {
    error(StatusCode::BAD_REQUEST, "Bad request", message, &[], html)
}

pub fn not_found(html: bool) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "Not found",
        "No route serves this address.",
        &["route-not-found".into()],
        html,
    )
}

/// Authorization could not be decided: fail closed.
pub fn unavailable(html: bool) -> Response<Body> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service unavailable",
        "Access cannot be checked right now. Try again shortly.",
        &[],
        html,
    )
}

pub fn bad_gateway(html: bool) -> Response<Body> {
    error(
        StatusCode::BAD_GATEWAY,
        "Bad gateway",
        "The application behind this address did not answer.",
        &[],
        html,
    )
}

pub fn gateway_timeout(html: bool) -> Response<Body> {
    error(
        StatusCode::GATEWAY_TIMEOUT,
        "Gateway timeout",
        "The application behind this address did not answer in time.",
        &[],
        html,
    )
}

pub fn redirect(location: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = http::HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r.headers_mut().insert(CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

pub fn text(status: StatusCode, content_type: &str, content: String) -> Response<Body> {
    response(status, content_type, content)
}
