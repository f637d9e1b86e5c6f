//! A person in a real browser (headless Chromium): sign in at the IdP's form, see the app,
//! see their session page, sign out.

use portcullis_e2e::TestEnv;
use portcullis_e2e::upstream::UPSTREAM_BODY;
use portcullis_e2e::webdriver::Chromium;

#[tokio::test]
async fn a_person_signs_in_and_out_in_chromium() {
    let env = TestEnv::start().await;
    let browser = Chromium::start().await;

    browser.goto(&env.app_url("/welcome?from=browser")).await;
    // The IdP's sign-in form (oidc-provider's dev interaction).
    browser.type_into("input[name=login]", "alice").await;
    browser.type_into("input[name=password]", "any password").await;
    browser.click("button[type=submit]").await;

    let text = browser.wait_for_text(UPSTREAM_BODY).await;
    assert!(text.contains(UPSTREAM_BODY));
    assert_eq!(browser.url().await, env.app_url("/welcome?from=browser"));
    let requests = env.upstream.requests();
    let seen = requests.iter().find(|r| r.path_and_query == "/welcome?from=browser").expect("upstream hit");
    assert!(seen.header("x-portcullis-jwt-assertion").is_some());

    browser.goto(&env.app_url("/.portcullis/")).await;
    let page = browser.wait_for_text("alice@example.com").await;
    assert!(page.contains("Alice Example") && page.contains("admins"), "{page}");

    browser.click("form[action='/.portcullis/sign_out'] button").await;
    // The IdP asks to confirm its own logout; then it sends us to our signed-out page.
    browser.wait_for_url(&format!("{}/session/end", env.idp.issuer)).await;
    browser.click("button[autofocus], form button[type=submit]").await;
    browser.wait_for_text("You are signed out").await;
    assert!(env.session_ids().await.is_empty(), "the session left KV");

    // Back on the app: the person has to sign in again.
    browser.goto(&env.app_url("/again")).await;
    browser.wait_for("input[name=login]").await;
    assert!(env.upstream.requests().iter().all(|r| r.path_and_query != "/again"));
}
