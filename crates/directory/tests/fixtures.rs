//! The SaaS directory providers against local fixture servers that answer as each vendor's API
//! documents: paging, rate limiting (`429`/`403` with the vendor's wait header), error answers
//! (whose messages must name the endpoint and never the credential) and nested groups.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis_directory::{Progress, ProviderError, View};
use portcullis_runtime::config::{
    Auth0Settings, AzureSettings, Credential, DirectoryConfig, DirectoryProvider, GithubSettings,
    GitlabSettings, GoogleSettings, KeycloakSettings, OktaSettings,
};
use portcullis_schemas::messages::{DirectoryGroup, DirectoryUser};
use serde_json::{Value, json};
use url::Url;

// ---------------------------------------------------------------------------------------------
// The fixture server
// ---------------------------------------------------------------------------------------------

/// One request as a fixture saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    /// As sent, percent-encoding kept.
    path: String,
    /// Decoded, in the order sent.
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: String,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// How many identical requests (method, path, query) came before this one.
    nth: usize,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A field of a form-encoded body.
    fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// An answer; `{base}` in header values and the body becomes the fixture's base URL.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    fn ok(body: Value) -> Reply {
        Reply::json(200, body)
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn next(self, url: &str) -> Reply {
        self.header("link", format!("<{url}>; rel=\"next\""))
    }
}

/// One canned answer, for a method, a path and an exact query (any order).
#[derive(Clone)]
struct Route {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    reply: Reply,
}

/// Answers by method, path and exact query; anything else is a 404 naming what was asked, so
/// a wrong request fails the test with a clear message.
#[derive(Clone, Default)]
struct Routes(Vec<Route>);

impl Routes {
    fn add(mut self, method: &str, path_and_query: &str, reply: Reply) -> Routes {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let mut query: Vec<_> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        query.sort();
        self.0.push(Route { method: method.into(), path: path.into(), query, reply });
        self
    }

    fn get(self, path_and_query: &str, reply: Reply) -> Routes {
        self.add("GET", path_and_query, reply)
    }

    fn reply(&self, req: &Request) -> Reply {
        let mut query = req.query.clone();
        query.sort();
        self.0
            .iter()
            .find(|r| r.method == req.method && r.path == req.path && r.query == query)
            .map(|r| r.reply.clone())
            .unwrap_or_else(|| {
                Reply::json(
                    404,
                    json!({"fixture": format!("no route for {} {} {:?}", req.method, req.path, req.query)}),
                )
            })
    }
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A local HTTP server answering with `handler` and recording every request.
struct Fixture {
    base: String,
    log: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fixture {
    async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Fixture {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let (b, l) = (base.clone(), log.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (base, log, handler) = (b.clone(), l.clone(), handler.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |req| answer(req, base.clone(), log.clone(), handler.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Fixture { base, log, task }
    }

    fn url(&self) -> Url {
        Url::parse(&self.base).unwrap()
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// Requests to `path`, whatever their query.
    fn count(&self, method: &str, path: &str) -> usize {
        self.requests().iter().filter(|r| r.method == method && r.path == path).count()
    }
}

async fn answer(
    req: hyper::Request<Incoming>,
    base: String,
    log: Arc<Mutex<Vec<Request>>>,
    handler: Handler,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut request = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        base: base.clone(),
        nth: 0,
    };
    {
        let mut log = log.lock().unwrap();
        request.nth = log
            .iter()
            .filter(|r| r.method == request.method && r.path == request.path && r.query == request.query)
            .count();
        log.push(request.clone());
    }
    let reply = handler(&request);
    let mut response = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value.replace("{base}", &base));
    }
    Ok(response.body(Full::new(Bytes::from(reply.body.replace("{base}", &base)))).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

async fn fetch(provider: DirectoryProvider) -> Result<View, ProviderError> {
    let config = DirectoryConfig {
        provider,
        refresh_interval: Duration::from_secs(600),
        refresh_timeout: Duration::from_secs(10),
        requests_per_second: None,
    };
    let provider = portcullis_directory::provider(&config)?;
    provider.fetch(&Progress::new("fixture")).await
}

fn user(id: &str, email: Option<&str>, name: Option<&str>, groups: &[&str]) -> DirectoryUser {
    DirectoryUser {
        id: id.into(),
        email: email.map(str::to_owned),
        name: name.map(str::to_owned),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn group(id: &str, name: &str, email: Option<&str>) -> DirectoryGroup {
    DirectoryGroup { id: id.into(), name: name.into(), email: email.map(str::to_owned) }
}

/// The error names `path` and none of `secrets`, in its message or its debug form.
fn assert_names_endpoint(result: Result<View, ProviderError>, path: &str, status: &str, secrets: &[&str]) {
    let err = result.expect_err("the fetch must fail");
    let message = err.to_string();
    let debug = format!("{err:?}");
    assert!(message.contains(path), "{message:?} should name {path}");
    assert!(message.contains(status), "{message:?} should carry the status {status}");
    for secret in secrets {
        assert!(!message.contains(secret) && !debug.contains(secret), "{message:?} leaks a credential");
    }
}

/// Epoch seconds `secs` from now, as reset headers carry them.
fn epoch_in(secs: u64) -> String {
    (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + secs).to_string()
}

/// The fixture answered `429` (or GitHub's `403`) once at `path`, then the provider asked again
/// and got everything.
fn assert_retried(fixture: &Fixture, path: &str, started: Instant, at_least: Duration) {
    assert_eq!(fixture.count("GET", path), 2, "one refused and one answered request to {path}");
    assert!(started.elapsed() >= at_least, "waited only {:?}", started.elapsed());
}

fn unauthorized(req: &Request, header: &str, expected: &str) -> bool {
    req.header(header) != Some(expected)
}

// ---------------------------------------------------------------------------------------------
// Okta
// ---------------------------------------------------------------------------------------------

const OKTA_TOKEN: &str = "00okta-api-token-SECRET";

fn okta_settings(fixture: &Fixture, token: &str) -> DirectoryProvider {
    DirectoryProvider::Okta(OktaSettings { url: fixture.url(), api_token: Credential::new(token) })
}

fn okta_user(id: &str, status: &str, first: Value, last: Value, email: &str) -> Value {
    json!({"id": id, "status": status, "created": "2024-01-01T00:00:00.000Z",
           "profile": {"firstName": first, "lastName": last, "email": email, "login": email},
           "_links": {"self": {"href": format!("{{base}}/api/v1/users/{id}")}}})
}

fn okta_group(id: &str, name: &str, kind: &str) -> Value {
    json!({"id": id, "type": kind, "profile": {"name": name, "description": null}})
}

/// Okta answers as documented: a JSON array per page, the next page in `Link: rel="next"`
/// next to `rel="self"`, and `E0000011` for a bad token.
fn okta(req: &Request) -> Reply {
    if unauthorized(req, "authorization", &format!("SSWS {OKTA_TOKEN}")) {
        return Reply::json(
            401,
            json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided", "errorLink": "E0000011",
                   "errorId": "oaeb1Q2w3E4r5T6y7U8i9O0p", "errorCauses": []}),
        );
    }
    let alice = okta_user("00u1alice", "ACTIVE", json!("Alice"), json!("Liddell"), "Alice@Example.com");
    let bob = okta_user("00u2bob", "ACTIVE", Value::Null, Value::Null, "bob@example.com");
    let carol = okta_user("00u3carol", "DEPROVISIONED", json!("Carol"), json!("Cole"), "carol@example.com");
    let dave = okta_user("00u4dave", "SUSPENDED", json!("Dave"), Value::Null, "dave@example.com");
    Routes::default()
        .get(
            "/api/v1/users?limit=200",
            Reply::ok(json!([alice, bob]))
                .header("link", "<{base}/api/v1/users?limit=200>; rel=\"self\"")
                .next("{base}/api/v1/users?after=00u2bob&limit=200"),
        )
        .get("/api/v1/users?after=00u2bob&limit=200", Reply::ok(json!([carol, dave])))
        .get(
            "/api/v1/groups?limit=200",
            Reply::ok(json!([okta_group("00g1all", "Everyone", "BUILT_IN")]))
                .next("{base}/api/v1/groups?after=00g1all&limit=200"),
        )
        .get(
            "/api/v1/groups?after=00g1all&limit=200",
            Reply::ok(json!([okta_group("00g2eng", "Engineering", "OKTA_GROUP")])),
        )
        .get(
            "/api/v1/groups/00g1all/users?limit=200",
            Reply::ok(json!([alice, bob])).next("{base}/api/v1/groups/00g1all/users?after=00u2bob&limit=200"),
        )
        .get("/api/v1/groups/00g1all/users?after=00u2bob&limit=200", Reply::ok(json!([carol, dave])))
        .get("/api/v1/groups/00g2eng/users?limit=200", Reply::ok(json!([alice, carol])))
        .reply(req)
}

fn okta_view() -> View {
    View {
        users: vec![
            user("00u1alice", Some("alice@example.com"), Some("Alice Liddell"), &["00g1all", "00g2eng"]),
            user("00u2bob", Some("bob@example.com"), Some("bob@example.com"), &["00g1all"]),
            user("00u3carol", Some("carol@example.com"), Some("Carol Cole"), &[]),
            user("00u4dave", Some("dave@example.com"), Some("Dave"), &[]),
        ],
        groups: vec![group("00g1all", "Everyone", None), group("00g2eng", "Engineering", None)],
    }
}

#[tokio::test]
async fn okta_follows_link_paging() {
    let fixture = Fixture::start(okta).await;
    let view = fetch(okta_settings(&fixture, OKTA_TOKEN)).await.unwrap();
    assert_eq!(view, okta_view());
    let requests = fixture.requests();
    assert_eq!(requests.len(), 7, "two pages of users, two of groups, three of members");
    assert!(requests.iter().all(|r| r.header("authorization") == Some(&format!("SSWS {OKTA_TOKEN}"))));
}

#[tokio::test]
async fn okta_waits_out_rate_limit() {
    let fixture = Fixture::start(|req: &Request| {
        if req.path == "/api/v1/groups/00g2eng/users" && req.nth == 0 {
            return Reply::json(
                429,
                json!({"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests.",
                       "errorLink": "E0000047", "errorId": "sampleQPivGUj_ND5v78vbYWW", "errorCauses": []}),
            )
            .header("x-rate-limit-limit", "600")
            .header("x-rate-limit-remaining", "0")
            .header("x-rate-limit-reset", epoch_in(1));
        }
        okta(req)
    })
    .await;
    let started = Instant::now();
    let view = fetch(okta_settings(&fixture, OKTA_TOKEN)).await.unwrap();
    assert_eq!(view, okta_view());
    assert_retried(&fixture, "/api/v1/groups/00g2eng/users", started, Duration::ZERO);
}

#[tokio::test]
async fn okta_error_names_endpoint_not_token() {
    let fixture = Fixture::start(okta).await;
    let wrong = "00wrong-okta-token-SECRET";
    assert_names_endpoint(fetch(okta_settings(&fixture, wrong)).await, "/api/v1/users", "401", &[wrong]);

    // A server error on a later listing fails the whole fetch, too.
    let fixture = Fixture::start(|req: &Request| {
        if req.path == "/api/v1/groups" {
            return Reply::json(
                500,
                json!({"errorCode": "E0000009", "errorSummary": "Internal Server Error", "errorLink": "E0000009",
                       "errorId": "oae5xq", "errorCauses": []}),
            );
        }
        okta(req)
    })
    .await;
    assert_names_endpoint(
        fetch(okta_settings(&fixture, OKTA_TOKEN)).await,
        "/api/v1/groups",
        "500",
        &[OKTA_TOKEN],
    );
}

// ---------------------------------------------------------------------------------------------
// Microsoft Entra ID (Graph)
// ---------------------------------------------------------------------------------------------

const AZURE_TENANT: &str = "contoso-tenant-id";
const AZURE_SECRET: &str = "azure~client~SECRET";
const GRAPH_TOKEN: &str = "graph-access-token-SECRET";
const GRAPH_USERS: &str = "/v1.0/users/delta";
const GRAPH_GROUPS: &str = "/v1.0/groups/delta";

fn azure_settings(fixture: &Fixture, secret: &str) -> DirectoryProvider {
    DirectoryProvider::Azure(AzureSettings {
        tenant_id: AZURE_TENANT.into(),
        client_id: "portcullis-app-id".into(),
        client_secret: Credential::new(secret),
        login_url: fixture.url(),
        graph_url: fixture.url(),
    })
}

/// The token endpoint and Graph's authentication; `None` when the request may go on.
fn azure_auth(req: &Request) -> Option<Reply> {
    if req.path == format!("/{AZURE_TENANT}/oauth2/v2.0/token") {
        let good = req.method == "POST"
            && req.form("grant_type").as_deref() == Some("client_credentials")
            && req.form("client_id").as_deref() == Some("portcullis-app-id")
            && req.form("client_secret").as_deref() == Some(AZURE_SECRET)
            && req.form("scope") == Some(format!("{}/.default", req.base));
        return Some(if good {
            Reply::ok(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                             "access_token": GRAPH_TOKEN}))
        } else {
            Reply::json(
                401,
                json!({"error": "invalid_client",
                       "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                       "error_codes": [7000215], "timestamp": "2024-05-01 10:00:00Z",
                       "trace_id": "0f1c", "correlation_id": "9a8b"}),
            )
        });
    }
    if unauthorized(req, "authorization", &format!("Bearer {GRAPH_TOKEN}")) {
        return Some(Reply::json(
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token validation failure.",
                             "innerError": {"date": "2024-05-01T10:00:00", "request-id": "1", "client-request-id": "1"}}}),
        ));
    }
    None
}

