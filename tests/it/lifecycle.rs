//! The session lifecycle against the real IdP: refresh, refusal, expiry, back-channel logout,
//! admin revocation, singleton jobs, and the events a subscriber sees.

use std::time::{Duration, Instant};

use futures::StreamExt;
use portcullis_e2e::portcullis::{Options, SHARED_SECRET};
use portcullis_e2e::{TestEnv, assert_valid_event, eventually, jwt_groups};
use portcullis_runtime::crypto::{Purpose, Sealer, Secret};
use portcullis_schemas::Contract;
use portcullis_schemas::events::{
    SESSION_CREATED, SESSION_EXPIRED, SESSION_REFRESHED, SESSION_REVOKED, USER_UPDATED,
};
use serde_json::{Value, json};

/// Tokens live 6 s; the cache refreshes them when 4 s or less remain, checking twice a second.
fn short_tokens() -> Options {
    Options { token_ttl: Some(6), refresh_before: "4s", sweep_interval: "500ms", ..Options::default() }
}

fn alice(groups: &[&str]) -> Value {
    json!([{"sub": "alice", "email": "alice@example.com", "name": "Alice Example", "groups": groups}])
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire_and_new_groups_reach_the_upstream() {
    let env = TestEnv::start_with(short_tokens()).await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    assert_eq!(
        jwt_groups(env.upstream.last().unwrap().header("x-portcullis-jwt-assertion").unwrap()),
        json!(["admins", "staff"])
    );
    // A second route host, admins only: its own session (the IdP signs her in silently).
    assert_eq!(browser.login(&env.admin_url("/"), "alice").await.final_response.status(), 200);

    // The IdP now says alice is in other groups; the next refresh brings them in.
    env.set_idp_users(alice(&["staff", "auditors"]));
    let updated = eventually("user.updated with the new groups", Duration::from_secs(20), || async {
        env.events_of(USER_UPDATED)
            .await
            .into_iter()
            .find(|e| e["data"]["groups"] == json!(["staff", "auditors"]))
    })
    .await;
    assert_eq!(updated["data"]["changed"], json!(["groups"]));
    assert!(!env.events_of(SESSION_REFRESHED).await.is_empty());

    let groups = eventually("the upstream JWT carries the new groups", Duration::from_secs(5), || async {
        let r = browser.get_html(&env.app_url("/after-refresh")).await.ok()?;
        (r.status() == 200).then_some(())?;
        let jwt = env.upstream.last()?.header("x-portcullis-jwt-assertion")?.to_owned();
        Some(jwt_groups(&jwt)).filter(|g| *g == json!(["staff", "auditors"]))
    })
    .await;
    assert_eq!(groups, json!(["staff", "auditors"]));
    // The admins-only route now refuses her, without a new sign-in.
    eventually("the admins-only route refuses her", Duration::from_secs(15), || async {
        let r = browser.get_html(&env.admin_url("/")).await.ok()?;
        (r.status() == 403).then_some(())
    })
    .await;

    // Acceptance 8: no token value in any event or log line.
    let sid = env.session_ids().await.pop().expect("session");
    let js = env.jetstream().await;
    let kv = js.get_key_value(Contract::default().sessions_bucket()).await.unwrap();
    let session: Value =
        serde_json::from_slice(&kv.get(&sid).await.unwrap().expect("session value")).unwrap();
    let sealer = Sealer::new(&Secret::from_base64(SHARED_SECRET).unwrap(), Purpose::Tokens);
    let tokens: Value =
        sealer.open_json(session["sealed_tokens"].as_str().unwrap(), portcullis_oidc::TOKENS_AAD).unwrap();
    let events = serde_json::to_string(&env.events().await).unwrap();
    let logs = env.all_logs();
    for name in ["access_token", "refresh_token", "id_token"] {
        let value = tokens[name].as_str().unwrap_or_else(|| panic!("{name} present"));
        assert!(value.len() > 20);
        assert!(!events.contains(value), "{name} leaked into an event");
        assert!(!logs.contains(value), "{name} leaked into the logs");
    }
    assert!(
        !session.to_string().contains(tokens["access_token"].as_str().unwrap()),
        "tokens are sealed in KV"
    );
}

#[tokio::test]
async fn a_user_the_idp_no_longer_knows_loses_access_at_the_next_refresh() {
    let env = TestEnv::start_with(short_tokens()).await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    let sid = env.session_ids().await.pop().expect("session");

    env.set_idp_users(
        json!([{"sub": "alice", "email": "alice@example.com", "name": "Alice Example", "disabled": true}]),
    );
    let revoked = eventually("session.revoked (idp_refresh_failed)", Duration::from_secs(20), || async {
        env.events_of(SESSION_REVOKED).await.into_iter().next()
    })
    .await;
    assert_eq!(revoked["subject"], sid.as_str());
    assert_eq!(revoked["data"]["reason"], "idp_refresh_failed");
    assert!(env.session_ids().await.is_empty());

    let next = eventually("the next request is sent to sign in", Duration::from_secs(2), || async {
        let r = browser.get_html(&env.app_url("/after")).await.ok()?;
        (r.status() == 302).then_some(r)
    })
    .await;
    assert!(next.headers()["location"].to_str().unwrap().contains("/.portcullis/sign_in"));
}

#[tokio::test]
async fn an_expired_session_is_removed_and_announced() {
    let options = Options { cookie_expire: "5s", sweep_interval: "500ms", ..Options::default() };
    let env = TestEnv::start_with(options).await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "bob").await.final_response.status(), 200);
    let sid = env.session_ids().await.pop().expect("session");

    let expired = eventually("session.expired", Duration::from_secs(15), || async {
        env.events_of(SESSION_EXPIRED).await.into_iter().next()
    })
    .await;
    assert_eq!(expired["subject"], sid.as_str());
    assert_eq!(expired["data"]["email"], "bob@example.com");
    assert!(env.session_ids().await.is_empty(), "removed from KV");
    assert_eq!(browser.get_html(&env.app_url("/late")).await.unwrap().status(), 302);
}

