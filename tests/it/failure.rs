//! Failure behaviour: fail closed, survive restarts, split deployments.

use portcullis_schemas::Contract;
use portcullis_schemas::events::SESSION_REVOKED;
use std::time::{Duration, Instant};

use futures::StreamExt;
use portcullis_e2e::portcullis::{COOKIE_NAME, Options};
use portcullis_e2e::upstream::UPSTREAM_BODY;
use portcullis_e2e::{TestEnv, eventually};

#[tokio::test]
async fn without_authorize_the_proxy_fails_closed_with_503_and_keeps_the_cookie() {
    // Without the decision cache every request asks authorize (with it, decisions already
    // made are reused for up to 30 s; the fail-closed rule is about asking).
    let env_options =
        Options { split: true, request_timeout: "500ms", decision_cache: false, ..Options::default() };
    let mut env = TestEnv::start_with(env_options).await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    let hits = env.upstream.requests().len();

    // A stalled authorize (subscribed, never answers): 503 after the configured timeout.
    let nats = env.nats.client().await;
    let mut stalled = nats
        .queue_subscribe(
            Contract::default().authorize_check_batch(),
            Contract::default().queue_group().into(),
        )
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let drain = tokio::spawn(async move { while stalled.next().await.is_some() {} });
    env.kill("authorize");
    let started = Instant::now();
    let r = browser.get_html(&env.app_url("/stalled")).await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503);
    // The configured deadline (500ms) applies: not earlier, and not much later.
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(5), "took {took:?}");
    assert!(
        r.headers().get_all("set-cookie").iter().all(|c| !c.to_str().unwrap().starts_with(COOKIE_NAME)),
        "cookie kept"
    );
    drain.abort();

    // No authorize at all: 503 at once.
    let r = eventually("503 with no responders", Duration::from_secs(5), || async {
        let r = browser.get_html(&env.app_url("/gone")).await.ok()?;
        (r.status() == 503).then_some(r)
    })
    .await;
    assert!(r.headers().get_all("set-cookie").iter().all(|c| !c.to_str().unwrap().starts_with(COOKIE_NAME)));
    assert_eq!(env.upstream.requests().len(), hits, "the upstream was never hit");

    // Authorize comes back: the same cookie works again.
    env.stop_portcullis();
    env.start_portcullis().await;
    let r = browser.get_html(&env.app_url("/back")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_session_survives_a_restart_of_portcullis() {
    let mut env = TestEnv::start().await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "bob").await.final_response.status(), 200);
    env.stop_portcullis();
    env.start_portcullis().await;
    let r = browser.get_html(&env.app_url("/after-restart")).await.unwrap();
    assert_eq!(r.status(), 200, "{}", env.logs());
    assert_eq!(r.text().await.unwrap(), UPSTREAM_BODY);
    let seen = env.upstream.last().unwrap();
    assert_eq!(seen.path_and_query, "/after-restart");
    assert!(seen.header("x-portcullis-jwt-assertion").is_some());
}

#[tokio::test]
async fn login_works_with_four_separate_processes() {
    let env = TestEnv::start_with(Options { split: true, ..Options::default() }).await;
    assert_eq!(env.processes.len(), 4);
    let browser = env.browser();
    let trace = browser.login(&env.app_url("/split"), "alice").await;
    assert_eq!(trace.final_response.status(), 200, "{}", env.logs());
    let seen = env.upstream.last().unwrap();
    assert_eq!(seen.path_and_query, "/split");
    assert!(seen.header("x-portcullis-jwt-assertion").is_some());
}

