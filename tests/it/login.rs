//! The login flow, the identity JWT, header hygiene and sign-out.

use portcullis_schemas::events::{SESSION_CREATED, SESSION_REVOKED};
use std::time::Duration;

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use portcullis_e2e::portcullis::{COOKIE_NAME, SHARED_SECRET};
use portcullis_e2e::upstream::UPSTREAM_BODY;
use portcullis_e2e::{TestEnv, eventually};
use portcullis_runtime::crypto::{Purpose, Secret, Signer};
use serde_json::Value;

#[tokio::test]
async fn unauthenticated_requests_are_sent_to_sign_in_and_never_reach_the_upstream() {
    let env = TestEnv::start().await;
    let browser = env.browser();

    let html = browser.get_html(&env.app_url("/reports?q=1")).await.unwrap();
    assert_eq!(html.status(), 302);
    let location = html.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&env.auth_url("/.portcullis/sign_in?")), "{location}");
    assert!(location.contains("redirect_uri=http%3A%2F%2Fapp.localhost"), "{location}");

    let api = browser.get_json(&env.app_url("/reports?q=1")).await.unwrap();
    assert_eq!(api.status(), 401);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["reasons"][0], "user-unauthenticated");

    assert!(
        env.upstream.requests().iter().all(|r| !r.path_and_query.starts_with("/reports")),
        "upstream was hit"
    );
}

#[tokio::test]
async fn login_lands_on_the_original_url_with_a_verifiable_identity_jwt() {
    let env = TestEnv::start().await;
    let browser = env.browser();
    let trace = browser.login(&env.app_url("/dashboard?tab=2"), "alice").await;

    assert_eq!(trace.final_response.status(), 200, "hops: {:?}\n{}", trace.hops, env.logs());
    assert_eq!(trace.hops.last().unwrap().url, env.app_url("/dashboard?tab=2"));
    assert_eq!(trace.final_response.text().await.unwrap(), UPSTREAM_BODY);

    let seen = env.upstream.last().expect("upstream hit");
    assert_eq!(seen.path_and_query, "/dashboard?tab=2");
    assert!(seen.header("cookie").is_none_or(|c| !c.contains(COOKIE_NAME)), "session cookie leaked upstream");
    assert_eq!(seen.header("x-forwarded-host"), Some(format!("app.localhost:{}", env.port).as_str()));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    let jwt = seen.header("x-portcullis-jwt-assertion").expect("identity JWT");

    let jwks: JwkSet = browser
        .get_json(&env.app_url("/.well-known/portcullis/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("kid in JWKS");
    let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["app.localhost"]);
    validation.set_issuer(&["app.localhost"]);
    let claims =
        jsonwebtoken::decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["groups"], serde_json::json!(["admins", "staff"]));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let sid = claims["sid"].as_str().expect("sid");
    assert_eq!(env.session_ids().await, vec![sid.to_owned()], "the session is in KV");

    let created: Vec<Value> =
        env.events().await.into_iter().filter(|e| e["type"] == SESSION_CREATED).collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["subject"], sid);
    assert_eq!(created[0]["specversion"], "1.0");
    assert_eq!(created[0]["data"]["email"], "alice@example.com");
    assert!(!created[0].to_string().contains("token"), "events never carry tokens");

    let user_page = browser.get_html(&env.app_url("/.portcullis/")).await.unwrap();
    assert_eq!(user_page.status(), 200);
    let page = user_page.text().await.unwrap();
    assert!(
        page.contains("alice@example.com") && page.contains("Alice Example") && page.contains("admins"),
        "{page}"
    );
}

#[tokio::test]
async fn a_user_the_policy_does_not_allow_gets_403_with_the_reason() {
    let env = TestEnv::start().await;
    let browser = env.browser();
    let trace = browser.login(&env.app_url("/secret"), "mallory").await;
    assert_eq!(trace.final_response.status(), 403);
    let page = trace.final_response.text().await.unwrap();
    assert!(page.contains("domain-unauthorized"), "{page}");
    assert!(env.upstream.requests().iter().all(|r| r.path_and_query != "/secret"), "upstream was hit");

    let api = browser.get_json(&env.app_url("/secret")).await.unwrap();
    assert_eq!(api.status(), 403);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["reasons"], serde_json::json!(["domain-unauthorized"]));
}