/// The `xsrf` value in the IdP's logout confirmation form.
fn xsrf(form: &str) -> String {
    let at = form.find("name=\"xsrf\"").expect("xsrf field");
    let rest = &form[at..];
    let start = rest.find("value=\"").expect("xsrf value") + 7;
    rest[start..][..rest[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn back_channel_logout_from_the_idp_ends_the_session_once() {
    let env = TestEnv::start_with(Options { backchannel_to_recorder: true, ..Options::default() }).await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    assert_eq!(env.session_ids().await.len(), 1);

    // Sign out at the IdP itself; it posts a logout token to its back-channel URI.
    let confirm = browser
        .client
        .get(format!("{}/session/end", env.idp.issuer))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let done = browser
        .client
        .post(format!("{}/session/end/confirm", env.idp.issuer))
        .form(&[("xsrf", xsrf(&confirm).as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert!(done.status().is_redirection(), "IdP logout: {}", done.status());
    let posted = env
        .upstream
        .requests()
        .into_iter()
        .find(|r| r.path_and_query == "/backchannel")
        .expect("IdP posted a logout token");
    let body = String::from_utf8(posted.body).unwrap();
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .expect("logout_token")
        .1
        .into_owned();
    let endpoint = env.auth_url("/.portcullis/backchannel_logout");
    let post = |t: String| {
        let c = browser.client.clone();
        let endpoint = endpoint.clone();
        async move { c.post(endpoint).form(&[("logout_token", t)]).send().await.unwrap() }
    };

    // Forged: a bit flipped in the signature, or no signature at all.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let sig = parts[2].clone();
    parts[2] = format!("{}{}", if sig.starts_with('A') { 'B' } else { 'A' }, &sig[1..]);
    assert_eq!(post(parts.join(".")).await.status(), 400);
    let unsigned = format!("eyJhbGciOiJub25lIn0.{}.", token.split('.').nth(1).unwrap());
    assert_eq!(post(unsigned).await.status(), 400);
    assert_eq!(env.session_ids().await.len(), 1, "forged tokens change nothing");

    // The real one ends the session; replaying it is refused.
    assert_eq!(post(token.clone()).await.status(), 200, "{}", env.logs());
    assert!(env.session_ids().await.is_empty());
    let revoked = env.events_of(SESSION_REVOKED).await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["data"]["reason"], "backchannel_logout");
    let replay = post(token).await;
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await.unwrap().contains("already used"));
    assert_eq!(env.events_of(SESSION_REVOKED).await.len(), 1, "a replay changes nothing");
    assert_eq!(browser.get_html(&env.app_url("/after")).await.unwrap().status(), 302);
}

#[tokio::test]
async fn revoking_a_user_from_the_cli_stops_every_proxy_within_a_second() {
    let env = TestEnv::start_with(Options { split: true, proxies: 2, ..Options::default() }).await;
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    let second = format!("http://app.localhost:{}", env.extra_proxy_ports[0]);
    assert_eq!(browser.get_html(&format!("{second}/via-second")).await.unwrap().status(), 200);

    // The decision cache is on: repeated requests do not ask authorize again.
    let nats = env.nats.client().await;
    // Every way of asking authorize (`check`, `check_batch`).
    let mut checks = nats.subscribe("portcullis.authorize.>").await.unwrap();
    nats.flush().await.unwrap();
    for base in [env.app_url(""), second.clone()] {
        for _ in 0..3 {
            assert_eq!(browser.get_html(&format!("{base}/cached")).await.unwrap().status(), 200);
        }
    }
    let asked = tokio::time::timeout(Duration::from_millis(200), checks.next()).await;
    assert!(asked.is_err(), "cached decisions were reused, authorize was not asked");

    let (code, out, err) = env.cli(&["sessions", "ls", "--user", "alice@example.com"]).await;
    assert_eq!(code, 0, "{err}");
    let sid = env.session_ids().await.pop().unwrap();
    assert!(out.contains(&sid) && out.contains("alice@example.com"), "{out}");

    let (code, out, err) = env.cli(&["sessions", "revoke", "--user", "alice@example.com"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("revoked {sid}")), "{out}");
    let revoked_at = Instant::now();
    for base in [env.app_url(""), second] {
        let r = eventually("refused after revocation", Duration::from_secs(1), || async {
            let r = browser.get_json(&format!("{base}/after-revoke")).await.ok()?;
            (r.status() == 401).then_some(r)
        })
        .await;
        assert_eq!(r.status(), 401);
    }
    assert!(revoked_at.elapsed() < Duration::from_secs(1), "both proxies refused within a second");
    assert!(env.upstream.requests().iter().all(|r| r.path_and_query != "/after-revoke"));
    let revoked = env.events_of(SESSION_REVOKED).await;
    assert_eq!(revoked[0]["data"]["reason"], "admin");
}

#[tokio::test]
async fn with_two_cache_instances_each_due_refresh_happens_exactly_once() {
    let options = Options { split: true, caches: 2, ..short_tokens() };
    let mut env = TestEnv::start_with(options).await;
    for user in ["alice", "bob"] {
        let b = env.browser();
        assert_eq!(b.login(&env.app_url("/"), user).await.final_response.status(), 200);
    }
    eventually("several refreshes", Duration::from_secs(30), || async {
        (env.events_of(SESSION_REFRESHED).await.len() >= 6).then_some(())
    })
    .await;
    // Stop the refreshers, then compare what the IdP served with what was recorded.
    env.kill("cache");
    let refreshed = env.events_of(SESSION_REFRESHED).await.len() as u64;
    let grants = env.idp.grants("refresh_token").await;
    assert_eq!(grants, refreshed, "each refresh grant at the IdP is one recorded refresh: no double work");
}

#[tokio::test]
async fn a_durable_subscriber_gets_every_event_once_and_each_matches_its_schema() {
    let env = TestEnv::start_with(Options { event_mode: "binary", ..short_tokens() }).await;
    let js = env.jetstream().await;
    let stream = js.get_stream(Contract::default().events_stream()).await.expect("events stream");
    let durable = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("siem".into()),
        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    stream.create_consumer(durable.clone()).await.expect("durable consumer");

    // `events tail` sees them as they come.
    let mut tail = tokio::process::Command::new(portcullis_e2e::portcullis::binary())
        .args(["events", "tail", "--type", "session.created", "--since", "1h", "--config"])
        .arg(&env.config_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("events tail");
    let mut tail_out = tokio::io::BufReader::new(tail.stdout.take().unwrap());

    // The subscriber is "down": events happen meanwhile.
    let browser = env.browser();
    assert_eq!(browser.login(&env.app_url("/"), "alice").await.final_response.status(), 200);
    let bob = env.browser();
    assert_eq!(bob.login(&env.app_url("/"), "bob").await.final_response.status(), 200);
    eventually("a refresh", Duration::from_secs(20), || async {
        (!env.events_of(SESSION_REFRESHED).await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(browser.client.post(env.app_url("/.portcullis/sign_out")).send().await.unwrap().status(), 302);
    let published = env.events().await;
    let kinds: Vec<&str> = published.iter().filter_map(|e| e["type"].as_str()).collect();
    for ty in [SESSION_CREATED, SESSION_REFRESHED, SESSION_REVOKED, USER_UPDATED] {
        assert!(kinds.contains(&ty), "{ty} missing from {kinds:?}");
    }

    // It comes back and reads everything, acknowledging as it goes.
    let consumer =
        stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>("siem").await.unwrap();
    let mut received = Vec::new();
    let mut messages = consumer
        .fetch()
        .max_messages(published.len() + 10)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    while let Some(Ok(m)) = messages.next().await {
        received
            .push(portcullis_e2e::event_json(m.headers.as_ref().unwrap_or(&Default::default()), &m.payload));
        m.ack().await.unwrap();
    }
    let ids: std::collections::HashSet<&str> = received.iter().filter_map(|e| e["id"].as_str()).collect();
    assert!(received.len() >= published.len(), "received {} of {}", received.len(), published.len());
    assert_eq!(ids.len(), received.len(), "each event once");
    for e in &received {
        assert_valid_event(e);
        assert_eq!(e["specversion"], "1.0", "binary mode carries ce- headers");
    }

    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), tail_out.read_line(&mut line))
        .await
        .expect("tail printed")
        .unwrap();
    if line.is_empty() {
        let _ = tail.kill().await;
        let out = tail.wait_with_output().await.unwrap();
        panic!("events tail ended: {}", String::from_utf8_lossy(&out.stderr));
    }
    let tailed: Value = serde_json::from_str(&line).expect("one JSON event per line");
    assert_eq!(tailed["type"], SESSION_CREATED);
}
