//! Configuration as users meet it: a Pomerium config.yaml over TLS, and `check-config`.

use std::process::Command;

use portcullis_e2e::portcullis::{Options, binary};
use portcullis_e2e::{TempDir, TestEnv};

#[tokio::test]
async fn a_pomerium_config_runs_unchanged_over_tls_with_http2() {
    let env = TestEnv::start_with(Options { tls: true, ..Options::default() }).await;
    let browser = env.browser();
    let trace = browser.login(&env.app_url("/tls"), "alice").await;
    assert_eq!(trace.final_response.status(), 200, "{}", env.logs());
    assert_eq!(trace.final_response.version(), reqwest::Version::HTTP_2, "ALPN negotiated h2");

    let callback = trace.hop("/.portcullis/callback").expect("route-host callback");
    let cookie = callback
        .set_cookies
        .iter()
        .find(|c| c.starts_with("_pomerium="))
        .expect("Pomerium's default cookie name");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }

    let seen = env.upstream.last().unwrap();
    assert_eq!(seen.path_and_query, "/tls");
    let again = browser.get_html(&env.app_url("/tls")).await.unwrap();
    assert_eq!(again.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains; preload");
    assert_eq!(again.headers()["x-frame-options"], "SAMEORIGIN");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert!(seen.header("x-portcullis-jwt-assertion").is_some());

    // allowed_users matches by email: bob is refused.
    let bob = env.browser();
    assert_eq!(bob.login(&env.app_url("/tls"), "bob").await.final_response.status(), 403);
}

fn check_config(yaml: &str) -> (i32, String) {
    let dir = TempDir::new("check");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(binary())
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run check-config");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn check_config_accepts_a_valid_file_and_names_every_bad_field() {
    let valid = "address: :8443\ninsecure_server: true\nauthenticate_service_url: https://auth.example.com\n\
                 idp_provider_url: https://idp.example.com\nidp_client_id: c\nidp_client_secret: s\n\
                 shared_secret: c2hhcmVkLXNlY3JldC1mb3ItdGVzdHMtb25seS0xMjM=\n\
                 routes:\n  - from: https://app.example.com\n    to: http://127.0.0.1:9000\n    allow_any_authenticated_user: true\n\
                 log_level: debug\n";
    let (code, out) = check_config(valid);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (1 routes)"), "{out}");
    assert!(out.contains("log_level: unknown or unsupported key"), "{out}");

    let invalid = valid
        .replace("shared_secret: c2hhcmVkLXNlY3JldC1mb3ItdGVzdHMtb25seS0xMjM=", "shared_secret: tooshort")
        .replace("from: https://app.example.com", "from: app.example.com")
        .replace("allow_any_authenticated_user: true", "policy: {allow: {or: [{device: {is: x}}]}}");
    let (code, out) = check_config(&invalid);
    assert_eq!(code, 2, "{out}");
    for field in ["shared_secret:", "routes[0].from:", "routes[0].policy:"] {
        assert!(out.contains(field), "{field} not named in: {out}");
    }

    let (code, out) = check_config(": not yaml :\n  - [");
    assert_eq!(code, 2, "{out}");
}

#[tokio::test]
async fn policy_eval_prints_the_route_the_decision_and_the_reasons() {
    let env = TestEnv::start().await;
    let app = env.app_url("/reports");
    let (code, out, err) = env.cli(&["policy", "eval", "--email", "alice@example.com", "GET", &app]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("routes[0]") && out.contains("decision: allow") && out.contains("reasons:  domain-ok"),
        "{out}"
    );

    let (_, out, _) = env.cli(&["policy", "eval", "--email", "mallory@evil.example", "GET", &app]).await;
    assert!(out.contains("decision: deny (403)") && out.contains("domain-unauthorized"), "{out}");

    let (_, out, _) = env.cli(&["policy", "eval", "GET", &env.admin_url("/")]).await;
    assert!(
        out.contains("routes[1]") && out.contains("sign in first") && out.contains("user-unauthenticated"),
        "{out}"
    );

    let api = env.api_url("/items");
    let (_, out, _) = env.cli(&["policy", "eval", "--email", "bob@example.com", "POST", &api]).await;
    assert!(out.contains("routes[2]") && out.contains("http-method-unauthorized"), "{out}");

    let (_, out, _) = env.cli(&["policy", "eval", "GET", "http://nowhere.localhost/"]).await;
    assert!(out.contains("route:    none"), "{out}");
}