fn graph_user(id: &str, name: &str, mail: Value, upn: &str) -> Value {
    json!({"id": id, "displayName": name, "mail": mail, "userPrincipalName": upn})
}

fn graph_member(kind: &str, id: &str) -> Value {
    json!({"@odata.type": format!("#microsoft.graph.{kind}"), "id": id})
}

fn graph_removed_member(kind: &str, id: &str) -> Value {
    json!({"@odata.type": format!("#microsoft.graph.{kind}"), "id": id, "@removed": {"reason": "deleted"}})
}

/// Graph's delta listings: `@odata.nextLink` until the last page's `@odata.deltaLink`; a large
/// group's members split over two entries, the second without the group's properties.
fn azure(req: &Request) -> Reply {
    if let Some(reply) = azure_auth(req) {
        return reply;
    }
    Routes::default()
        .get(
            "/v1.0/users/delta?$select=id,displayName,mail,userPrincipalName,accountEnabled",
            Reply::ok(json!({
            "@odata.context": "{base}/v1.0/$metadata#users(id,displayName,mail,userPrincipalName,accountEnabled)",
            "@odata.nextLink": "{base}/v1.0/users/delta?$skiptoken=usersPageTwo",
            "value": [
                graph_user("u-alice", "Alice Liddell", json!("Alice@Contoso.com"), "alice@contoso.com"),
                graph_user("u-bob", "Bob Brown", Value::Null, "Bob@contoso.onmicrosoft.com"),
            ]})),
        )
        .get(
            "/v1.0/users/delta?$skiptoken=usersPageTwo",
            Reply::ok(json!({
            "@odata.context": "{base}/v1.0/$metadata#users(id,displayName,mail,userPrincipalName,accountEnabled)",
            "@odata.deltaLink": "{base}/v1.0/users/delta?$deltatoken=usersDone",
            "value": [
                graph_user("u-carol", "Carol Cole", json!("carol@contoso.com"), "carol@contoso.com"),
                {"id": "u-gone", "@removed": {"reason": "changed"}},
                {"id": "u-dave", "displayName": "Dave Disabled", "mail": "dave@contoso.com",
                 "userPrincipalName": "dave@contoso.com", "accountEnabled": false},
            ]})),
        )
        .get(
            "/v1.0/groups/delta?$select=id,displayName,mail,members",
            Reply::ok(json!({
            "@odata.nextLink": "{base}/v1.0/groups/delta?$skiptoken=groupsPageTwo",
            "value": [{
                "id": "g-eng", "displayName": "Engineering", "mail": "Eng@Contoso.com",
                "members@delta": [
                    graph_member("user", "u-alice"),
                    graph_member("user", "u-dave"),
                    graph_member("group", "g-platform"),
                    graph_member("servicePrincipal", "sp-build"),
                ]}]})),
        )
        .get(
            "/v1.0/groups/delta?$skiptoken=groupsPageTwo",
            Reply::ok(json!({
            "@odata.deltaLink": "{base}/v1.0/groups/delta?$deltatoken=groupsDone",
            "value": [
                {"id": "g-platform", "displayName": "Platform", "mail": null,
                 "members@delta": [graph_member("user", "u-bob"), graph_removed_member("user", "u-carol")]},
                {"id": "g-eng", "members@delta": [graph_member("user", "u-carol")]},
                {"id": "g-old", "@removed": {"reason": "deleted"}},
            ]})),
        )
        .reply(req)
}

