//! HTTP carried over NATS: reading [`HttpRequest`]s and building [`HttpReply`]s.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portcullis_runtime::pages;
use portcullis_schemas::messages::{Header, HttpReply, HttpRequest};

/// A parsed view of an [`HttpRequest`].
pub struct Request<'a> {
    pub raw: &'a HttpRequest,
    pub path: &'a str,
    query: Vec<(String, String)>,
}

impl<'a> Request<'a> {
    pub fn new(raw: &'a HttpRequest) -> Self {
        let (path, query) = raw.path_and_query.split_once('?').unwrap_or((&raw.path_and_query, ""));
        let query = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        Request { raw, path, query }
    }

    /// The first value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.raw
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .flat_map(|h| h.value.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    pub fn is_https(&self) -> bool {
        self.raw.scheme == "https"
    }

    /// Whether the client wants HTML (a browser) rather than JSON.
    pub fn wants_html(&self) -> bool {
        self.header("accept").is_some_and(|a| a.contains("text/html"))
    }
}

/// A reply under construction.
pub struct Reply {
    status: u16,
    headers: Vec<Header>,
    body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Reply { status, headers: vec![Header::new("cache-control", "no-store")], body: Vec::new() }
    }

    pub fn redirect(location: &str) -> Self {
        Reply::new(302).header("location", location)
    }

    pub fn html(status: u16, html: String) -> Self {
        let mut r = Reply::new(status).header("content-type", "text/html; charset=utf-8");
        r.body = html.into_bytes();
        r
    }

    pub fn json(status: u16, body: String) -> Self {
        let mut r = Reply::new(status).header("content-type", "application/json");
        r.body = body.into_bytes();
        r
    }

    /// An error as an HTML page or JSON, per the client. Never includes secrets.
    pub fn error(req: &Request<'_>, status: u16, title: &str, message: &str) -> Self {
        if req.wants_html() {
            Reply::html(status, pages::error_page(status, title, message, &[]))
        } else {
            let mut r = Reply::new(status).header("content-type", "application/json");
            r.body = pages::error_json(status, title, message, &[]).into_bytes();
            r
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    pub fn into_http(self) -> HttpReply {
        HttpReply { status: self.status, headers: self.headers, body: STANDARD.encode(self.body) }
    }
}

/// A `Set-Cookie` value. `max_age` zero removes the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// The fields of a form-encoded POST body.
pub fn form(req: &Request<'_>) -> Vec<(String, String)> {
    let body = STANDARD.decode(&req.raw.body).unwrap_or_default();
    url::form_urlencoded::parse(&body).into_owned().collect()
}