#[tokio::test]
async fn each_service_works_with_only_the_nats_permissions_deploy_gives_it() {
    // A directory too, so the sync's reads, writes and events run under the cache's rights.
    let scim = portcullis_e2e::directory::ScimServer::start().await;
    let alice = scim.user("alice", "alice@example.com", "Alice").await;
    scim.group("engineering", &[&alice]).await;
    let directory = Some(portcullis_e2e::directory::DirectoryServer::config(&scim));
    let env =
        TestEnv::start_with(Options { split: true, nats_users: true, directory, ..Options::default() }).await;
    let browser = env.browser();
    let trace = browser.login(&env.app_url("/least-privilege"), "alice").await;
    assert_eq!(trace.final_response.status(), 200, "{}", env.logs());

    let out = browser.client.post(env.app_url("/.portcullis/sign_out")).send().await.unwrap();
    assert_eq!(out.status(), 302, "{}", env.logs());
    assert!(env.session_ids().await.is_empty(), "revoked through cache with its own rights");
    let revoked = eventually("session.revoked published by cache", Duration::from_secs(5), || async {
        env.events().await.into_iter().find(|e| e["type"] == SESSION_REVOKED)
    })
    .await;
    assert_eq!(revoked["data"]["reason"], "sign_out");

    // The proxy's user cannot read sessions, nor receive what authorize receives.
    let proxy = async_nats::jetstream::new(env.nats.client_as("proxy").await);
    assert!(
        proxy.get_key_value(Contract::default().sessions_bucket()).await.is_err(),
        "proxy must not read sessions"
    );
    let proxy_client = env.nats.client_as("proxy").await;
    let mut sub = proxy_client.subscribe(Contract::default().authorize_check_batch()).await.unwrap();
    proxy_client.flush().await.unwrap();
    let admin = env.nats.client().await;
    let _ = admin.publish(Contract::default().authorize_check_batch(), "{}".into()).await;
    admin.flush().await.unwrap();
    let got = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(!matches!(got, Ok(Some(_))), "proxy must not receive authorize requests");

    // authorize read the synced directory: its groups decide the `groups` route.
    eventually("directory.synced", Duration::from_secs(10), || async {
        env.events().await.into_iter().find(|e| e["type"] == portcullis_schemas::events::DIRECTORY_SYNCED)
    })
    .await;
    let r = browser.login(&env.url_on("groups.localhost", "/"), "alice").await;
    assert_eq!(r.final_response.status(), 200, "{}", env.logs());

    // No service was refused anything it needs (the cache's first sweep and lease included).
    let logs = env.all_logs();
    assert!(!logs.to_lowercase().contains("permissions violation"), "{logs}");
}

#[tokio::test]
async fn without_the_decision_cache_every_request_is_checked_and_concurrent_checks_share_messages() {
    let env = TestEnv::start_with(Options { decision_cache: false, ..Options::default() }).await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    let anonymous = env.browser_without_certificate();
    let nats = env.nats.client().await;
    let mut messages = nats.subscribe(Contract::default().authorize_check_batch()).await.unwrap();
    nats.flush().await.unwrap();

    // Thirty requests of alice's and ten anonymous ones, all at once.
    let urls: Vec<String> = (0..40).map(|i| env.app_url(&format!("/together/{i}"))).collect();
    let alice = urls[..30].iter().map(|u| browser.get_json(u));
    let strangers = urls[30..].iter().map(|u| anonymous.get_json(u));
    let statuses: Vec<u16> = futures::future::join_all(alice.chain(strangers))
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    // Each decided on its own: alice's allowed, the strangers asked to sign in.
    assert_eq!(statuses[..30], [200; 30]);
    assert_eq!(statuses[30..], [401; 10]);

    // Every request was put to authorize; checks in flight at the same time shared messages.
    let (mut checks, mut count) = (0, 0);
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), messages.next()).await {
        let batch: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        checks += batch["checks"].as_array().unwrap().len();
        count += 1;
    }
    assert_eq!(checks, 40, "one check per request");
    assert!(count < 40, "{count} messages for 40 concurrent checks");

    // Fewer requests than the last message carried: the next message waits for more checks
    // only briefly (a millisecond), never until the request deadline.
    for round in 0..3 {
        let started = std::time::Instant::now();
        let urls: Vec<String> = (0..3).map(|i| env.app_url(&format!("/few/{round}/{i}"))).collect();
        let few = urls.iter().map(|u| browser.get_json(u));
        for r in futures::future::join_all(few).await {
            assert_eq!(r.unwrap().status().as_u16(), 200);
        }
        let took = started.elapsed();
        assert!(took < Duration::from_millis(800), "three checks took {took:?}");
    }
}

#[tokio::test]
async fn portcullis_stops_promptly_on_sigterm_even_with_nats_gone() {
    let mut env = TestEnv::start().await;
    assert_eq!(env.browser().login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    // NATS goes away for good; the services keep trying to reconnect.
    env.nats.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, process) = env.processes.first_mut().unwrap();
    // Within the request deadline (2 s) for the last flush, plus a margin; never hanging.
    let took = process.terminate(Duration::from_secs(10));
    assert!(took.is_some_and(|t| t < Duration::from_secs(5)), "still running or slow: {took:?}");
    assert!(process.log_text().contains("stopped"), "{}", process.log_text());
}
