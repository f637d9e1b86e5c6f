//! PPL routes through the whole system.

use portcullis_e2e::TestEnv;

#[tokio::test]
async fn a_ppl_claim_policy_allows_members_and_denies_others() {
    let env = TestEnv::start().await;
    let alice = env.browser();
    assert_eq!(alice.login(&env.admin_url("/"), "alice").await.final_response.status(), 200);
    let bob = env.browser();
    let denied = bob.login(&env.admin_url("/"), "bob").await.final_response;
    assert_eq!(denied.status(), 403);
    assert!(denied.text().await.unwrap().contains("claim-unauthorized"));
}

#[tokio::test]
async fn policies_that_read_the_request_decide_every_request_anew() {
    let env = TestEnv::start().await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.api_url("/items"), "bob").await.final_response.status(), 200);

    // Same session, same route: the method and the path decide, and no decision is reused.
    let post =
        browser.client.post(env.api_url("/items")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(post.status(), 403);
    let body: serde_json::Value = post.json().await.unwrap();
    assert_eq!(body["reasons"], serde_json::json!(["http-method-unauthorized"]));
    assert_eq!(browser.get_json(&env.api_url("/items")).await.unwrap().status(), 200);
    let internal = browser.get_json(&env.api_url("/internal/metrics")).await.unwrap();
    assert_eq!(internal.status(), 403);
    let body: serde_json::Value = internal.json().await.unwrap();
    assert_eq!(body["reasons"], serde_json::json!(["http-path-ok"]));
    assert_eq!(browser.get_json(&env.api_url("/items/2")).await.unwrap().status(), 200);
    assert!(
        env.upstream
            .requests()
            .iter()
            .all(|r| r.method != "POST" && !r.path_and_query.starts_with("/internal"))
    );
}

#[tokio::test]
async fn request_hygiene_refuses_tricks_before_any_decision() {
    let env = TestEnv::start().await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    let hits = env.upstream.requests().len();
    let get = |path: &str| browser.client.get(env.app_url(path)).header("accept", "application/json");

    // Encoded slashes and backslashes: 400 (Pomerium's default).
    for path in ["/a%2Fb", "/a%5cb"] {
        assert_eq!(get(path).send().await.unwrap().status(), 400, "{path}");
    }
    // Dot segments are resolved before matching: the upstream sees the normalised path.
    assert_eq!(get("/public/../private/./x").send().await.unwrap().status(), 200);
    assert_eq!(env.upstream.last().unwrap().path_and_query, "/private/x");
    // Header names with underscores: 400.
    let r = get("/h").header("X_Forwarded_User", "admin").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "bad_request");
    assert_eq!(body["request_id"], id.as_str(), "the error names its request id");
    // Too many headers, or too large: 431.
    let mut many = get("/many");
    for i in 0..150 {
        many = many.header(format!("x-h-{i}"), "1");
    }
    assert_eq!(many.send().await.unwrap().status(), 431);
    let big = get("/big").header("x-big", "a".repeat(100 * 1024)).send().await.unwrap();
    assert_eq!(big.status(), 431);
    assert_eq!(env.upstream.requests().len(), hits + 1, "only the normalised request reached the upstream");
}