fn azure_view() -> View {
    View {
        users: vec![
            user("u-alice", Some("alice@contoso.com"), Some("Alice Liddell"), &["g-eng"]),
            user("u-bob", Some("bob@contoso.onmicrosoft.com"), Some("Bob Brown"), &["g-eng", "g-platform"]),
            user("u-carol", Some("carol@contoso.com"), Some("Carol Cole"), &["g-eng"]),
            // A disabled account is listed with no groups.
            user("u-dave", Some("dave@contoso.com"), Some("Dave Disabled"), &[]),
        ],
        groups: vec![
            group("g-eng", "Engineering", Some("eng@contoso.com")),
            group("g-platform", "Platform", None),
        ],
    }
}

#[tokio::test]
async fn azure_follows_next_links_until_delta_link() {
    let fixture = Fixture::start(azure).await;
    let view = fetch(azure_settings(&fixture, AZURE_SECRET)).await.unwrap();
    assert_eq!(view, azure_view());
    assert_eq!(fixture.count("POST", &format!("/{AZURE_TENANT}/oauth2/v2.0/token")), 1);
    assert_eq!(fixture.count("GET", GRAPH_USERS), 2);
    assert_eq!(fixture.count("GET", GRAPH_GROUPS), 2);
}

#[tokio::test]
async fn azure_nests_groups_in_groups() {
    let fixture = Fixture::start(|req: &Request| {
        if let Some(reply) = azure_auth(req) {
            return reply;
        }
        let g =
            |id: &str, members: Vec<Value>| json!({"id": id, "displayName": id, "members@delta": members});
        Routes::default()
            .get(
                "/v1.0/users/delta?$select=id,displayName,mail,userPrincipalName,accountEnabled",
                Reply::ok(json!({"@odata.deltaLink": "{base}/x", "value": [
                    graph_user("u-1", "One", json!("one@contoso.com"), "one@contoso.com"),
                    graph_user("u-2", "Two", json!("two@contoso.com"), "two@contoso.com"),
                ]})),
            )
            .get(
                "/v1.0/groups/delta?$select=id,displayName,mail,members",
                Reply::ok(json!({"@odata.nextLink": "{base}/v1.0/groups/delta?$skiptoken=2", "value": [
                    g("all-staff", vec![graph_member("group", "engineering")]),
                    g("engineering", vec![graph_member("group", "sre")]),
                ]})),
            )
            .get(
                "/v1.0/groups/delta?$skiptoken=2",
                Reply::ok(json!({"@odata.deltaLink": "{base}/x", "value": [
                    g("sre", vec![graph_member("user", "u-2"), graph_member("group", "all-staff")]),
                    g("solo", vec![graph_member("user", "u-1")]),
                ]})),
            )
            .reply(req)
    })
    .await;
    let view = fetch(azure_settings(&fixture, AZURE_SECRET)).await.unwrap();
    let groups_of = |id: &str| view.users.iter().find(|u| u.id == id).unwrap().groups.clone();
    // Three levels deep, and a cycle back to the top that changes nothing.
    assert_eq!(groups_of("u-2"), ["all-staff", "engineering", "sre"]);
    assert_eq!(groups_of("u-1"), ["solo"]);
    assert_eq!(view.groups.len(), 4);
}

#[tokio::test]
async fn azure_waits_out_rate_limit() {
    let fixture = Fixture::start(|req: &Request| {
        if req.path == GRAPH_USERS && req.query.iter().any(|(k, _)| k == "$skiptoken") && req.nth == 0 {
            return Reply::json(
                429,
                json!({"error": {"code": "TooManyRequests", "message": "Too many requests.",
                                 "innerError": {"code": "TooManyRequests"}}}),
            )
            .header("retry-after", "1");
        }
        azure(req)
    })
    .await;
    let started = Instant::now();
    let view = fetch(azure_settings(&fixture, AZURE_SECRET)).await.unwrap();
    assert_eq!(view, azure_view());
    assert_eq!(fixture.count("GET", GRAPH_USERS), 3, "page one, page two refused, page two");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn azure_error_names_endpoint_not_secret() {
    // The token endpoint refuses the secret.
    let fixture = Fixture::start(azure).await;
    let wrong = "wrong~azure~SECRET";
    let token_path = format!("/{AZURE_TENANT}/oauth2/v2.0/token");
    assert_names_endpoint(
        fetch(azure_settings(&fixture, wrong)).await,
        &token_path,
        "AADSTS7000215",
        &[wrong],
    );

    // Graph refuses the listing.
    let fixture = Fixture::start(|req: &Request| {
        if req.path == GRAPH_GROUPS {
            return Reply::json(
                403,
                json!({"error": {"code": "Authorization_RequestDenied",
                                 "message": "Insufficient privileges to complete the operation.",
                                 "innerError": {"date": "2024-05-01T10:00:00", "request-id": "2"}}}),
            );
        }
        azure(req)
    })
    .await;
    let result = fetch(azure_settings(&fixture, AZURE_SECRET)).await;
    assert_names_endpoint(result, GRAPH_GROUPS, "403", &[AZURE_SECRET, GRAPH_TOKEN]);
}

// ---------------------------------------------------------------------------------------------
// Google Workspace
// ---------------------------------------------------------------------------------------------

const GOOGLE_ADMIN: &str = "admin@example.com";
const GOOGLE_SA: &str = "directory-sync@acme-project.iam.gserviceaccount.com";
const GOOGLE_TOKEN: &str = "ya29.google-access-token-SECRET";
const GOOGLE_SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.group.readonly";
const DIRECTORY: &str = "/admin/directory/v1";

/// A 2048-bit RSA key pair (private PEM, public PEM) from openssl, made once per test run.
fn rsa_key() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let private = Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .expect("openssl genpkey");
        assert!(private.status.success(), "openssl genpkey failed");
        let mut child = Command::new("openssl")
            .args(["pkey", "-pubout"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl pkey");
        child.stdin.take().unwrap().write_all(&private.stdout).unwrap();
        let public = child.wait_with_output().unwrap();
        assert!(public.status.success(), "openssl pkey -pubout failed");
        (String::from_utf8(private.stdout).unwrap(), String::from_utf8(public.stdout).unwrap())
    })
}

fn google_settings(fixture: &Fixture) -> DirectoryProvider {
    let key = json!({
        "type": "service_account", "project_id": "acme-project", "private_key_id": "0123abcd",
        "private_key": rsa_key().0, "client_email": GOOGLE_SA, "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": format!("{}/token", fixture.base),
    });
    DirectoryProvider::Google(GoogleSettings {
        service_account: Credential::new(key.to_string()),
        impersonate_user: GOOGLE_ADMIN.into(),
        customer: "my_customer".into(),
        api_url: fixture.url(),
    })
}

