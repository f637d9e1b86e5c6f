//! Forwarding an allowed request to its upstream, and the header hygiene around it.

use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use portcullis_runtime::config::{HostRewrite, Route};
use tracing::warn;

use crate::{Body, error};

/// The pooled upstream client (http and https).
pub type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// How many names [`HOP_BY_HOP`] has.
const HOP_COUNT: usize = 8;

/// Headers naming the client's address that the client must not choose: those nginx's
/// real_ip module, CDNs and common frameworks read (chi's RealIP, Rails' RemoteIp, node's
/// request-ip). No proxy in front is trusted to set them.
const CLIENT_IP_HEADERS: [&str; 9] = [
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-forwarded",
    "forwarded-for",
];

/// Identity header prefixes only Portcullis may set.
const IDENTITY_PREFIXES: [&str; 2] = ["x-portcullis-", "x-pomerium-"];

/// A `static`, not a `const`: a `const` array of names is built and dropped at every use,
/// which was once per header of every request.
static HOP_BY_HOP: [HeaderName; HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// A pooled client for http and https upstreams with `tls` (the system roots when `None`).
pub fn client(
    tls: Option<&portcullis_runtime::config::UpstreamTls>,
    roots: &rustls::RootCertStore,
) -> Result<UpstreamClient, String> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(crate::upstream_tls::client_config(tls, roots)?)
        .https_or_http();
    let builder = match tls.and_then(|t| t.server_name.clone()) {
        Some(name) => {
            let name =
                rustls::pki_types::ServerName::try_from(name).map_err(|e| format!("tls_server_name: {e}"))?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let connector = builder.enable_http1().wrap_connector(http);
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(connector))
}

/// What the proxy knows about the client side of a request.
pub struct Origin<'a> {
    /// The client's address as `X-Forwarded-For` carries it.
    pub forwarded_for: Option<&'a HeaderValue>,
    /// The request's id (`X-Request-Id`).
    pub request_id: Option<&'a HeaderValue>,
    pub https: bool,
    /// The Host the client asked for (with port, as sent).
    pub host: &'a str,
    pub cookie_name: &'a str,
    /// The connection's memory of its `Cookie` header.
    pub cookies: &'a crate::cookie::Opened,
}

/// Forward `req` (path already normalised to `path`) to `route`'s upstream.
/// What authorize granted: headers to add, and token values for header templates.
pub struct Granted<'a> {
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub templates: &'a [(String, String)],
}

/// The upstream request's header fields, in order. A request has few enough of them that a
/// list searched in line costs less than a hash map; plain-HTTP upstreams get them written
/// out as they are ([`crate::h1`]), others as a map for hyper.
#[derive(Debug, Default)]
pub struct Fields(Vec<(HeaderName, HeaderValue)>);

impl Fields {
    fn with_capacity(n: usize) -> Fields {
        Fields(Vec::with_capacity(n))
    }

    pub fn append(&mut self, name: HeaderName, value: HeaderValue) {
        self.0.push((name, value));
    }

    /// Replace every field called `name` with this one.
    pub fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value));
    }

    /// Drop every field called `name` (any case).
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.as_str().eq_ignore_ascii_case(name));
    }

    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.0.iter().find(|(n, _)| n.as_str().eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    pub fn as_slice(&self) -> &[(HeaderName, HeaderValue)] {
        &self.0
    }

    pub fn into_map(self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.0.len());
        for (name, value) in self.0 {
            map.append(name, value);
        }
        map
    }
}

/// What forwarding needs of a route that stays the same from request to request, worked out
/// when a serving thread takes up a configuration: header names and values parsed, upstream
/// addresses formatted.
pub struct Prepared {
    /// `set_response_headers` (Pomerium's defaults included), parsed; a value that is not a
    /// valid header value is left out, as it always was.
    response_headers: Vec<(HeaderName, HeaderValue)>,
    /// The route sets its own `Strict-Transport-Security`.
    own_hsts: bool,
    /// `set_request_headers`: fixed values parsed, values with templates kept as text.
    request_headers: Vec<(HeaderName, SetValue)>,
    /// One per `to` entry, in order.
    upstreams: Vec<PreparedUpstream>,
}

enum SetValue {
    Fixed(HeaderValue),
    Template(String),
}