#[tokio::test]
async fn editing_the_config_file_changes_routing_and_policy_without_a_restart() {
    use std::time::Duration;
    let env = TestEnv::start().await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    let started_log = env.logs();

    // Tighten the app route's policy and add a new public route.
    let original = std::fs::read_to_string(&env.config_path).unwrap();
    let edited = original.replace(
        "    allowed_domains:\n      - example.com\n",
        "    allowed_domains:\n      - example.org\n",
    ) + &format!(
        "  - from: http://fresh.localhost\n    to: {}\n    allow_public_unauthenticated_access: true\n",
        env.upstream.url()
    );
    assert_ne!(edited, original);
    std::fs::write(&env.config_path, edited).unwrap();
    portcullis_e2e::eventually("the new policy applies", Duration::from_secs(10), || async {
        let r = browser.get_json(&env.app_url("/after-edit")).await.ok()?;
        (r.status() == 403).then_some(())
    })
    .await;
    let fresh = env.url_on("fresh.localhost", "/new");
    assert_eq!(env.browser().get_json(&fresh).await.unwrap().status(), 200, "the new route serves");
    // Sign-in works for the new host too (authenticate follows the file as well).
    let edited = std::fs::read_to_string(&env.config_path).unwrap()
        + &format!(
            "  - from: http://fresh2.localhost\n    to: {}\n    allow_any_authenticated_user: true\n",
            env.upstream.url()
        );
    std::fs::write(&env.config_path, edited).unwrap();
    let fresh2 = env.url_on("fresh2.localhost", "/signed-in");
    portcullis_e2e::eventually("the second edit applies", Duration::from_secs(10), || async {
        (env.browser().get_json(&fresh2).await.ok()?.status() == 401).then_some(())
    })
    .await;
    assert_eq!(env.browser().login(&fresh2, "bob").await.final_response.status(), 200, "{}", env.logs());

    // A broken edit is refused; the running configuration stays.
    std::fs::write(&env.config_path, "routes: [this is not: valid").unwrap();
    portcullis_e2e::eventually("the broken edit is noticed and refused", Duration::from_secs(10), || async {
        env.logs().contains("configuration not reloaded").then_some(())
    })
    .await;
    assert_eq!(env.browser().get_json(&fresh).await.unwrap().status(), 200, "still the last good routes");
    assert!(env.logs().starts_with(&started_log), "the same processes kept running");
}

#[tokio::test]
async fn client_certificates_are_required_and_matched_by_policy() {
    let env = TestEnv::start_with(Options { tls: true, mtls: true, ..Options::default() }).await;
    let browser = env.browser();
    assert_eq!(
        browser.login(&env.app_url("/mtls"), "alice").await.final_response.status(),
        200,
        "{}",
        env.logs()
    );

    // Without a client certificate: 495 (Pomerium's default with a client CA).
    let bare = env.browser_without_certificate();
    let r = bare.get_json(&env.app_url("/mtls")).await.unwrap();
    assert_eq!(r.status().as_u16(), 495);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["reasons"], serde_json::json!(["invalid-client-certificate"]));

    // A look-alike certificate from an untrusted CA (same CA name, same SANs): the handshake
    // completes and every request gets the 495 page, never the policy (the SAN route below
    // would allow these names).
    let rogue = env.browser_with_untrusted_certificate();
    let r = rogue.get_json(&env.app_url("/mtls")).await.unwrap();
    assert_eq!(r.status().as_u16(), 495);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["reasons"], serde_json::json!(["invalid-client-certificate"]));
    let r = rogue.get_html(&format!("https://cert.localhost:{}/san/device", env.port)).await.unwrap();
    assert_eq!(r.status().as_u16(), 495);
    assert!(r.text().await.unwrap().contains("495"));
    assert!(
        env.upstream.requests().iter().all(|q| q.path_and_query != "/san/device"),
        "nothing reached the upstream"
    );

    // A route whose policy names the certificate's fingerprint: no sign-in needed.
    let cert_route = format!("https://cert.localhost:{}/device", env.port);
    assert_eq!(env.browser().get_json(&cert_route).await.unwrap().status(), 200);
    let seen = env.upstream.last().unwrap();
    assert_eq!(seen.path_and_query, "/device");
    let fingerprint = seen.header("x-client-cert").unwrap_or_default();
    assert_eq!(fingerprint.len(), 64, "${{pomerium.client_cert_fingerprint}} filled: {fingerprint:?}");

    // Subject alternative names (email, DNS, URI), read from a real openssl certificate.
    let san_route = format!("https://cert.localhost:{}/san/device", env.port);
    assert_eq!(env.browser().get_json(&san_route).await.unwrap().status(), 200, "{}", env.logs());
    let bob_route = format!("https://cert.localhost:{}/bob/device", env.port);
    let r = env.browser().get_json(&bob_route).await.unwrap();
    assert_ne!(r.status(), 200, "alice's certificate does not carry bob's email");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["reasons"].as_array().is_some_and(|r| r.contains(&"client-certificate-unauthorized".into())),
        "{body}"
    );
}