/// Whether `assertion` is the JWT Google wants: three parts, RS256 signed by the service
/// account's key, issued by the service account for the administrator, for the token URI.
fn valid_assertion(assertion: &str, token_uri: &str) -> bool {
    if assertion.split('.').count() != 3 {
        return false;
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(rsa_key().1.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[token_uri]);
    validation.set_issuer(&[GOOGLE_SA]);
    let Ok(token) = jsonwebtoken::decode::<Value>(assertion, &key, &validation) else { return false };
    let claims = token.claims;
    let iat = claims["iat"].as_u64().unwrap_or(0);
    claims["sub"] == GOOGLE_ADMIN
        && claims["scope"] == GOOGLE_SCOPES
        && claims["exp"].as_u64() == Some(iat + 3600)
}

/// Google's OAuth token endpoint (JWT bearer grant) and the API's authentication.
fn google_auth(req: &Request) -> Option<Reply> {
    if req.path == "/token" {
        let good = req.method == "POST"
            && req.form("grant_type").as_deref() == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
            && req.form("assertion").is_some_and(|a| valid_assertion(&a, &format!("{}/token", req.base)));
        return Some(if good {
            Reply::ok(json!({"access_token": GOOGLE_TOKEN, "expires_in": 3599, "token_type": "Bearer"}))
        } else {
            Reply::json(400, json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}))
        });
    }
    if unauthorized(req, "authorization", &format!("Bearer {GOOGLE_TOKEN}")) {
        return Some(Reply::json(
            401,
            json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                             "status": "UNAUTHENTICATED"}}),
        ));
    }
    None
}

fn google_user(id: &str, email: &str, full_name: &str, suspended: bool) -> Value {
    json!({"kind": "admin#directory#user", "id": id, "primaryEmail": email,
           "name": {"givenName": full_name, "familyName": "", "fullName": full_name},
           "isAdmin": false, "suspended": suspended})
}

fn google_group(id: &str, email: &str, name: &str) -> Value {
    json!({"kind": "admin#directory#group", "id": id, "email": email, "name": name, "directMembersCount": "2"})
}

fn google_member(id: &str, kind: &str) -> Value {
    json!({"kind": "admin#directory#member", "id": id, "email": format!("{id}@example.com"), "role": "MEMBER",
           "type": kind, "status": "ACTIVE"})
}

fn members_page(members: Vec<Value>, next: Option<&str>) -> Reply {
    let mut body = json!({"kind": "admin#directory#members", "members": members});
    if let Some(token) = next {
        body["nextPageToken"] = json!(token);
    }
    Reply::ok(body)
}

/// The Directory API: `users`, `groups` and `members` arrays with `nextPageToken`; a group
/// within a group is a member of type `GROUP`, the whole domain one of type `CUSTOMER`.
fn google(req: &Request) -> Reply {
    if let Some(reply) = google_auth(req) {
        return reply;
    }
    Routes::default()
        .get(
            &format!("{DIRECTORY}/users?customer=my_customer&maxResults=500"),
            Reply::ok(json!({"kind": "admin#directory#users", "nextPageToken": "usersTwo", "users": [
                google_user("1001", "Alice@Example.com", "Alice Liddell", false),
                google_user("1002", "bob@example.com", "Bob Brown", false),
            ]})),
        )
        .get(
            &format!("{DIRECTORY}/users?customer=my_customer&maxResults=500&pageToken=usersTwo"),
            Reply::ok(json!({"kind": "admin#directory#users", "users": [
                google_user("1003", "carol@example.com", "Carol Cole", true),
            ]})),
        )
        .get(
            &format!("{DIRECTORY}/groups?customer=my_customer&maxResults=200"),
            Reply::ok(json!({"kind": "admin#directory#groups", "nextPageToken": "groupsTwo", "groups": [
                google_group("g-eng", "Eng@Example.com", "Engineering"),
            ]})),
        )
        .get(
            &format!("{DIRECTORY}/groups?customer=my_customer&maxResults=200&pageToken=groupsTwo"),
            Reply::ok(json!({"kind": "admin#directory#groups", "groups": [
                google_group("g-platform", "platform@example.com", "Platform"),
                google_group("g-all", "all@example.com", "Everyone"),
            ]})),
        )
        .get(
            &format!("{DIRECTORY}/groups/g-eng/members?maxResults=200"),
            members_page(vec![google_member("1001", "USER")], Some("membersTwo")),
        )
        .get(
            &format!("{DIRECTORY}/groups/g-eng/members?maxResults=200&pageToken=membersTwo"),
            members_page(vec![google_member("g-platform", "GROUP")], None),
        )
        .get(
            &format!("{DIRECTORY}/groups/g-platform/members?maxResults=200"),
            members_page(
                vec![
                    google_member("1002", "USER"),
                    google_member("1003", "USER"),
                    google_member("ext-9", "USER"),
                ],
                None,
            ),
        )
        .get(
            &format!("{DIRECTORY}/groups/g-all/members?maxResults=200"),
            members_page(vec![google_member("C01abcde", "CUSTOMER")], None),
        )
        .reply(req)
}

fn google_view() -> View {
    View {
        users: vec![
            user("1001", Some("alice@example.com"), Some("Alice Liddell"), &["g-all", "g-eng"]),
            user("1002", Some("bob@example.com"), Some("Bob Brown"), &["g-all", "g-eng", "g-platform"]),
            user("1003", Some("carol@example.com"), Some("Carol Cole"), &[]),
        ],
        groups: vec![
            group("g-all", "Everyone", Some("all@example.com")),
            group("g-eng", "Engineering", Some("eng@example.com")),
            group("g-platform", "Platform", Some("platform@example.com")),
        ],
    }
}

#[tokio::test]
async fn google_follows_page_tokens() {
    let fixture = Fixture::start(google).await;
    let view = fetch(google_settings(&fixture)).await.unwrap();
    assert_eq!(view, google_view());
    assert_eq!(fixture.count("POST", "/token"), 1);
    assert_eq!(fixture.count("GET", &format!("{DIRECTORY}/users")), 2);
    assert_eq!(fixture.count("GET", &format!("{DIRECTORY}/groups")), 2);
    assert_eq!(fixture.count("GET", &format!("{DIRECTORY}/groups/g-eng/members")), 2);
}

#[tokio::test]
async fn google_nests_group_members() {
    let fixture = Fixture::start(|req: &Request| {
        if let Some(reply) = google_auth(req) {
            return reply;
        }
        Routes::default()
            .get(
                &format!("{DIRECTORY}/users?customer=my_customer&maxResults=500"),
                Reply::ok(json!({"users": [google_user("1", "one@example.com", "One", false)]})),
            )
            .get(
                &format!("{DIRECTORY}/groups?customer=my_customer&maxResults=200"),
                Reply::ok(json!({"groups": [
                    google_group("top", "top@example.com", "Top"),
                    google_group("mid", "mid@example.com", "Mid"),
                    google_group("leaf", "leaf@example.com", "Leaf"),
                ]})),
            )
            .get(
                &format!("{DIRECTORY}/groups/top/members?maxResults=200"),
                members_page(vec![google_member("mid", "GROUP")], None),
            )
            .get(
                &format!("{DIRECTORY}/groups/mid/members?maxResults=200"),
                members_page(vec![google_member("leaf", "GROUP")], None),
            )
            .get(
                &format!("{DIRECTORY}/groups/leaf/members?maxResults=200"),
                members_page(vec![google_member("1", "USER")], None),
            )
            .reply(req)
    })
    .await;
    let view = fetch(google_settings(&fixture)).await.unwrap();
    assert_eq!(view.users, [user("1", Some("one@example.com"), Some("One"), &["leaf", "mid", "top"])]);
}

#[tokio::test]
async fn google_waits_out_rate_limit() {
    let fixture = Fixture::start(|req: &Request| {
        if req.path == format!("{DIRECTORY}/groups/g-platform/members") && req.nth == 0 {
            return Reply::json(
                429,
                json!({"error": {"code": 429, "message": "Quota exceeded for quota metric 'Queries'.",
                                 "status": "RESOURCE_EXHAUSTED"}}),
            )
            .header("retry-after", "1");
        }
        google(req)
    })
    .await;
    let started = Instant::now();
    let view = fetch(google_settings(&fixture)).await.unwrap();
    assert_eq!(view, google_view());
    assert_retried(
        &fixture,
        &format!("{DIRECTORY}/groups/g-platform/members"),
        started,
        Duration::from_millis(900),
    );
}

