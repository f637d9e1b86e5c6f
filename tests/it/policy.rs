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
    let post = browser.client.post(env.api_url("/items")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(post.status(), 403);
    let body: serde_json::Value = post.json().await.unwrap();
    assert_eq!(body["reasons"], serde_json::json!(["http-method-unauthorized"]));
    assert_eq!(browser.get_json(&env.api_url("/items")).await.unwrap().status(), 200);
    let internal = browser.get_json(&env.api_url("/internal/metrics")).await.unwrap();
    assert_eq!(internal.status(), 403);
    let body: serde_json::Value = internal.json().await.unwrap();
    assert_eq!(body["reasons"], serde_json::json!(["http-path-ok"]));
    assert_eq!(browser.get_json(&env.api_url("/items/2")).await.unwrap().status(), 200);
    assert!(env.upstream.requests().iter().all(|r| r.method != "POST" && !r.path_and_query.starts_with("/internal")));
}
