//! One request through the proxy: normalise, match, ask authorize, forward or refuse.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HOST;
use http::{Method, Request, Response, StatusCode};
use portcullis_runtime::config::{Config, Redirect, Route, RouteAction};
use portcullis_runtime::crypto::{Purpose, Sealer, Signer, random_token, sha256_b64};
use portcullis_runtime::flow::{self, paths};
use portcullis_runtime::{Bus, BusError, now_unix};
use portcullis_schemas::messages::{CheckReply, CheckRequest, ErrorCode};
use tracing::{debug, warn};

use portcullis_runtime::reload::LiveConfig;

use crate::balance::Balancer;
use crate::decisions::{Decision, DecisionCache};
use crate::forward::{self, Origin, UpstreamClient};
use crate::{Body, cookie, error, internal, path};

/// Bytes of randomness in a login-binding cookie.
const BINDING_BYTES: usize = 32;

/// Everything a request needs; shared by all connections.
pub struct Proxy {
    pub config: Arc<Config>,
    pub bus: Bus,
    pub client: UpstreamClient,
    /// This thread's connections to plain-HTTP upstreams.
    pool: Arc<crate::upstream::Pool>,
    /// This thread's route timeouts.
    deadlines: crate::deadline::Deadlines,
    pub cookie_sealer: Sealer,
    pub handle_sealer: Sealer,
    pub sign_in_signer: Signer,
    /// Opens token values for header templates (sealed by authorize).
    template_sealer: Sealer,
    /// Name of the route-host cookie binding a login to its browser.
    pub binding_cookie: String,
    pub decisions: Arc<DecisionCache>,
    /// This thread's way to authorize (checks in flight together share messages).
    checks: Arc<crate::checks::Checks>,
    pub balancer: Arc<Balancer>,
    /// The current routes (reloaded when the file changes).
    pub live: LiveConfig,
    /// This thread's hold on the current routes: the shared configuration behind an `Arc` of
    /// the thread's own, so that taking it per request bumps no counter another core also
    /// bumps; renewed when the file was reloaded.
    current: std::sync::Mutex<(LiveConfig, Arc<Held>)>,
    /// This thread's shard of the decision cache.
    shard: usize,
    /// Clients of routes with their own upstream TLS settings, by route id (this thread's).
    route_clients: std::sync::Mutex<std::collections::HashMap<String, UpstreamClient>>,
    roots: rustls::RootCertStore,
    jwks: Bytes,
    authenticate_host: String,
}

/// The shared configuration, held by one serving thread (see `Proxy::current`), with what
/// forwarding needs of each route worked out once.
pub struct Held {
    config: Arc<Config>,
    /// By position in `config.routes`.
    prepared: Vec<forward::Prepared>,
}

impl Held {
    fn new(config: Arc<Config>) -> Held {
        let prepared = config.routes.iter().map(forward::Prepared::new).collect();
        Held { config, prepared }
    }
}

impl std::ops::Deref for Held {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

/// What the requests of one client connection share, worked out once when it is accepted.
pub struct Connection {
    pub https: bool,
    /// The client certificate the TLS handshake verified.
    pub client_certificate: Option<Arc<portcullis_schemas::messages::ClientCertificate>>,
    /// The peer's address as text (checks carry it).
    pub client_ip: String,
    /// The peer's address as `X-Forwarded-For` carries it.
    forwarded_for: Option<http::HeaderValue>,
    /// What the connection's last `Cookie` header gave.
    opened: cookie::Opened,
}

impl Connection {
    pub fn new(
        peer: SocketAddr,
        https: bool,
        client_certificate: Option<Arc<portcullis_schemas::messages::ClientCertificate>>,
    ) -> Connection {
        let client_ip = peer.ip().to_string();
        Connection {
            https,
            client_certificate,
            forwarded_for: http::HeaderValue::from_str(&client_ip).ok(),
            client_ip,
            opened: cookie::Opened::default(),
        }
    }
}

/// What the proxy has worked out about a request before deciding.
pub struct RequestFacts<'a> {
    /// The client connection (peer, TLS, client certificate) the request came on.
    pub conn: &'a Connection,
    /// Host without port, lower case.
    pub host: &'a str,
    /// Host as the client sent it (with port).
    pub host_header: &'a str,
    pub html: bool,
    /// This request's id as a header value (`X-Request-Id` to the upstream).
    pub request_id: Option<&'a http::HeaderValue>,
}