#[tokio::test]
async fn google_error_names_endpoint_not_key() {
    let key_part = rsa_key().0.lines().nth(1).unwrap().to_owned();
    let fixture = Fixture::start(|req: &Request| {
        if req.path == format!("{DIRECTORY}/groups") {
            return Reply::json(
                403,
                json!({"error": {"code": 403, "message": "Not Authorized to access this resource/api",
                                 "errors": [{"message": "Not Authorized to access this resource/api",
                                             "domain": "global", "reason": "forbidden"}]}}),
            );
        }
        google(req)
    })
    .await;
    let result = fetch(google_settings(&fixture)).await;
    assert_names_endpoint(result, &format!("{DIRECTORY}/groups"), "403", &[GOOGLE_TOKEN, &key_part]);

    // The token endpoint refuses the delegation.
    let fixture = Fixture::start(|req: &Request| {
        if req.path == "/token" {
            return Reply::json(
                401,
                json!({"error": "unauthorized_client",
                       "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}),
            );
        }
        google(req)
    })
    .await;
    assert_names_endpoint(
        fetch(google_settings(&fixture)).await,
        "/token",
        "unauthorized_client",
        &[&key_part],
    );
}

#[tokio::test]
async fn google_rejects_a_bad_key_without_quoting_it() {
    let key = json!({"client_email": GOOGLE_SA, "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-KEY-SECRET\n-----END PRIVATE KEY-----\n"});
    let config = DirectoryConfig {
        provider: DirectoryProvider::Google(GoogleSettings {
            service_account: Credential::new(key.to_string()),
            impersonate_user: GOOGLE_ADMIN.into(),
            customer: "my_customer".into(),
            api_url: Url::parse("https://admin.googleapis.com").unwrap(),
        }),
        refresh_interval: Duration::from_secs(600),
        refresh_timeout: Duration::from_secs(10),
        requests_per_second: None,
    };
    let Err(err) = portcullis_directory::provider(&config) else { panic!("a bad key must be refused") };
    assert!(err.to_string().contains("private_key"), "{err}");
    assert!(!err.to_string().contains("not-a-KEY-SECRET"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// GitHub
// ---------------------------------------------------------------------------------------------

const GITHUB_TOKEN: &str = "ghp_github-token-SECRET";

fn github_settings(fixture: &Fixture, token: &str) -> DirectoryProvider {
    DirectoryProvider::Github(GithubSettings {
        organization: "acme".into(),
        token: Credential::new(token),
        api_url: fixture.url(),
    })
}

fn gh_user(login: &str, id: u64) -> Value {
    json!({"login": login, "id": id, "node_id": "MDQ6VXNlcjE=", "type": "User", "site_admin": false,
           "url": format!("{{base}}/users/{login}")})
}

fn gh_team(id: u64, slug: &str, parent: Value) -> Value {
    json!({"id": id, "node_id": "MDQ6VGVhbTE=", "slug": slug, "name": slug.to_uppercase(), "privacy": "closed",
           "permission": "pull", "parent": parent})
}

/// GitHub's REST API: JSON arrays, `Link: rel="next"` (to `/organizations/{id}/…` URLs, as
/// GitHub writes them) and `Bad credentials` for a wrong token.
fn github(req: &Request) -> Reply {
    let authorized = req.header("authorization") == Some(&format!("Bearer {GITHUB_TOKEN}"))
        && req.header("accept") == Some("application/vnd.github+json")
        && req.header("x-github-api-version") == Some("2022-11-28");
    if !authorized {
        return Reply::json(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
        );
    }
    let links =
        |next: &str, last: &str| format!("<{{base}}{next}>; rel=\"next\", <{{base}}{last}>; rel=\"last\"");
    Routes::default()
        .get(
            "/orgs/acme/members?per_page=100",
            Reply::ok(json!([gh_user("octocat", 1), gh_user("hubot", 2)])).header(
                "link",
                links(
                    "/organizations/9919/members?per_page=100&page=2",
                    "/organizations/9919/members?per_page=100&page=2",
                ),
            ),
        )
        .get(
            "/organizations/9919/members?per_page=100&page=2",
            Reply::ok(json!([gh_user("monalisa", 3), gh_user("loner", 4)]))
                .header("link", "<{base}/organizations/9919/members?per_page=100&page=1>; rel=\"prev\""),
        )
        .get(
            "/orgs/acme/teams?per_page=100",
            Reply::ok(json!([gh_team(10, "engineering", Value::Null)]))
                .next("{base}/organizations/9919/teams?per_page=100&page=2"),
        )
        .get(
            "/organizations/9919/teams?per_page=100&page=2",
            Reply::ok(json!([gh_team(
                11,
                "platform",
                json!({"id": 10, "slug": "engineering", "name": "Engineering"})
            )])),
        )
        .get("/orgs/acme/teams/engineering/members?per_page=100", Reply::ok(json!([gh_user("octocat", 1)])))
        .get(
            "/orgs/acme/teams/platform/members?per_page=100",
            Reply::ok(json!([gh_user("hubot", 2)]))
                .next("{base}/organizations/9919/team/11/members?per_page=100&page=2"),
        )
        .get(
            "/organizations/9919/team/11/members?per_page=100&page=2",
            Reply::ok(json!([gh_user("monalisa", 3)])),
        )
        .reply(req)
}

fn github_view() -> View {
    View {
        users: vec![
            user("1", None, Some("octocat"), &["10"]),
            user("2", None, Some("hubot"), &["10", "11"]),
            user("3", None, Some("monalisa"), &["10", "11"]),
            user("4", None, Some("loner"), &[]),
        ],
        groups: vec![group("10", "engineering", None), group("11", "platform", None)],
    }
}

#[tokio::test]
async fn github_follows_link_paging_and_parent_teams() {
    let fixture = Fixture::start(github).await;
    let view = fetch(github_settings(&fixture, GITHUB_TOKEN)).await.unwrap();
    assert_eq!(view, github_view());
    assert_eq!(fixture.requests().len(), 7);
}

#[tokio::test]
async fn github_waits_out_spent_rate_limit() {
    let fixture = Fixture::start(|req: &Request| {
        if req.path == "/orgs/acme/teams" && req.nth == 0 {
            return Reply::json(
                403,
                json!({"message": "API rate limit exceeded for user ID 1.",
                       "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                       "status": "403"}),
            )
            .header("x-ratelimit-limit", "5000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-used", "5000")
            .header("x-ratelimit-reset", epoch_in(1))
            .header("x-ratelimit-resource", "core");
        }
        github(req)
    })
    .await;
    let started = Instant::now();
    let view = fetch(github_settings(&fixture, GITHUB_TOKEN)).await.unwrap();
    assert_eq!(view, github_view());
    assert_retried(&fixture, "/orgs/acme/teams", started, Duration::ZERO);
}

#[tokio::test]
async fn github_error_names_endpoint_not_token() {
    let fixture = Fixture::start(github).await;
    let wrong = "ghp_wrong-token-SECRET";
    assert_names_endpoint(
        fetch(github_settings(&fixture, wrong)).await,
        "/orgs/acme/members",
        "401",
        &[wrong],
    );

    let fixture = Fixture::start(|req: &Request| {
        if req.path == "/orgs/acme/teams/platform/members" {
            return Reply::json(
                404,
                json!({"message": "Not Found",
                       "documentation_url": "https://docs.github.com/rest/teams/members#list-team-members",
                       "status": "404"}),
            );
        }
        github(req)
    })
    .await;
    let result = fetch(github_settings(&fixture, GITHUB_TOKEN)).await;
    assert_names_endpoint(result, "/orgs/acme/teams/platform/members", "404", &[GITHUB_TOKEN]);
}

// ---------------------------------------------------------------------------------------------
// GitLab
// ---------------------------------------------------------------------------------------------

const GITLAB_TOKEN: &str = "glpat-gitlab-token-SECRET";

fn gitlab_settings(fixture: &Fixture, token: &str, group: Option<&str>) -> DirectoryProvider {
    DirectoryProvider::Gitlab(GitlabSettings {
        url: fixture.url(),
        token: Credential::new(token),
        group: group.map(str::to_owned),
    })
}

fn gl_group(id: u64, full_path: &str, parent: Option<u64>) -> Value {
    let path = full_path.rsplit('/').next().unwrap();
    json!({"id": id, "name": path, "path": path, "full_path": full_path, "full_name": full_path,
           "parent_id": parent, "visibility": "private", "web_url": format!("https://gitlab.example.com/groups/{full_path}")})
}

fn gl_member(id: u64, username: &str, name: &str, state: &str, extra: Value) -> Value {
    let mut m = json!({"id": id, "username": username, "name": name, "state": state, "access_level": 30,
                       "avatar_url": null, "web_url": format!("https://gitlab.example.com/{username}")});
    if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
        m.extend(extra);
    }
    m
}

/// GitLab's paging headers: one `Link` with next, first and last, written from GitLab's own
/// external URL (not the one the provider was given), and the `x-…-page` headers.
fn gitlab_page(body: Value, page: u32, next: Option<&str>) -> Reply {
    let mut reply = Reply::ok(body)
        .header("x-page", page.to_string())
        .header("x-per-page", "100")
        .header("x-next-page", if next.is_some() { (page + 1).to_string() } else { String::new() });
    if let Some(next) = next {
        reply = reply.header(
            "link",
            format!(
                "<https://gitlab.example.com{next}>; rel=\"next\", <https://gitlab.example.com/api/v4/x?page=1>; rel=\"first\", <https://gitlab.example.com/api/v4/x?page=2>; rel=\"last\""
            ),
        );
    }
    reply
}

fn gitlab_auth(req: &Request) -> Option<Reply> {
    unauthorized(req, "private-token", GITLAB_TOKEN)
        .then(|| Reply::json(401, json!({"message": "401 Unauthorized"})))
}

/// Every group the token's user is in (a group and its subgroup, over two pages), and their
/// direct members (active, with and without emails, and a blocked one).
fn gitlab(req: &Request) -> Reply {
    if let Some(reply) = gitlab_auth(req) {
        return reply;
    }
    Routes::default()
        .get(
            "/api/v4/groups?per_page=100&min_access_level=10",
            gitlab_page(
                json!([gl_group(1, "acme", None)]),
                1,
                Some("/api/v4/groups?id=&min_access_level=10&page=2&per_page=100"),
            ),
        )
        .get(
            "/api/v4/groups?id=&min_access_level=10&page=2&per_page=100",
            gitlab_page(json!([gl_group(2, "acme/platform", Some(1))]), 2, None),
        )
        .get(
            "/api/v4/groups/1/members?per_page=100",
            gitlab_page(
                json!([
                    gl_member(100, "alice", "Alice Liddell", "active", json!({"email": "Alice@Acme.io"})),
                    gl_member(
                        101,
                        "bob",
                        "Bob Brown",
                        "active",
                        json!({"email": "", "public_email": "bob@acme.io"})
                    ),
                ]),
                1,
                Some("/api/v4/groups/1/members?id=1&page=2&per_page=100"),
            ),
        )
        .get(
            "/api/v4/groups/1/members?id=1&page=2&per_page=100",
            gitlab_page(json!([gl_member(102, "bea", "Bea Blocked", "blocked", json!({}))]), 2, None),
        )
        .get(
            "/api/v4/groups/2/members?per_page=100",
            gitlab_page(json!([gl_member(103, "carol", "", "active", json!({}))]), 1, None),
        )
        .reply(req)
}

fn gitlab_view() -> View {
    View {
        users: vec![
            user("100", Some("alice@acme.io"), Some("Alice Liddell"), &["1"]),
            user("101", Some("bob@acme.io"), Some("Bob Brown"), &["1"]),
            user("102", None, Some("Bea Blocked"), &[]),
            user("103", None, Some("carol"), &["1", "2"]),
        ],
        groups: vec![group("1", "acme", None), group("2", "acme/platform", None)],
    }
}

#[tokio::test]
async fn gitlab_follows_link_paging() {
    let fixture = Fixture::start(gitlab).await;
    let view = fetch(gitlab_settings(&fixture, GITLAB_TOKEN, None)).await.unwrap();
    assert_eq!(view, gitlab_view());
    assert_eq!(fixture.requests().len(), 5);
    assert!(
        fixture.requests().iter().all(|r| r.header("authorization").is_none()),
        "the token goes in PRIVATE-TOKEN"
    );
}

#[tokio::test]
async fn gitlab_nests_descendant_groups() {
    let fixture = Fixture::start(|req: &Request| {
        if let Some(reply) = gitlab_auth(req) {
            return reply;
        }
        let one = |id: u64, name: &str| {
            gitlab_page(json!([gl_member(id, name, name, "active", json!({}))]), 1, None)
        };
        Routes::default()
            .get("/api/v4/groups/acme%2Fplatform", Reply::ok(gl_group(2, "acme/platform", Some(1))))
            .get(
                "/api/v4/groups/2/descendant_groups?per_page=100",
                gitlab_page(
                    json!([gl_group(3, "acme/platform/sre", Some(2))]),
                    1,
                    Some("/api/v4/groups/2/descendant_groups?id=2&page=2&per_page=100"),
                ),
            )
            .get(
                "/api/v4/groups/2/descendant_groups?id=2&page=2&per_page=100",
                gitlab_page(json!([gl_group(4, "acme/platform/sre/oncall", Some(3))]), 2, None),
            )
            .get("/api/v4/groups/2/members?per_page=100", one(100, "alice"))
            .get("/api/v4/groups/3/members?per_page=100", one(101, "bob"))
            .get("/api/v4/groups/4/members?per_page=100", one(102, "carol"))
            .reply(req)
    })
    .await;
    let view = fetch(gitlab_settings(&fixture, GITLAB_TOKEN, Some("acme/platform"))).await.unwrap();
    let expected = View {
        users: vec![
            user("100", None, Some("alice"), &["2"]),
            user("101", None, Some("bob"), &["2", "3"]),
            user("102", None, Some("carol"), &["2", "3", "4"]),
        ],
        groups: vec![
            group("2", "acme/platform", None),
            group("3", "acme/platform/sre", None),
            group("4", "acme/platform/sre/oncall", None),
        ],
    };
    assert_eq!(view, expected);
}

#[tokio::test]
async fn gitlab_waits_out_rate_limit() {
    let fixture = Fixture::start(|req: &Request| {
        if req.path == "/api/v4/groups/2/members" && req.nth == 0 {
            return Reply::json(429, json!({"message": "Retry later"}))
                .header("retry-after", "1")
                .header("ratelimit-limit", "600")
                .header("ratelimit-remaining", "0")
                .header("ratelimit-reset", epoch_in(1));
        }
        gitlab(req)
    })
    .await;
    let started = Instant::now();
    let view = fetch(gitlab_settings(&fixture, GITLAB_TOKEN, None)).await.unwrap();
    assert_eq!(view, gitlab_view());
    assert_retried(&fixture, "/api/v4/groups/2/members", started, Duration::from_millis(900));
}

#[tokio::test]
async fn gitlab_error_names_endpoint_not_token() {
    let fixture = Fixture::start(gitlab).await;
    let wrong = "glpat-wrong-token-SECRET";
    assert_names_endpoint(
        fetch(gitlab_settings(&fixture, wrong, None)).await,
        "/api/v4/groups",
        "401",
        &[wrong],
    );

    let fixture = Fixture::start(|req: &Request| {
        if gitlab_auth(req).is_none() && req.path.starts_with("/api/v4/groups/") {
            return Reply::json(404, json!({"message": "404 Group Not Found"}));
        }
        gitlab(req)
    })
    .await;
    let result = fetch(gitlab_settings(&fixture, GITLAB_TOKEN, Some("acme/missing"))).await;
    assert_names_endpoint(result, "/api/v4/groups/acme%2Fmissing", "404", &[GITLAB_TOKEN]);
}

// ---------------------------------------------------------------------------------------------
// Keycloak
// ---------------------------------------------------------------------------------------------

const KEYCLOAK_SECRET: &str = "keycloak-client-SECRET";
const KEYCLOAK_TOKEN: &str = "eyJkeycloak-access-token-SECRET";
const KC_TOKEN_PATH: &str = "/realms/acme/protocol/openid-connect/token";
const KC: &str = "/admin/realms/acme";

fn keycloak_settings(fixture: &Fixture, secret: &str) -> DirectoryProvider {
    DirectoryProvider::Keycloak(KeycloakSettings {
        url: fixture.url(),
        realm: "acme".into(),
        client_id: "portcullis-sync".into(),
        client_secret: Credential::new(secret),
    })
}

fn keycloak_auth(req: &Request) -> Option<Reply> {
    if req.path == KC_TOKEN_PATH {
        let good = req.method == "POST"
            && req.form("grant_type").as_deref() == Some("client_credentials")
            && req.form("client_id").as_deref() == Some("portcullis-sync")
            && req.form("client_secret").as_deref() == Some(KEYCLOAK_SECRET);
        return Some(if good {
            Reply::ok(json!({"access_token": KEYCLOAK_TOKEN, "expires_in": 300, "refresh_expires_in": 0,
                             "token_type": "Bearer", "not-before-policy": 0, "scope": "profile email"}))
        } else {
            Reply::json(
                401,
                json!({"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"}),
            )
        });
    }
    if unauthorized(req, "authorization", &format!("Bearer {KEYCLOAK_TOKEN}")) {
        return Some(Reply::json(401, json!({"error": "HTTP 401 Unauthorized"})));
    }
    None
}

fn kc_user(i: usize) -> Value {
    json!({"id": format!("user-{i:03}"), "username": format!("user{i}"), "email": format!("User{i}@Acme.test"),
           "firstName": "User", "lastName": i.to_string(), "enabled": i != 100, "emailVerified": true,
           "createdTimestamp": 1_700_000_000_000u64})
}

fn kc_group(id: &str, path: &str, sub_groups: Vec<Value>, count: usize) -> Value {
    json!({"id": id, "name": path.rsplit('/').next().unwrap(), "path": path, "subGroupCount": count,
           "subGroups": sub_groups, "attributes": {}, "realmRoles": [], "clientRoles": {}})
}

fn kc_page(all: &[Value], req: &Request) -> Reply {
    let param =
        |name: &str| req.query.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse::<usize>().ok());
    let (Some(first), Some(max)) = (param("first"), param("max")) else {
        return Reply::json(400, json!({"error": "fixture wants first and max"}));
    };
    Reply::ok(Value::Array(all.iter().skip(first).take(max).cloned().collect()))
}

/// 101 users (two pages of `max=100`; the last one disabled), groups with their subgroups
/// nested in the listing (Keycloak before 23), and a group of 101 members (two pages).
fn keycloak(req: &Request) -> Reply {
    if let Some(reply) = keycloak_auth(req) {
        return reply;
    }
    let users: Vec<Value> = (0..=100).map(kc_user).collect();
    let member = |i: usize| json!({"id": format!("user-{i:03}"), "username": format!("user{i}")});
    let path_query = |path: &str, extra: &str| {
        let first = req.query.iter().find(|(k, _)| k == "first").map(|(_, v)| v.as_str()).unwrap_or("?");
        format!("{KC}{path}?first={first}&max=100{extra}")
    };
    let (path, page): (&str, Vec<Value>) = match req.path.strip_prefix(KC).unwrap_or("") {
        "/users" => ("/users", users),
        "/groups" => {
            let platform = kc_group("g-plat", "/engineering/platform", vec![], 0);
            let groups = vec![
                kc_group("g-eng", "/engineering", vec![platform], 1),
                kc_group("g-all", "/all", vec![], 0),
            ];
            return Routes::default()
                .get(&path_query("/groups", "&briefRepresentation=false"), kc_page(&groups, req))
                .reply(req);
        }
        "/groups/g-all/members" => ("/groups/g-all/members", (0..=100).map(member).collect()),
        "/groups/g-eng/members" => ("/groups/g-eng/members", vec![member(0)]),
        "/groups/g-plat/members" => ("/groups/g-plat/members", vec![member(1), member(100)]),
        _ => ("/unknown", vec![]),
    };
    Routes::default().get(&path_query(path, ""), kc_page(&page, req)).reply(req)
}

fn keycloak_view() -> View {
    let mut users: Vec<DirectoryUser> = (0..=100)
        .map(|i| {
            let groups: &[&str] = match i {
                0 => &["g-all", "g-eng"],
                1 => &["g-all", "g-eng", "g-plat"],
                100 => &[],
                _ => &["g-all"],
            };
            let email = format!("user{i}@acme.test");
            user(&format!("user-{i:03}"), Some(&email), Some(&format!("User {i}")), groups)
        })
        .collect();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    View {
        users,
        groups: vec![
            group("g-all", "/all", None),
            group("g-eng", "/engineering", None),
            group("g-plat", "/engineering/platform", None),
        ],
    }
}

#[tokio::test]
async fn keycloak_pages_by_first_and_max() {
    let fixture = Fixture::start(keycloak).await;
    let view = fetch(keycloak_settings(&fixture, KEYCLOAK_SECRET)).await.unwrap();
    assert_eq!(view, keycloak_view());
    let firsts = |path: &str| -> Vec<String> {
        fixture
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .filter_map(|r| r.query.iter().find(|(k, _)| k == "first").map(|(_, v)| v.clone()))
            .collect()
    };
    assert_eq!(firsts(&format!("{KC}/users")), ["0", "100"]);
    assert_eq!(firsts(&format!("{KC}/groups/g-all/members")), ["0", "100"]);
    assert_eq!(fixture.count("POST", KC_TOKEN_PATH), 1);
}

/// Keycloak 23 and later: `/groups` leaves `subGroups` empty and says `subGroupCount`; the
/// subgroups come from `/groups/{id}/children`.
fn keycloak_children(req: &Request) -> Reply {
    if let Some(reply) = keycloak_auth(req) {
        return reply;
    }
    let brief = "&briefRepresentation=false";
    let one = |id: &str| json!([{"id": id, "username": id}]);
    Routes::default()
        .get(
            &format!("{KC}/users?first=0&max=100"),
            Reply::ok(json!([
                {"id": "user-a", "username": "a", "enabled": true},
                {"id": "user-b", "username": "b", "firstName": "Bee", "enabled": true},
            ])),
        )
        .get(
            &format!("{KC}/groups?first=0&max=100{brief}"),
            Reply::ok(json!([kc_group("g-eng", "/engineering", vec![], 1)])),
        )
        .get(
            &format!("{KC}/groups/g-eng/children?first=0&max=100{brief}"),
            Reply::ok(json!([kc_group("g-plat", "/engineering/platform", vec![], 1)])),
        )
        .get(
            &format!("{KC}/groups/g-plat/children?first=0&max=100{brief}"),
            Reply::ok(json!([kc_group("g-sre", "/engineering/platform/sre", vec![], 0)])),
        )
        .get(&format!("{KC}/groups/g-eng/members?first=0&max=100"), Reply::ok(json!([])))
        .get(&format!("{KC}/groups/g-plat/members?first=0&max=100"), Reply::ok(one("user-a")))
        .get(&format!("{KC}/groups/g-sre/members?first=0&max=100"), Reply::ok(one("user-b")))
        .reply(req)
}

fn keycloak_children_view() -> View {
    View {
        users: vec![
            user("user-a", None, Some("a"), &["g-eng", "g-plat"]),
            user("user-b", None, Some("Bee"), &["g-eng", "g-plat", "g-sre"]),
        ],
        groups: vec![
            group("g-eng", "/engineering", None),
            group("g-plat", "/engineering/platform", None),
            group("g-sre", "/engineering/platform/sre", None),
        ],
    }
}

#[tokio::test]
async fn keycloak_nests_subgroups_from_children() {
    let fixture = Fixture::start(keycloak_children).await;
    let view = fetch(keycloak_settings(&fixture, KEYCLOAK_SECRET)).await.unwrap();
    assert_eq!(view, keycloak_children_view());
}

#[tokio::test]
async fn keycloak_renews_a_refused_token() {
    let fixture = Fixture::start(|req: &Request| {
        if req.path == format!("{KC}/groups/g-sre/members") && req.nth == 0 {
            return Reply::json(401, json!({"error": "HTTP 401 Unauthorized"}));
        }
        keycloak_children(req)
    })
    .await;
    let view = fetch(keycloak_settings(&fixture, KEYCLOAK_SECRET)).await.unwrap();
    assert_eq!(view, keycloak_children_view());
    assert_eq!(fixture.count("POST", KC_TOKEN_PATH), 2);
}

#[tokio::test]
async fn keycloak_waits_out_rate_limit() {
    let fixture = Fixture::start(|req: &Request| {
        if req.path == format!("{KC}/users") && req.nth == 0 {
            return Reply::json(429, json!({"error": "too_many_requests"})).header("retry-after", "1");
        }
        keycloak_children(req)
    })
    .await;
    let started = Instant::now();
    let view = fetch(keycloak_settings(&fixture, KEYCLOAK_SECRET)).await.unwrap();
    assert_eq!(view, keycloak_children_view());
    assert_retried(&fixture, &format!("{KC}/users"), started, Duration::from_millis(900));
}

#[tokio::test]
async fn keycloak_error_names_endpoint_not_secret() {
    let fixture = Fixture::start(keycloak_children).await;
    let wrong = "wrong-keycloak-SECRET";
    let result = fetch(keycloak_settings(&fixture, wrong)).await;
    assert_names_endpoint(result, KC_TOKEN_PATH, "Invalid client credentials", &[wrong]);

    let fixture = Fixture::start(|req: &Request| {
        if req.path == format!("{KC}/groups") {
            return Reply::json(403, json!({"error": "HTTP 403 Forbidden"}));
        }
        keycloak_children(req)
    })
    .await;
    let result = fetch(keycloak_settings(&fixture, KEYCLOAK_SECRET)).await;
    assert_names_endpoint(result, &format!("{KC}/groups"), "403", &[KEYCLOAK_SECRET, KEYCLOAK_TOKEN]);
}

// ---------------------------------------------------------------------------------------------
// Auth0
// ---------------------------------------------------------------------------------------------

const AUTH0_SECRET: &str = "auth0-client-SECRET";
const AUTH0_TOKEN: &str = "eyJauth0-management-token-SECRET";

fn auth0_settings(fixture: &Fixture, secret: &str) -> DirectoryProvider {
    DirectoryProvider::Auth0(Auth0Settings {
        url: fixture.url(),
        client_id: "auth0-client-id".into(),
        client_secret: Credential::new(secret),
    })
}

fn auth0_auth(req: &Request) -> Option<Reply> {
    if req.path == "/oauth/token" {
        let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let good = req.method == "POST"
            && body["grant_type"] == "client_credentials"
            && body["client_id"] == "auth0-client-id"
            && body["client_secret"] == AUTH0_SECRET
            && body["audience"] == format!("{}/api/v2/", req.base);
        return Some(if good {
            Reply::ok(
                json!({"access_token": AUTH0_TOKEN, "scope": "read:users read:roles", "expires_in": 86400,
                             "token_type": "Bearer"}),
            )
        } else {
            Reply::json(401, json!({"error": "access_denied", "error_description": "Unauthorized"}))
        });
    }
    if unauthorized(req, "authorization", &format!("Bearer {AUTH0_TOKEN}")) {
        return Some(Reply::json(
            401,
            json!({"statusCode": 401, "error": "Unauthorized", "message": "Invalid token",
                   "attributes": {"error": "Invalid token"}}),
        ));
    }
    None
}

fn a0_user(i: usize) -> Value {
    json!({"user_id": format!("auth0|{i:02}"), "email": format!("User{i}@Example.com"), "name": format!("User {i}"),
           "email_verified": true, "blocked": i == 51, "identities": [{"provider": "auth0", "user_id": format!("{i:02}")}]})
}

/// One page of Auth0's `include_totals=true` form, `page`/`per_page` taken from the request.
fn a0_page(key: &str, all: &[Value], req: &Request) -> Reply {
    let param =
        |name: &str| req.query.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse::<usize>().ok());
    let totals = req.query.iter().any(|(k, v)| k == "include_totals" && v == "true");
    let (Some(page), Some(per_page), true) = (param("page"), param("per_page"), totals) else {
        return Reply::json(400, json!({"error": "fixture wants page, per_page and include_totals"}));
    };
    let items: Vec<Value> = all.iter().skip(page * per_page).take(per_page).cloned().collect();
    let mut body =
        json!({"start": page * per_page, "limit": per_page, "length": items.len(), "total": all.len()});
    body[key] = Value::Array(items);
    Reply::ok(body)
}

/// 52 users (two pages of 50; the last one blocked), two roles, and the role members: one
/// role held by everyone (two pages), one by a user and by a Google user the user listing did
/// not reach.
fn auth0(req: &Request) -> Reply {
    if let Some(reply) = auth0_auth(req) {
        return reply;
    }
    if req.method != "GET" || req.query.len() != 3 {
        return Reply::json(
            400,
            json!({"statusCode": 400, "error": "Bad Request", "message": "unexpected query"}),
        );
    }
    let users: Vec<Value> = (0..52).map(a0_user).collect();
    let zed = json!({"user_id": "google-oauth2|999", "email": "Zed@Gmail.com", "name": "Zed"});
    match req.path.as_str() {
        "/api/v2/users" => a0_page("users", &users, req),
        "/api/v2/roles" => a0_page(
            "roles",
            &[
                json!({"id": "rol_admin", "name": "admin", "description": "Admins"}),
                json!({"id": "rol_viewer", "name": "viewer", "description": "Everyone"}),
            ],
            req,
        ),
        "/api/v2/roles/rol_viewer/users" => a0_page("users", &users, req),
        "/api/v2/roles/rol_admin/users" => a0_page("users", &[a0_user(0), a0_user(51), zed], req),
        _ => Reply::json(404, json!({"statusCode": 404, "error": "Not Found", "message": "Not Found"})),
    }
}

fn auth0_view() -> View {
    let mut users: Vec<DirectoryUser> = (0..52)
        .map(|i| {
            let groups: &[&str] = match i {
                0 => &["rol_admin", "rol_viewer"],
                51 => &[],
                _ => &["rol_viewer"],
            };
            let email = format!("user{i}@example.com");
            user(&format!("auth0|{i:02}"), Some(&email), Some(&format!("User {i}")), groups)
        })
        .collect();
    users.push(user("google-oauth2|999", Some("zed@gmail.com"), Some("Zed"), &["rol_admin"]));
    View { users, groups: vec![group("rol_admin", "admin", None), group("rol_viewer", "viewer", None)] }
}

#[tokio::test]
async fn auth0_pages_until_total() {
    let fixture = Fixture::start(auth0).await;
    let view = fetch(auth0_settings(&fixture, AUTH0_SECRET)).await.unwrap();
    assert_eq!(view, auth0_view());
    assert_eq!(fixture.count("GET", "/api/v2/users"), 2);
    assert_eq!(fixture.count("GET", "/api/v2/roles"), 1);
    assert_eq!(fixture.count("GET", "/api/v2/roles/rol_viewer/users"), 2);
    assert_eq!(fixture.count("GET", "/api/v2/roles/rol_admin/users"), 1);
}

#[tokio::test]
async fn auth0_waits_out_rate_limit() {
    let fixture = Fixture::start(|req: &Request| {
        if req.path == "/api/v2/roles" && req.nth == 0 {
            return Reply::json(
                429,
                json!({"statusCode": 429, "error": "Too Many Requests", "message": "Global limit has been reached",
                       "errorCode": "too_many_requests"}),
            )
            .header("x-ratelimit-limit", "50")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", epoch_in(1));
        }
        auth0(req)
    })
    .await;
    let started = Instant::now();
    let view = fetch(auth0_settings(&fixture, AUTH0_SECRET)).await.unwrap();
    assert_eq!(view, auth0_view());
    assert_retried(&fixture, "/api/v2/roles", started, Duration::ZERO);
}

#[tokio::test]
async fn auth0_error_names_endpoint_not_secret() {
    let fixture = Fixture::start(auth0).await;
    let wrong = "wrong-auth0-SECRET";
    assert_names_endpoint(
        fetch(auth0_settings(&fixture, wrong)).await,
        "/oauth/token",
        "access_denied",
        &[wrong],
    );

    let fixture = Fixture::start(|req: &Request| {
        if req.path == "/api/v2/roles" {
            return Reply::json(
                403,
                json!({"statusCode": 403, "error": "Forbidden", "message": "Insufficient scope, expected any of: read:roles",
                       "errorCode": "insufficient_scope"}),
            );
        }
        auth0(req)
    })
    .await;
    let result = fetch(auth0_settings(&fixture, AUTH0_SECRET)).await;
    assert_names_endpoint(result, "/api/v2/roles", "403", &[AUTH0_SECRET, AUTH0_TOKEN]);
}