/// One response from `stream`, reading on from what `buf` holds: status, headers (names in
/// lower case) and body (none for a `HEAD`).
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    async fn more(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "the connection closed mid-response: {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        more(stream, buf).await;
    };
    let head = String::from_utf8(buf[..end].to_vec()).expect("a text head");
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (name, value) = l.split_once(':').expect("a field");
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let length =
        headers.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse::<usize>().unwrap());
    let mut body = Vec::new();
    if head_only {
    } else if let Some(length) = length {
        while buf.len() < length {
            more(stream, buf).await;
        }
        body = buf.drain(..length).collect();
    } else if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.ends_with("chunked")) {
        loop {
            let line = loop {
                if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                more(stream, buf).await;
            };
            let size = usize::from_str_radix(std::str::from_utf8(&buf[..line]).unwrap(), 16).unwrap();
            while buf.len() < line + 2 + size + 2 {
                more(stream, buf).await;
            }
            body.extend_from_slice(&buf[line + 2..line + 2 + size]);
            buf.drain(..line + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
    }
    (status, headers, body)
}

#[tokio::test]
async fn one_connection_carries_plain_pipelined_and_body_requests_in_order() {
    use portcullis_e2e::upstream::UPSTREAM_BODY;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let env = TestEnv::start().await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    let url = env.app_url("/").parse().unwrap();
    let cookie = reqwest::cookie::CookieStore::cookies(&*browser.jar, &url).expect("the session cookie");
    let cookie = cookie.to_str().unwrap().to_owned();
    let before = env.upstream.requests().len();
    let host = format!("app.localhost:{}", env.port);
    let request = |line: &str, extra: &str| {
        format!("{line} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n{extra}\r\n")
    };
    let field = |headers: &[(String, String)], name: &str| {
        headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect::<Vec<_>>()
    };
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", env.port)).await.unwrap();
    let mut buf = Vec::new();

    stream.write_all(request("GET /one", "").as_bytes()).await.unwrap();
    let (status, headers, body) = read_response(&mut stream, &mut buf, false).await;
    assert_eq!((status, body.as_slice()), (200, UPSTREAM_BODY.as_bytes()));
    assert_eq!(field(&headers, "x-request-id").len(), 1, "{headers:?}");
    assert_eq!(field(&headers, "date").len(), 1, "{headers:?}");
    assert!(field(&headers, "connection").is_empty(), "kept alive: {headers:?}");

    // Two requests in one write are answered in order; HEAD gets GET's length and no body.
    let two = request("GET /two", "") + &request("HEAD /three", "");
    stream.write_all(two.as_bytes()).await.unwrap();
    let (status, _, body) = read_response(&mut stream, &mut buf, false).await;
    assert_eq!((status, body.as_slice()), (200, UPSTREAM_BODY.as_bytes()));
    let (status, headers, _) = read_response(&mut stream, &mut buf, true).await;
    assert_eq!(status, 200);
    assert_eq!(field(&headers, "content-length"), [UPSTREAM_BODY.len().to_string()]);

    // A request with a body, on the same connection, and one after it.
    let post = request("POST /four", "Content-Length: 5\r\n") + "hello";
    stream.write_all(post.as_bytes()).await.unwrap();
    let (status, _, body) = read_response(&mut stream, &mut buf, false).await;
    assert_eq!((status, body.as_slice()), (200, UPSTREAM_BODY.as_bytes()));
    stream.write_all(request("GET /five", "Connection: close\r\n").as_bytes()).await.unwrap();
    let (status, headers, _) = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(status, 200);
    assert_eq!(field(&headers, "connection"), ["close"]);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))) && buf.is_empty(), "closed after the answer: {rest:?}");

    let seen: Vec<_> = env.upstream.requests()[before..]
        .iter()
        .map(|r| (r.method.clone(), r.path_and_query.clone(), r.body.clone()))
        .collect();
    let want = [
        ("GET", "/one", ""),
        ("GET", "/two", ""),
        ("HEAD", "/three", ""),
        ("POST", "/four", "hello"),
        ("GET", "/five", ""),
    ]
    .map(|(m, p, b)| (m.to_owned(), p.to_owned(), b.as_bytes().to_vec()));
    assert_eq!(seen, want);
}