impl Proxy {
    /// A proxy with its own upstream `client` (one per serving thread) and the shared
    /// decision cache.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Arc<Config>,
        bus: Bus,
        client: UpstreamClient,
        decisions: Arc<DecisionCache>,
        shard: usize,
        balancer: Arc<Balancer>,
        live: LiveConfig,
        roots: rustls::RootCertStore,
    ) -> Proxy {
        let jwks = Bytes::from(config.signing_key.jwks().to_string());
        let authenticate_host = config.authenticate_url.host_str().unwrap_or_default().to_ascii_lowercase();
        Proxy {
            cookie_sealer: Sealer::new(&config.cookie_secret, Purpose::SessionCookie),
            handle_sealer: Sealer::new(&config.shared_secret, Purpose::CallbackHandle),
            sign_in_signer: Signer::new(&config.shared_secret, Purpose::SignInUrl),
            template_sealer: Sealer::new(&config.shared_secret, Purpose::Tokens),
            binding_cookie: flow::binding_cookie_name(&config.cookie.name),
            decisions,
            checks: crate::checks::Checks::new(bus.clone()),
            balancer,
            current: {
                let mut rx = live.clone();
                let now = Arc::new(Held::new(rx.borrow_and_update().clone()));
                std::sync::Mutex::new((rx, now))
            },
            shard,
            live,
            route_clients: std::sync::Mutex::new(std::collections::HashMap::new()),
            roots,
            config,
            bus,
            client,
            pool: crate::upstream::Pool::new(),
            deadlines: crate::deadline::Deadlines::default(),
            jwks,
            authenticate_host,
        }
    }

    pub async fn handle(
        &self,
        req: Request<crate::RequestBody>,
        conn: &Connection,
        request_id: Option<&http::HeaderValue>,
    ) -> Response<Body> {
        let html = error::wants_html(req.headers());
        // The authority (or Host) and the path are read from copies: they share the request's
        // bytes, so copying them is a count, not an allocation (but for a scheme other than
        // http and https, which is boxed), and they outlive `req`.
        let uri = req.uri().clone();
        let host_value = if uri.authority().is_none() { req.headers().get(HOST).cloned() } else { None };
        let host_header =
            match uri.authority().map(|a| a.as_str()).or_else(|| host_value.as_ref()?.to_str().ok()) {
                Some(h) if !h.is_empty() => h,
                _ => return error::bad_request("The request has no Host.", html),
            };
        // Pomerium's default: a header name with `_` may be turned into a trusted `-` name by
        // some upstream stack (X_Forwarded_User → X-Forwarded-User), so refuse it outright.
        if req.headers().keys().any(|k| k.as_str().as_bytes().contains(&b'_')) {
            return error::bad_request("Header names with underscores are not accepted.", html);
        }
        let (host, port) = split_host(host_header);
        let path = match path::normalize(uri.path()) {
            Ok(p) => p,
            Err(e) => return error::bad_request(&e.to_string(), html),
        };
        let facts = RequestFacts { conn, host: &host, host_header, html, request_id };
        if path == paths::PING {
            return error::text(StatusCode::OK, "text/plain", "OK\n".into());
        }
        if host == self.authenticate_host {
            return internal::to_authenticate(self, req, &facts, None, false).await;
        }
        if path.starts_with("/.portcullis/") || path == paths::JWKS {
            return self.internal(req, &facts, &path).await;
        }
        // The routes of this request: a reload mid-request does not change them.
        let live = self.current();
        let Some(at) = live.find_route_position(&host, port, &path) else {
            return error::not_found(html);
        };
        self.authorize_and_forward(req, &live.routes[at], &live.prepared[at], &path, &facts).await
    }

    /// The current configuration (see `current`).
    fn current(&self) -> Arc<Held> {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (rx, now) = &mut *current;
        if rx.has_changed().unwrap_or(false) {
            *now = Arc::new(Held::new(rx.borrow_and_update().clone()));
        }
        now.clone()
    }

    async fn internal(
        &self,
        req: Request<crate::RequestBody>,
        facts: &RequestFacts<'_>,
        path: &str,
    ) -> Response<Body> {
        if !self.live.borrow().routes.iter().any(|r| r.from.matches_host(facts.host)) {
            return error::not_found(facts.html);
        }
        let session = || cookie::session_id(req.headers(), &self.cookie_sealer, &self.config.cookie.name);
        match (req.method(), path) {
            (&Method::GET, paths::JWKS) => {
                let mut r = error::text(
                    StatusCode::OK,
                    "application/json",
                    String::from_utf8_lossy(&self.jwks).into_owned(),
                );
                r.headers_mut()
                    .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("max-age=300"));
                r
            }
            (&Method::GET, paths::CALLBACK) => {
                internal::callback(self, facts, req.headers(), req.uri().query())
            }
            (&Method::GET, paths::USER) => match session() {
                Some(sid) => internal::to_authenticate(self, req, facts, Some(sid), false).await,
                None if facts.html => self.sign_in_redirect(&req, facts),
                None => {
                    error::error(StatusCode::UNAUTHORIZED, "Unauthenticated", "Sign in first.", &[], false)
                }
            },
            (&Method::GET, paths::SIGN_OUT) => internal::to_authenticate(self, req, facts, None, false).await,
            (&Method::POST, paths::SIGN_OUT) => {
                let sid = session();
                internal::to_authenticate(self, req, facts, sid, true).await
            }
            _ => error::not_found(facts.html),
        }
    }

    /// Token values for header templates, sealed by authorize for this route.
    fn open_templates(
        &self,
        sealed: &[portcullis_schemas::messages::Header],
        route_id: &str,
    ) -> Vec<(String, String)> {
        sealed
            .iter()
            .filter_map(|h| {
                let value = self.template_sealer.open(&h.value, route_id.as_bytes()).ok()?;
                Some((h.name.clone(), String::from_utf8(value).ok()?))
            })
            .collect()
    }

    /// This thread's connections to plain-HTTP upstreams.
    pub fn upstream_pool(&self) -> Arc<crate::upstream::Pool> {
        self.pool.clone()
    }

    /// The client for `route`: the thread's own (borrowed: cloning a client bumps several
    /// reference counts), or one made for its TLS settings.
    fn client_for(&self, route: &Route) -> Option<Cow<'_, UpstreamClient>> {
        let Some(tls) = &route.upstream_tls else { return Some(Cow::Borrowed(&self.client)) };
        let mut clients = self.route_clients.lock().ok()?;
        if let Some(c) = clients.get(&route.id) {
            return Some(Cow::Owned(c.clone()));
        }
        match forward::client(Some(tls), &self.roots) {
            Ok(c) => {
                clients.insert(route.id.clone(), c.clone());
                Some(Cow::Owned(c))
            }
            Err(error) => {
                warn!(%error, route = route.index, "cannot set up TLS to the upstream");
                None
            }
        }
    }

    /// 302 to a signed sign-in URL, setting (or reusing) the route host's binding cookie.
    pub fn sign_in_redirect(
        &self,
        req: &Request<crate::RequestBody>,
        facts: &RequestFacts<'_>,
    ) -> Response<Body> {
        let original = format!(
            "{}://{}{}",
            if facts.conn.https { "https" } else { "http" },
            facts.host_header,
            req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/")
        );
        let binding = cookie::binding(req.headers(), &self.binding_cookie)
            .unwrap_or_else(|| random_token(BINDING_BYTES));
        let url = flow::sign_in_url(
            &self.config.authenticate_url,
            &self.sign_in_signer,
            &original,
            &sha256_b64(binding.as_bytes()),
            now_unix(),
        );
        let mut r = error::redirect(url.as_str());
        let set = cookie::set_binding(&self.binding_cookie, &binding, facts.conn.https);
        if let Ok(v) = http::HeaderValue::from_str(&set) {
            r.headers_mut().append(http::header::SET_COOKIE, v);
        }
        r
    }

    async fn authorize_and_forward(
        &self,
        req: Request<crate::RequestBody>,
        route: &Route,
        prepared: &forward::Prepared,
        path: &str,
        facts: &RequestFacts<'_>,
    ) -> Response<Body> {
        let session_id =
            facts.conn.opened.session_id(req.headers(), &self.cookie_sealer, &self.config.cookie.name);
        // The cache key is the session and the route: authorize marks decisions of policies
        // that read the request itself (method, path, address, time) as not reusable.
        let reply: Result<Arc<Decision>, BusError> =
            match self.decisions.get(self.shard, session_id.as_deref(), &route.id) {
                Some(cached) => Ok(cached),
                None => {
                    let generation = self.decisions.generation();
                    let check = CheckRequest {
                        route_id: route.id.clone(),
                        session_id: session_id.clone(),
                        method: req.method().as_str().to_owned(),
                        host: facts.host.to_owned(),
                        path: path.to_owned(),
                        client_ip: facts.conn.client_ip.clone(),
                        cors_preflight: req.method() == Method::OPTIONS
                            && req.headers().contains_key(http::header::ORIGIN)
                            && req.headers().contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD),
                        client_certificate: facts.conn.client_certificate.as_deref().cloned(),
                    };
                    let answer: Result<Decision, BusError> = self.checks.check(check).await;
                    answer.map(|r| {
                        let r = Arc::new(r);
                        self.decisions.put(self.shard, session_id.as_deref(), &route.id, &r, generation);
                        r
                    })
                }
            };
        match reply.as_deref().map(|d| (&d.reply, d.headers.as_slice())) {
            Ok((CheckReply::Allow { sealed_templates, .. }, headers)) => match &route.action {
                RouteAction::Forward => {
                    let origin = Origin {
                        forwarded_for: facts.conn.forwarded_for.as_ref(),
                        request_id: facts.request_id,
                        https: facts.conn.https,
                        host: facts.host_header,
                        cookie_name: &self.config.cookie.name,
                        cookies: &facts.conn.opened,
                    };
                    let pick = self.balancer.pick(route, session_id.as_deref());
                    let Some(client) = self.client_for(route) else {
                        return error::bad_gateway(facts.html);
                    };
                    let mut templates = self.open_templates(sealed_templates, &route.id);
                    if let Some(cert) = &facts.conn.client_certificate {
                        templates.push(("client_cert_fingerprint".into(), cert.fingerprint.clone()));
                    }
                    let granted = forward::Granted { headers, templates: &templates };
                    forward::forward(
                        &client,
                        &self.pool,
                        &self.deadlines,
                        route,
                        prepared,
                        pick.index,
                        req,
                        path,
                        &origin,
                        &granted,
                        facts.html,
                    )
                    .await
                }
                RouteAction::Redirect(r) => {
                    let mut response = redirect_response(r, &req, facts);
                    forward::set_response_headers(response.headers_mut(), prepared, facts.conn.https);
                    response
                }
                RouteAction::Respond { status, body } => {
                    let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
                    let mut response = error::text(status, "text/plain; charset=utf-8", body.clone());
                    forward::set_response_headers(response.headers_mut(), prepared, facts.conn.https);
                    response
                }
            },
            Ok((CheckReply::Deny { status, reasons, .. }, _)) => {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::FORBIDDEN);
                error::error(
                    status,
                    "Forbidden",
                    "You are not allowed to access this page.",
                    reasons,
                    facts.html,
                )
            }
            Ok((CheckReply::Login { reasons, .. }, _)) => {
                if facts.html && req.method() == Method::GET {
                    self.sign_in_redirect(&req, facts)
                } else {
                    error::error(
                        StatusCode::UNAUTHORIZED,
                        "Unauthenticated",
                        "Sign in to access this page.",
                        reasons,
                        facts.html,
                    )
                }
            }
            Err(e) => {
                match &e {
                    BusError::Remote(r) if r.code == ErrorCode::UnknownRoute => {
                        warn!(
                            route = route.index,
                            "authorize does not know this route (configuration mismatch)"
                        )
                    }
                    _ => warn!(error = %e, route = route.index, "authorize check failed; refusing"),
                }
                debug!(host = facts.host, "failing closed");
                error::unavailable(facts.html)
            }
        }
    }
}

