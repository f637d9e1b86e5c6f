//! The endpoints the proxy serves itself, and HTTP carried to the authenticate service.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{HeaderName, HeaderValue, SET_COOKIE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use portcullis_runtime::crypto::sha256_b64;
use portcullis_runtime::flow::{CallbackHandle, params};
use portcullis_runtime::now_unix;
use portcullis_schemas::messages::{Header, HttpReply, HttpRequest};
use tracing::warn;

use crate::handler::{Proxy, RequestFacts};
use crate::{Body, cookie, error};

/// Largest request body carried to the authenticate service.
const MAX_AUTHENTICATE_BODY: usize = 64 * 1024;
/// Deadline for authenticate: a callback calls the IdP twice.
const AUTHENTICATE_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /.portcullis/callback?handle=..`: set the session cookie, go to the original URL.
pub fn callback(
    proxy: &Proxy,
    facts: &RequestFacts<'_>,
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> Response<Body> {
    let handle = query
        .map(|q| url::form_urlencoded::parse(q.as_bytes()))
        .and_then(|mut pairs| pairs.find(|(k, _)| k == params::HANDLE).map(|(_, v)| v.into_owned()));
    let Some(handle) = handle else {
        return error::bad_request("The sign-in callback is missing its handle.", facts.html);
    };
    let now = now_unix();
    let presented = cookie::binding(headers, &proxy.binding_cookie).map(|b| sha256_b64(b.as_bytes()));
    match CallbackHandle::open(&proxy.handle_sealer, &handle, facts.host, now) {
        Ok(h) if presented.as_deref() != Some(h.binding.as_str()) => {
            warn!("sign-in callback from a browser that did not start the login");
            error::error(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "This sign-in was started in another browser, or was already completed. Start again.",
                &[],
                facts.html,
            )
        }
        Ok(h) => {
            let mut r = error::redirect(&h.redirect_uri);
            // The binding is single-use: a second visit of the same link finds no cookie.
            if let Ok(v) =
                HeaderValue::from_str(&cookie::clear_binding(&proxy.binding_cookie, facts.conn.https))
            {
                r.headers_mut().append(SET_COOKIE, v);
            }
            let set = cookie::set(
                &proxy.config.cookie,
                &proxy.cookie_sealer,
                &h.session_id,
                h.session_expires_at - now,
                facts.conn.https,
            );
            if let Ok(v) = HeaderValue::from_str(&set) {
                r.headers_mut().append(SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            warn!(error = %e, "sign-in callback refused");
            error::error(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "This sign-in link is invalid or expired. Start again.",
                &[],
                facts.html,
            )
        }
    }
}

/// Carry `req` to the authenticate service over NATS and relay its answer. `session_id` is
/// set only for the route-host endpoints that act on the caller's session.
pub async fn to_authenticate(
    proxy: &Proxy,
    req: Request<crate::RequestBody>,
    facts: &RequestFacts<'_>,
    session_id: Option<String>,
    clear_cookie: bool,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_AUTHENTICATE_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload too large",
                "The request body is too large.",
                &[],
                facts.html,
            );
        }
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| {
            matches!(name.as_str(), "accept" | "cookie" | "content-type" | "user-agent" | "accept-language")
        })
        .filter_map(|(name, value)| value.to_str().ok().map(|v| Header::new(name.as_str(), v)))
        .collect();
    let message = HttpRequest {
        method: parts.method.as_str().to_owned(),
        scheme: if facts.conn.https { "https" } else { "http" }.to_owned(),
        host: facts.host_header.to_owned(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into()),
        headers,
        body: STANDARD.encode(&body),
        client_ip: facts.conn.client_ip.clone(),
        session_id,
    };
    let subject = proxy.bus.contract().authenticate_http();
    let reply: HttpReply = match proxy.bus.request_within(subject, &message, AUTHENTICATE_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "authenticate service unavailable");
            return error::unavailable(facts.html);
        }
    };
    let mut response = Response::new(error::body(STANDARD.decode(&reply.body).unwrap_or_default()));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for h in &reply.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_str(&h.value)) {
            response.headers_mut().append(n, v);
        }
    }
    // Only a completed sign-out (authenticate redirects) removes the cookie: after a failed
    // revoke the session still exists, and the person must be able to try again.
    if clear_cookie
        && reply.status == 302
        && let Ok(v) = HeaderValue::from_str(&cookie::clear(&proxy.config.cookie, facts.conn.https))
    {
        response.headers_mut().append(SET_COOKIE, v);
    }
    response
}