#[tokio::test]
async fn route_options_rewrite_paths_hosts_and_headers_as_pomerium_does() {
    let env = TestEnv::start().await;
    let browser = env.browser();
    let rewrite = |path: &str| env.url_on("rewrite.localhost", path);
    assert_eq!(browser.login(&rewrite("/api/items?x=1"), "bob").await.final_response.status(), 200);

    // prefix + prefix_rewrite, `to` with a base path, preserve_host_header, header options.
    let r = browser
        .client
        .get(rewrite("/api/items?x=1"))
        .header("x-remove-me", "secret")
        .header("x-keep-me", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY", "set_response_headers overrides the default");
    assert_eq!(r.headers()["x-xss-protection"], "1; mode=block", "Pomerium's other default stays");
    let seen = env.upstream.last().unwrap();
    assert_eq!(seen.path_and_query, "/base/v2/items?x=1");
    assert_eq!(seen.header("host"), Some(format!("rewrite.localhost:{}", env.port).as_str()));
    assert_eq!(seen.header("x-custom"), Some("hello"));
    assert!(
        seen.header("x-identity").is_some_and(|v| v.starts_with("Bearer ey")),
        "${{pomerium.jwt}} filled"
    );
    assert!(seen.header("x-remove-me").is_none());
    // Token templates: the session's tokens (authorize seals them for the proxy on NATS).
    let access = seen.header("x-access-token").unwrap_or_default();
    assert!(access.len() > 20 && !access.contains("${"), "access token filled: {access:?}");
    let id_token = seen.header("x-id-token").unwrap_or_default();
    assert_eq!(id_token.split('.').count(), 3, "an ID token (JWT) filled: {id_token:?}");
    assert_eq!(seen.header("x-keep-me"), Some("1"));
    assert!(seen.header("x-portcullis-jwt-assertion").is_none(), "pass_identity_headers: false");

    // regex + regex_rewrite (the regex route comes first in the file).
    assert_eq!(browser.get_html(&rewrite("/re/42")).await.unwrap().status(), 200);
    assert_eq!(env.upstream.last().unwrap().path_and_query, "/numbers/42");
    assert_eq!(browser.get_json(&rewrite("/re/abc")).await.unwrap().status(), 404, "regex is a full match");

    // Wildcard hosts match one or more labels, not the bare domain.
    let anon = env.browser();
    assert_eq!(anon.get_json(&env.url_on("a.wild.localhost", "/w")).await.unwrap().status(), 200);
    assert_eq!(anon.get_json(&env.url_on("deep.b.wild.localhost", "/w")).await.unwrap().status(), 200);
    assert_eq!(anon.get_json(&env.url_on("wild.localhost", "/w")).await.unwrap().status(), 404);

    // redirect and response routes.
    let go = anon.get_json(&env.url_on("go.localhost", "/docs?q=1")).await.unwrap();
    assert_eq!(go.status(), 302);
    assert_eq!(go.headers()["location"], "https://example.com/docs?q=1");
    let fixed = anon.get_json(&env.url_on("static.localhost", "/")).await.unwrap();
    assert_eq!(fixed.status(), 200);
    assert_eq!(fixed.text().await.unwrap(), "static ok");
}

#[tokio::test]
async fn requests_are_spread_across_upstreams() {
    let env = TestEnv::start().await;
    let browser = env.browser();
    for i in 0..10 {
        let r = browser.get_json(&env.url_on("lb.localhost", &format!("/lb/{i}"))).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let count = |u: &portcullis_e2e::Upstream| {
        u.requests().iter().filter(|r| r.path_and_query.starts_with("/lb/")).count()
    };
    assert_eq!((count(&env.upstream), count(&env.upstream2)), (5, 5), "round robin over two upstreams");

    // Pomerium's weights (`URL,weight`): three to one, interleaved.
    for i in 0..8 {
        let r = browser.get_json(&env.url_on("lb.localhost", &format!("/weighted/{i}"))).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let weighted = |u: &portcullis_e2e::Upstream| {
        u.requests().iter().filter(|r| r.path_and_query.starts_with("/weighted/")).count()
    };
    assert_eq!((weighted(&env.upstream), weighted(&env.upstream2)), (6, 2), "weights 3 and 1");
}

#[tokio::test]
async fn websockets_are_proxied_both_ways_after_authorization() {
    use portcullis_e2e::websocket::{connect, read_frame, write_frame};
    use reqwest::cookie::CookieStore;
    let env = TestEnv::start().await;
    let browser = env.browser();

    // Without a session the upgrade is refused like any request.
    let anonymous = connect(env.port, "ws.localhost", "/chat", None).await;
    assert!(anonymous.as_ref().err().is_some_and(|s| s.contains(" 401 ")), "{:?}", anonymous.err());

    assert_eq!(browser.login(&env.url_on("ws.localhost", "/"), "alice").await.final_response.status(), 200);
    let url = url::Url::parse(&env.url_on("ws.localhost", "/")).unwrap();
    let cookie = browser.jar.cookies(&url).map(|v| v.to_str().unwrap().to_owned());
    let mut ws =
        connect(env.port, "ws.localhost", "/chat", cookie.as_deref()).await.expect("101 through the proxy");
    for message in ["hello", "through the portcullis"] {
        write_frame(&mut ws, 1, message.as_bytes(), true).await.unwrap();
        let (opcode, payload) = read_frame(&mut ws).await.expect("echo");
        assert_eq!((opcode, payload.as_slice()), (1, message.as_bytes()));
    }
    let big = vec![b'x'; 70_000];
    write_frame(&mut ws, 2, &big, true).await.unwrap();
    assert_eq!(read_frame(&mut ws).await.expect("big echo").1.len(), big.len());

    // A route without allow_websockets does not pass the upgrade on.
    assert_eq!(browser.login(&env.url_on("nows.localhost", "/"), "alice").await.final_response.status(), 200);
    let url = url::Url::parse(&env.url_on("nows.localhost", "/")).unwrap();
    let cookie = browser.jar.cookies(&url).map(|v| v.to_str().unwrap().to_owned());
    let refused = connect(env.port, "nows.localhost", "/chat", cookie.as_deref()).await;
    assert!(refused.is_err(), "no 101 without allow_websockets");
}

#[tokio::test]
async fn an_upstream_slower_than_the_route_timeout_gets_504() {
    use std::time::{Duration, Instant};
    let env = TestEnv::start().await;
    let browser = env.browser();
    // The upstream answers `/__slow` after 5 s; the route's timeout is 300ms.
    for _ in 0..2 {
        let start = Instant::now();
        let r = browser.get_json(&env.url_on("ws.localhost", "/__slow")).await.unwrap();
        let took = start.elapsed();
        assert_eq!(r.status(), 504);
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "took {took:?}");
    }
    assert!(env.logs().contains("upstream timed out"), "the proxy says why");
    // Requests that are in time still pass on the same thread.
    let r = browser.get_json(&env.url_on("ws.localhost", "/__stall")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn idle_timeout_closes_quiet_bodies_and_websockets() {
    use portcullis_e2e::websocket::{connect, read_frame, write_frame};
    use reqwest::cookie::CookieStore;
    use std::time::Duration;
    let env = TestEnv::start().await;
    let browser = env.browser();

    // An upstream that sends its headers and a first chunk, then nothing (idle_timeout 300ms).
    let r = browser.get_json(&env.url_on("ws.localhost", "/__stall")).await.unwrap();
    assert_eq!(r.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(10), r.bytes()).await.expect("cut off, not hung");
    assert!(body.is_err(), "the body ends in an error, not a clean end: {body:?}");
    assert!(env.logs().contains("idle_timeout"), "the proxy says why");

    // A websocket on a route with idle_timeout 300ms: traffic keeps it open...
    assert_eq!(browser.login(&env.url_on("ws.localhost", "/"), "alice").await.final_response.status(), 200);
    let url = url::Url::parse(&env.url_on("ws.localhost", "/")).unwrap();
    let cookie = browser.jar.cookies(&url).map(|v| v.to_str().unwrap().to_owned());
    let mut ws = connect(env.port, "ws.localhost", "/idle", cookie.as_deref()).await.expect("101");
    for i in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let message = format!("tick {i}");
        write_frame(&mut ws, 1, message.as_bytes(), true).await.unwrap();
        assert_eq!(read_frame(&mut ws).await.expect("still open").1, message.as_bytes());
    }
    // ...and silence closes it.
    let closed = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut ws)).await;
    assert_eq!(closed.expect("closed, not hung"), None);
}

#[tokio::test]
async fn claim_headers_come_from_authorize_and_groups_are_filtered() {
    use base64::Engine;
    let env = TestEnv::start().await;
    let browser = env.browser();
    let url = env.url_on("claims.localhost", "/me");
    assert_eq!(browser.login(&url, "alice").await.final_response.status(), 200);
    let r = browser
        .client
        .get(&url)
        .header("x-email", "ceo@example.com")
        .header("x-groups", "everything")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = env.upstream.last().unwrap();
    assert_eq!(seen.headers_named("x-email"), ["alice@example.com"], "the client's copy is dropped");
    assert_eq!(seen.headers_named("x-groups"), ["admins"], "jwt_groups_filter keeps only admins");
    let jwt = seen.header("x-portcullis-jwt-assertion").unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["groups"], serde_json::json!(["admins"]));
}