struct PreparedUpstream {
    /// `host[:port]` as the URL has it (no port when it is the scheme's default).
    authority: String,
    /// `authority` as a `Host` value.
    host: Option<HeaderValue>,
    /// `host:port` to connect to, for plain-HTTP upstreams.
    address: std::sync::Arc<str>,
    /// The URL's path without its trailing `/`.
    base: String,
}

impl Prepared {
    pub fn new(route: &Route) -> Prepared {
        let parse = |name: &str, value: &str| {
            Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_str(value).ok()?))
        };
        let upstreams = route
            .to
            .iter()
            .map(|url| {
                let host = url.host_str().unwrap_or_default();
                let authority = match url.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_owned(),
                };
                PreparedUpstream {
                    host: HeaderValue::from_str(&authority).ok(),
                    address: format!("{host}:{}", url.port_or_known_default().unwrap_or(80)).into(),
                    authority,
                    base: url.path().trim_end_matches('/').to_owned(),
                }
            })
            .collect();
        Prepared {
            response_headers: route.set_response_headers.iter().filter_map(|(n, v)| parse(n, v)).collect(),
            own_hsts: route.set_response_headers.iter().any(|(n, _)| n == "strict-transport-security"),
            request_headers: route
                .set_request_headers
                .iter()
                .filter_map(|(name, value)| {
                    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
                    let value = if value.contains("${") {
                        SetValue::Template(value.clone())
                    } else {
                        SetValue::Fixed(HeaderValue::from_str(value).ok()?)
                    };
                    Some((name, value))
                })
                .collect(),
            upstreams,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn forward(
    client: &UpstreamClient,
    pool: &std::sync::Arc<crate::upstream::Pool>,
    deadlines: &crate::deadline::Deadlines,
    route: &Route,
    prepared: &Prepared,
    pick: usize,
    req: Request<crate::RequestBody>,
    path: &str,
    origin: &Origin<'_>,
    granted: &Granted<'_>,
    html: bool,
) -> Response<Body> {
    let mut req = req;
    let websocket = route.allow_websockets && is_websocket_upgrade(req.headers());
    let client_upgrade =
        if websocket { req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() } else { None };
    let (parts, body) = req.into_parts();
    let (Some(upstream), Some(prepared_upstream)) = (route.to.get(pick), prepared.upstreams.get(pick)) else {
        return error::bad_gateway(html);
    };
    let path = route.upstream_path(path);
    let base = prepared_upstream.base.as_str();
    let query = parts.uri.query();
    let mut path_and_query =
        String::with_capacity(base.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    path_and_query.push_str(base);
    path_and_query.push_str(&path);
    if let Some(q) = query {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    let authority = prepared_upstream.authority.as_str();
    // Plain-HTTP upstreams go over this thread's own connections (origin-form target);
    // TLS upstreams and websockets over hyper-util's client (absolute URI).
    let lean = !websocket && upstream.scheme() == "http" && route.upstream_tls.is_none();
    let uri = if lean {
        Uri::try_from(path_and_query).map_err(http::Error::from)
    } else {
        Uri::builder().scheme(upstream.scheme()).authority(authority).path_and_query(path_and_query).build()
    };
    let uri = match uri {
        Ok(u) => u,
        Err(e) => {
            warn!(error = %e, "cannot build the upstream URI");
            return error::bad_request("The request target is invalid.", html);
        }
    };
    let mut headers = request_headers(&parts.headers, origin, granted.headers);
    route_request_headers(&mut headers, route, prepared, granted);
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    let host = match &route.host {
        HostRewrite::Upstream => prepared_upstream.host.clone(),
        HostRewrite::Preserve => HeaderValue::from_str(origin.host).ok(),
        HostRewrite::Fixed(h) => HeaderValue::from_str(h).ok(),
        HostRewrite::FromHeader(name) => parts.headers.get(name.as_str()).cloned(),
    };
    if let Some(v) = host.or_else(|| prepared_upstream.host.clone()) {
        headers.insert(header::HOST, v);
    }
    let address = &prepared_upstream.address;
    // A plain-HTTP request without a body: its head is written straight from the fields.
    let bodiless = lean && crate::upstream::goes_over_h1(&parts.method, &body);
    let method = parts.method;
    let sent = std::pin::pin!(async move {
        if bodiless {
            let head = crate::h1::Head { method: &method, target: &uri, fields: headers.as_slice() };
            return pool.send_head(address, &head).await.map(Sent::Body);
        }
        let mut upstream_req = Request::new(body.map_err(Into::into).boxed());
        *upstream_req.method_mut() = method;
        *upstream_req.uri_mut() = uri;
        *upstream_req.version_mut() = Version::HTTP_11;
        *upstream_req.headers_mut() = headers.into_map();
        if lean {
            return pool.send(address, upstream_req).await.map(Sent::Body);
        }
        client.request(upstream_req).await.map(Sent::Incoming).map_err(Into::into)
    });
    let resp = match deadlines.bound(route.timeout, sent).await {
        Ok(Ok(Sent::Incoming(resp))) => {
            if websocket && resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                return switch_protocols(resp, client_upgrade, route);
            }
            resp.map(|b| b.map_err(Into::into).boxed())
        }
        Ok(Ok(Sent::Body(resp))) => resp,
        Ok(Err(e)) => {
            warn!(error = %e, route = route.index, "upstream request failed");
            return error::bad_gateway(html);
        }
        Err(_) => {
            warn!(route = route.index, "upstream timed out");
            return error::gateway_timeout(html);
        }
    };
    let (mut parts, body) = resp.into_parts();
    // A 101 we did not ask for cannot be relayed.
    if parts.status == http::StatusCode::SWITCHING_PROTOCOLS {
        drop(body);
        return error::bad_gateway(html);
    }
    strip_hop_by_hop(&mut parts.headers);
    set_response_headers(&mut parts.headers, prepared, origin.https);
    match route.idle_timeout {
        Some(idle) => {
            Response::from_parts(parts, crate::idle::IdleBody::new(body, idle, route.index).boxed())
        }
        None => Response::from_parts(parts, body),
    }
}

/// An upstream's answer: from hyper-util's client (may be a websocket switch) or from the
/// thread's own connections.
enum Sent {
    Incoming(Response<hyper::body::Incoming>),
    Body(Response<Body>),
}

/// `Connection: upgrade` with `Upgrade: websocket`.
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        crate::header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// Relay the upstream's 101 and then the bytes both ways until either side closes.
fn switch_protocols(
    mut upstream: Response<hyper::body::Incoming>,
    client: Option<hyper::upgrade::OnUpgrade>,
    route: &Route,
) -> Response<Body> {
    let (idle, route) = (route.idle_timeout, route.index);
    let upstream_upgrade = hyper::upgrade::on(&mut upstream);
    let (parts, _) = upstream.into_parts();
    tokio::spawn(async move {
        let Some(client) = client else { return };
        match tokio::try_join!(client, upstream_upgrade) {
            Ok((client, upstream)) => {
                let client = hyper_util::rt::TokioIo::new(client);
                let upstream = hyper_util::rt::TokioIo::new(upstream);
                if let Err(error) = crate::idle::copy_bidirectional(client, upstream, idle, route).await {
                    tracing::debug!(%error, route, "websocket closed");
                }
            }
            Err(error) => warn!(%error, route, "websocket upgrade failed"),
        }
    });
    Response::from_parts(parts, error::empty())
}

/// The route's `remove_request_headers` and `set_request_headers` (with `${pomerium.jwt}`
/// filled from the identity JWT authorize granted). The assertion header itself reaches the
/// upstream only when the route passes identity headers.
fn route_request_headers(headers: &mut Fields, route: &Route, prepared: &Prepared, granted: &Granted<'_>) {
    let templates = granted.templates;
    let granted = granted.headers;
    for name in &route.remove_request_headers {
        headers.remove(name);
    }
    // Claim headers come only from authorize: drop whatever the client sent under those
    // names, then put back what was granted.
    for (name, _) in &route.jwt_claims_headers {
        headers.remove(name);
    }
    for (name, value) in granted.iter().filter(|(name, _)| {
        route.jwt_claims_headers.iter().any(|(n, _)| name.as_str().eq_ignore_ascii_case(n))
    }) {
        headers.append(name.clone(), value.clone());
    }
    let jwt = granted
        .iter()
        .find(|(name, _)| name.as_str().eq_ignore_ascii_case(JWT_ASSERTION))
        .and_then(|(_, value)| value.to_str().ok());
    if !route.pass_identity_headers {
        headers.remove(JWT_ASSERTION);
    }
    for (name, value) in &prepared.request_headers {
        let template = match value {
            SetValue::Fixed(v) => {
                headers.insert(name.clone(), v.clone());
                continue;
            }
            SetValue::Template(t) => t,
        };
        let token =
            |what: &str| templates.iter().find(|(n, _)| n == what).map(|(_, v)| v.as_str()).unwrap_or("");
        let mut v = template.clone();
        for prefix in ["pomerium", "portcullis"] {
            v = v
                .replace(&format!("${{{prefix}.jwt}}"), jwt.unwrap_or(""))
                .replace(&format!("${{{prefix}.id_token}}"), token("id_token"))
                .replace(&format!("${{{prefix}.access_token}}"), token("access_token"))
                .replace(&format!("${{{prefix}.client_cert_fingerprint}}"), token("client_cert_fingerprint"));
        }
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(name.clone(), v);
        }
    }
}

/// The route's response headers (Pomerium's security defaults included).
pub fn set_response_headers(headers: &mut HeaderMap, prepared: &Prepared, https: bool) {
    // Pomerium's HSTS default, over TLS only (a browser ignores it on plain HTTP anyway).
    if https && !prepared.own_hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    for (name, value) in &prepared.response_headers {
        headers.insert(name.clone(), value.clone());
    }
}

/// Pomerium's default `Strict-Transport-Security`.
const HSTS: &str = "max-age=31536000; includeSubDomains; preload";

/// The header carrying the identity JWT.
const JWT_ASSERTION: &str = "x-portcullis-jwt-assertion";

/// The headers the upstream receives: the client's, minus hop-by-hop, identity and
/// forwarding headers and our cookie; plus `X-Forwarded-*` and what authorize granted.
/// One pass, no copy of what is dropped.
pub fn request_headers(
    incoming: &HeaderMap,
    origin: &Origin<'_>,
    granted: &[(HeaderName, HeaderValue)],
) -> Fields {
    let listed = connection_listed(incoming);
    let mut headers = Fields::with_capacity(incoming.len() + 6 + granted.len());
    for (name, value) in incoming {
        let n = name.as_str();
        let dropped = HOP_BY_HOP.contains(name)
            || listed.iter().any(|t| t.eq_ignore_ascii_case(n))
            || IDENTITY_PREFIXES.iter().any(|p| n.starts_with(p))
            || n.starts_with("x-forwarded-")
            || n == "forwarded"
            // Client-IP headers apps trust (chi's RealIP, nginx's real_ip module): only the
            // peer's address, set below, goes.
            || CLIENT_IP_HEADERS.contains(&n)
            || *name == header::HOST
            // The request id replaces any the client sent.
            || (origin.request_id.is_some() && n == "x-request-id");
        if dropped {
            continue;
        }
        if *name == header::COOKIE {
            if let Some(kept) = origin.cookies.without(value, origin.cookie_name) {
                headers.append(header::COOKIE, kept);
            }
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    let proto = HeaderValue::from_static(if origin.https { "https" } else { "http" });
    // None of these is left from the client's (see `dropped`), so they are appended.
    if let Some(v) = origin.forwarded_for {
        headers.append(HeaderName::from_static("x-forwarded-for"), v.clone());
        headers.append(HeaderName::from_static("x-real-ip"), v.clone());
    }
    headers.append(HeaderName::from_static("x-forwarded-proto"), proto);
    if let Some(v) = origin.request_id {
        headers.append(HeaderName::from_static("x-request-id"), v.clone());
    }
    if let Ok(v) = HeaderValue::from_str(origin.host) {
        headers.append(HeaderName::from_static("x-forwarded-host"), v);
    }
    for (name, value) in granted {
        headers.append(name.clone(), value.clone());
    }
    headers
}

/// Header names listed in `Connection` (hop-by-hop by declaration), as sent; checked by
/// comparison rather than parsed into names, which would allocate for each.
fn connection_listed(headers: &HeaderMap) -> Vec<&str> {
    crate::header_tokens(headers, header::CONNECTION).collect()
}

/// Remove hop-by-hop headers, including those named by `Connection`. One pass over the
/// names finds which are there (an answer usually has one, `Connection`, or none), so only
/// those are looked up to be removed.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = [false; HOP_COUNT];
    for name in headers.keys() {
        if let Some(at) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[at] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    // Names `Connection` lists (`keep-alive`, the usual one, is on the list already). A token
    // that is not a valid header name names nothing.
    let listed: Vec<HeaderName> = crate::header_tokens(headers, header::CONNECTION)
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, there)| *there) {
        headers.remove(name);
    }
    for name in &listed {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header map of these (name, value) pairs, in order.
    fn map(pairs: &[(&str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_static(v));
        }
        headers
    }

    #[test]
    fn identity_and_hop_by_hop_headers_never_pass() {
        let incoming = map(&[
            ("x-portcullis-jwt-assertion", "forged"),
            ("X-Pomerium-Jwt-Assertion", "forged"),
            ("x-forwarded-for", "1.2.3.4"),
            ("X-Real-IP", "1.2.3.4"),
            ("true-client-ip", "1.2.3.4"),
            ("x-client-ip", "1.2.3.4"),
            ("CF-Connecting-IP", "1.2.3.4"),
            ("x-forwarded", "for=1.2.3.4"),
            ("connection", "close, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("cookie", "_pomerium=sealed; theme=dark"),
            ("accept", "text/html"),
        ]);
        let peer = HeaderValue::from_static("10.0.0.9");
        let origin = Origin {
            forwarded_for: Some(&peer),
            request_id: None,
            https: true,
            host: "app.example.com",
            cookie_name: "_pomerium",
            cookies: &crate::cookie::Opened::default(),
        };
        let granted =
            [(HeaderName::from_static("x-portcullis-jwt-assertion"), HeaderValue::from_static("real"))];
        let out = request_headers(&incoming, &origin, &granted).into_map();
        assert_eq!(out.get_all("x-portcullis-jwt-assertion").iter().collect::<Vec<_>>(), ["real"]);
        assert!(out.get("x-pomerium-jwt-assertion").is_none());
        assert!(out.get("connection").is_none() && out.get("x-secret-hop").is_none());
        assert_eq!(out.get("x-forwarded-for").map(|v| v.as_bytes()), Some(&b"10.0.0.9"[..]));
        assert_eq!(out.get_all("x-real-ip").iter().collect::<Vec<_>>(), ["10.0.0.9"]);
        assert!(out.get("true-client-ip").is_none() && out.get("x-client-ip").is_none());
        assert!(out.get("cf-connecting-ip").is_none() && out.get("x-forwarded").is_none());
        assert_eq!(out.get("x-forwarded-proto").map(|v| v.as_bytes()), Some(&b"https"[..]));
        assert_eq!(out.get("cookie").map(|v| v.as_bytes()), Some(&b"theme=dark"[..]));
        assert_eq!(out.get("accept").map(|v| v.as_bytes()), Some(&b"text/html"[..]));

        // A listed name in any case is dropped; the listing cannot name a header outside
        // what it lists.
        let mut upper = HeaderMap::new();
        upper.append(header::CONNECTION, HeaderValue::from_static("X-Secret-Hop"));
        upper.append(HeaderName::from_static("x-secret-hop"), HeaderValue::from_static("1"));
        upper.append(header::ACCEPT, HeaderValue::from_static("*/*"));
        let out = request_headers(&upper, &origin, &[]).into_map();
        assert!(out.get("x-secret-hop").is_none() && out.get("accept").is_some());

        let mut only_ours = HeaderMap::new();
        only_ours.append(header::COOKIE, HeaderValue::from_static("_pomerium=sealed"));
        assert!(request_headers(&only_ours, &origin, &[]).get("cookie").is_none());
        // Inserting replaces every earlier field of that name; removing ignores case.
        let mut fields = request_headers(&incoming, &origin, &granted);
        fields.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        fields.remove("X-PORTCULLIS-JWT-ASSERTION");
        let map = fields.into_map();
        assert_eq!(map.get_all(header::ACCEPT).iter().collect::<Vec<_>>(), ["*/*"]);
        assert!(map.get("x-portcullis-jwt-assertion").is_none());
    }

    #[test]
    fn hop_by_hop_response_headers_are_stripped_with_those_connection_lists() {
        let mut headers = map(&[
            ("connection", "Keep-Alive, X-Upstream-Hop, not a name"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("x-upstream-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
        ]);
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type"]);
    }
}