#[tokio::test]
async fn client_sent_identity_headers_never_reach_the_upstream() {
    let env = TestEnv::start().await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "bob").await.final_response.status(), 200);
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    let r = browser
        .client
        .get(env.app_url("/forged"))
        .header("accept", "text/html")
        .header("X-Portcullis-Jwt-Assertion", forged)
        .header("X-Pomerium-Jwt-Assertion", forged)
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Real-IP", "6.6.6.6")
        .header("True-Client-IP", "6.6.6.6")
        .header("X-Client-IP", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = env.upstream.last().unwrap();
    assert_eq!(seen.path_and_query, "/forged");
    let assertions = seen.headers_named("x-portcullis-jwt-assertion");
    assert_eq!(assertions.len(), 1);
    assert_ne!(assertions[0], forged);
    assert!(seen.header("x-pomerium-jwt-assertion").is_none());
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    // Client-IP headers apps trust (chi's RealIP, nginx's real_ip module) come from the peer
    // address or not at all.
    assert_eq!(seen.headers_named("x-real-ip"), ["127.0.0.1"]);
    assert!(seen.header("true-client-ip").is_none() && seen.header("x-client-ip").is_none());

    // Without a session the forged header gets nowhere either.
    let anonymous = env.browser();
    let r = anonymous
        .client
        .get(env.app_url("/forged2"))
        .header("X-Portcullis-Jwt-Assertion", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(env.upstream.requests().iter().all(|r| r.path_and_query != "/forged2"));
}

#[tokio::test]
async fn sign_out_revokes_the_session_everywhere() {
    let env = TestEnv::start().await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    let sid = env.session_ids().await.pop().expect("a session");

    let confirm = browser.get_html(&env.app_url("/.portcullis/sign_out")).await.unwrap();
    assert_eq!(confirm.status(), 200, "GET only asks to confirm");
    assert_eq!(env.session_ids().await.len(), 1);

    let out = browser
        .client
        .post(env.app_url("/.portcullis/sign_out"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    let location = out.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/session/end?", env.idp.issuer)), "{location}");
    assert!(location.contains("id_token_hint="), "{location}");
    let cleared = out.headers().get_all("set-cookie").iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with(&format!("{COOKIE_NAME}=;")) && c.contains("Max-Age=0")
    });
    assert!(cleared, "the session cookie is removed");

    assert!(env.session_ids().await.is_empty(), "the session left KV");
    let revoked = eventually("session.revoked on the stream", Duration::from_secs(5), || async {
        env.events().await.into_iter().find(|e| e["type"] == SESSION_REVOKED)
    })
    .await;
    assert_eq!(revoked["subject"], sid.as_str());
    assert_eq!(revoked["data"]["reason"], "sign_out");

    // Even a browser that kept the old cookie is sent to sign in.
    let again = browser.get_html(&env.app_url("/after")).await.unwrap();
    assert_eq!(again.status(), 302);
    assert!(again.headers()["location"].to_str().unwrap().contains("/.portcullis/sign_in"));
}

#[tokio::test]
async fn replayed_tampered_or_forged_login_steps_get_400_and_create_no_session() {
    let env = TestEnv::start().await;
    let browser = env.browser();
    let trace = browser.login(&env.app_url("/"), "alice").await;
    assert_eq!(trace.final_response.status(), 200);
    assert_eq!(env.session_ids().await.len(), 1);
    let callback = trace.hop("/oauth2/callback").expect("callback hop").url.clone();
    let sign_in = trace.hop("/.portcullis/sign_in").expect("sign-in hop").url.clone();

    // A replayed callback: the login state was consumed.
    let replay = browser.get_html(&callback).await.unwrap();
    assert_eq!(replay.status(), 400);

    // A tampered state.
    let tampered = callback.replace("state=", "state=x");
    assert_eq!(browser.get_html(&tampered).await.unwrap().status(), 400);

    // A sign-in URL with a bad signature, or a redirect swapped after signing.
    let bad_sig = format!("{}AAAA", sign_in);
    assert_eq!(browser.get_html(&bad_sig).await.unwrap().status(), 400);
    let swapped = sign_in.replace("app.localhost", "evil.localhost");
    assert_eq!(browser.get_html(&swapped).await.unwrap().status(), 400);

    // A correctly signed but expired sign-in URL.
    let signer = Signer::new(&Secret::from_base64(SHARED_SECRET).unwrap(), Purpose::SignInUrl);
    let auth = url::Url::parse(&env.auth_url("/")).unwrap();
    let expired = portcullis_runtime::flow::sign_in_url(
        &auth,
        &signer,
        &env.app_url("/"),
        "binding",
        portcullis_runtime::now_unix() - 3600,
    );
    let r = browser.get_html(expired.as_str()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("expired"));

    // The route-host handoff link: useless in another browser, and used up in this one.
    let handoff = trace.hop("/.portcullis/callback").expect("handoff hop").url.clone();
    let stranger = env.browser();
    assert_eq!(stranger.get_html(&handoff).await.unwrap().status(), 400, "a leaked link gives nothing");
    assert_eq!(browser.get_html(&handoff).await.unwrap().status(), 400, "the link is single-use");

    // A forged callback handle on the route host.
    let forged = browser.get_html(&env.app_url("/.portcullis/callback?handle=AAAA")).await.unwrap();
    assert_eq!(forged.status(), 400);

    assert_eq!(env.session_ids().await.len(), 1, "no new session was created");
}
