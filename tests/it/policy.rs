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