#[tokio::test]
async fn https_upstreams_are_verified_with_the_routes_tls_settings() {
    let env = TestEnv::start().await;
    let anon = env.browser();
    let get = |host: &str| {
        let url = env.url_on(host, "/secure");
        let anon = &anon;
        async move { anon.get_json(&url).await }
    };
    assert_eq!(
        get("tlsca.localhost").await.unwrap().status(),
        200,
        "custom CA + server name: {}",
        env.logs()
    );
    assert_eq!(env.tls_upstream.last().unwrap().path_and_query, "/secure");
    let hits = env.tls_upstream.requests().len();
    assert_eq!(get("tlsnoca.localhost").await.unwrap().status(), 502, "an unknown CA is refused");
    assert_eq!(env.tls_upstream.requests().len(), hits, "nothing reached the upstream");
    assert_eq!(get("tlsskip.localhost").await.unwrap().status(), 200, "tls_skip_verify");
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_replaced_when_the_upstream_closes_them() {
    let env = TestEnv::start().await;
    let anon = env.browser();
    let get = |path: &'static str, host: &'static str| {
        let (anon, url) = (&anon, env.url_on(host, path));
        async move {
            let r = anon.get_json(&url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // Sequential requests on one client connection reuse one upstream connection.
    for _ in 0..10 {
        assert_eq!(
            get("/k", "keepalive.localhost").await,
            (200, portcullis_e2e::upstream::UPSTREAM_BODY.into())
        );
    }
    let kept = env.upstream2.connections();
    assert!((1..=2).contains(&kept), "10 requests over {kept} upstream connections");

    // An upstream that says `Connection: close`: the next request gets a new connection.
    assert_eq!(get("/__close", "keepalive.localhost").await.0, 200);
    for _ in 0..5 {
        assert_eq!(get("/k", "keepalive.localhost").await.0, 200);
    }
    let after = env.upstream2.connections();
    assert!(after > kept && after <= kept + 2, "after a close: {after} connections (before {kept})");

    // An upstream that closes every connection after one answer without saying so: the proxy
    // may find its idle connection gone only as it sends, and must send again, not fail.
    for i in 0..20 {
        assert_eq!(
            get("/h", "hangup.localhost").await,
            (200, portcullis_e2e::upstream::HANGUP_BODY.into()),
            "request {i} to an upstream that hangs up"
        );
    }
    assert_eq!(env.hangup.connections(), 20, "one connection per answer");
}