/// A `redirect` route's answer: the request URL with the configured parts replaced.
fn redirect_response(
    r: &Redirect,
    req: &Request<crate::RequestBody>,
    facts: &RequestFacts<'_>,
) -> Response<Body> {
    let scheme =
        r.scheme.clone().unwrap_or_else(|| if facts.conn.https { "https".into() } else { "http".into() });
    let (host, port) = split_host(facts.host_header);
    // A new host or scheme drops the request's port (as Envoy does) unless one is configured.
    let keep_port = r.host.is_none() && r.scheme.is_none();
    let host = r.host.clone().unwrap_or_else(|| host.into_owned());
    let port = r.port.or(port.filter(|_| keep_port)).map(|p| format!(":{p}")).unwrap_or_default();
    let path = r.path.clone().unwrap_or_else(|| req.uri().path().to_owned());
    let query = match (r.strip_query, req.uri().query()) {
        (false, Some(q)) => format!("?{q}"),
        _ => String::new(),
    };
    let mut response = error::redirect(&format!("{scheme}://{host}{port}{path}{query}"));
    *response.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    response
}

/// `h` in lower case, copied only when it is not already.
fn lower(h: &str) -> Cow<'_, str> {
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    }
}

/// `Host` into lower-case host and optional port.
fn split_host(host: &str) -> (Cow<'_, str>, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').unwrap_or((rest, ""));
        let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
        return (Cow::Owned(format!("[{}]", h.to_ascii_lowercase())), port);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (lower(h), p.parse().ok()),
        _ => (lower(host), None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_host;

    #[test]
    fn hosts_split_into_name_and_port() {
        let split = |h: &str| {
            let (host, port) = split_host(h);
            (host.into_owned(), port)
        };
        assert_eq!(split("App.Example.com:8443"), ("app.example.com".into(), Some(8443)));
        assert_eq!(split("app.example.com"), ("app.example.com".into(), None));
        assert_eq!(split("[::1]:80"), ("[::1]".into(), Some(80)));
        assert_eq!(split("[::1]"), ("[::1]".into(), None));
        assert_eq!(split("App.Example.com:x"), ("app.example.com:x".into(), None));
    }
}
