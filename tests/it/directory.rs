//! Directory sync against real directory servers (scim2-server, slapd): initial sync, a
//! membership change seen in KV, in events and in a `groups` policy through the proxy without
//! signing in again, a no-change sync that writes nothing, and a server outage that keeps the
//! last good data.

use std::time::Duration;

use portcullis_e2e::directory::{DirectoryServer, ScimServer, Slapd};
use portcullis_e2e::portcullis::Options;
use portcullis_e2e::{TestEnv, assert_valid_event, eventually, jwt_groups};
use portcullis_runtime::buckets::directory_user_key;
use portcullis_schemas::events::{DIRECTORY_SYNC_FAILED, DIRECTORY_SYNCED, DIRECTORY_USER_GROUPS_CHANGED};
use serde_json::Value;

/// What the test needs to know about one directory's contents.
struct Fixture<D> {
    server: D,
    /// How the server names alice and the engineering group (for add/remove).
    alice_handle: String,
    engineering_handle: String,
    /// The ids Portcullis stores for them.
    alice_id: String,
    engineering_id: String,
    /// Users and groups in the directory.
    users: u64,
    groups: u64,
    /// A user who is in a group only through a nested group: (user id, outer group id).
    nested: Option<(String, String)>,
}

async fn stored_user(env: &TestEnv, id: &str) -> Option<Value> {
    let kv = env.jetstream().await.get_key_value("portcullis_directory").await.ok()?;
    let entry = kv.get(directory_user_key(id)).await.ok()??;
    serde_json::from_slice(&entry).ok()
}

async fn sync_now(env: &TestEnv) -> (i32, String, String) {
    env.cli(&["directory", "sync", "--now"]).await
}

async fn groups_changed_for(env: &TestEnv, id: &str) -> Vec<Value> {
    env.events_of(DIRECTORY_USER_GROUPS_CHANGED)
        .await
        .into_iter()
        .filter(|e| e["data"]["user_id"] == id)
        .collect()
}

async fn run<D: DirectoryServer>(mut f: Fixture<D>) {
    let env = TestEnv::start_with(Options { directory: Some(f.server.config()), ..Options::default() }).await;
    let groups_url = env.url_on("groups.localhost", "/");

    // The first sync runs when the cache starts.
    let synced = eventually("the initial directory.synced", Duration::from_secs(20), || async {
        env.events_of(DIRECTORY_SYNCED).await.into_iter().next()
    })
    .await;
    assert_valid_event(&synced);
    assert_eq!(
        (synced["data"]["users"].as_u64(), synced["data"]["groups"].as_u64()),
        (Some(f.users), Some(f.groups))
    );
    let alice = stored_user(&env, &f.alice_id).await.expect("alice in the directory bucket");
    assert_eq!(alice["email"], "alice@example.com");
    assert!(!alice["groups"].as_array().unwrap().contains(&Value::from(f.engineering_id.clone())));
    if let Some((user, group)) = &f.nested {
        let stored = stored_user(&env, user).await.expect("nested user stored");
        assert!(stored["groups"].as_array().unwrap().contains(&Value::from(group.clone())), "{stored}");
    }

    // Alice's token says admins/staff; the directory says she is not in engineering.
    let browser = env.browser();
    assert_eq!(browser.login(&groups_url, "alice").await.final_response.status(), 403);

    // Added in the directory: after a sync the next request is allowed, no new sign-in.
    // (The first sync may already have told of alice joining her other groups.)
    let seen = groups_changed_for(&env, &f.alice_id).await.len();
    f.server.add_member(&f.engineering_handle, &f.alice_handle).await;
    let (code, out, err) = sync_now(&env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 users changed"), "{out}");
    let changed = groups_changed_for(&env, &f.alice_id).await.split_off(seen);
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_valid_event(&changed[0]);
    assert_eq!(changed[0]["data"]["added"], serde_json::json!([f.engineering_id]));
    assert_eq!(changed[0]["data"]["removed"], serde_json::json!([]));
    let alice = stored_user(&env, &f.alice_id).await.unwrap();
    assert!(alice["groups"].as_array().unwrap().contains(&Value::from(f.engineering_id.clone())));
    assert_eq!(browser.get_html(&groups_url).await.unwrap().status(), 200);
    let jwt = env.upstream.last().unwrap().header("x-portcullis-jwt-assertion").unwrap().to_owned();
    let claimed = jwt_groups(&jwt);
    assert!(claimed.as_array().unwrap().contains(&Value::from("engineering")), "{claimed}");
    assert!(claimed.as_array().unwrap().contains(&Value::from(f.engineering_id.clone())), "{claimed}");

    // Removed again: refused on the next request.
    f.server.remove_member(&f.engineering_handle, &f.alice_handle).await;
    let (code, out, err) = sync_now(&env).await;
    assert_eq!(code, 0, "{out}{err}");
    let changed = groups_changed_for(&env, &f.alice_id).await.split_off(seen);
    assert_eq!(changed.len(), 2);
    assert_eq!(changed[1]["data"]["removed"], serde_json::json!([f.engineering_id]));
    assert_eq!(browser.get_html(&groups_url).await.unwrap().status(), 403);

    // Nothing changed: nothing written, no change events.
    let before = env.events_of(DIRECTORY_USER_GROUPS_CHANGED).await.len();
    let (code, out, _) = sync_now(&env).await;
    assert_eq!(code, 0);
    assert!(out.contains("0 users changed, 0 records written"), "{out}");
    assert_eq!(env.events_of(DIRECTORY_USER_GROUPS_CHANGED).await.len(), before);

    // The server goes away: the sync fails, says so, and the last good data stays.
    let kept = stored_user(&env, &f.alice_id).await.unwrap();
    f.server.stop();
    let (code, _, err) = sync_now(&env).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("sync failed"), "{err}");
    let failed = env.events_of(DIRECTORY_SYNC_FAILED).await;
    assert_eq!(failed.len(), 1);
    assert_valid_event(&failed[0]);
    assert_eq!(stored_user(&env, &f.alice_id).await, Some(kept));
    let (code, out, err) = env.cli(&["directory", "show", "alice@example.com"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&f.alice_id), "{out}");
    assert_eq!(browser.get_html(&groups_url).await.unwrap().status(), 403);
}

#[tokio::test]
async fn scim_directory_groups_drive_policy_without_sign_in() {
    let scim = ScimServer::start().await;
    let alice = scim.user("alice", "Alice@Example.com", "Alice Example").await;
    let bob = scim.user("bob", "bob@example.com", "Bob").await;
    let carol = scim.user("carol", "carol@example.com", "Carol").await;
    let engineering = scim.group("engineering", &[&bob]).await;
    scim.group("staff", &[&alice, &carol]).await;
    run(Fixture {
        server: scim,
        alice_handle: alice.clone(),
        engineering_handle: engineering.clone(),
        alice_id: alice,
        engineering_id: engineering,
        users: 3,
        groups: 2,
        nested: None,
    })
    .await;
}

#[tokio::test]
async fn ldap_directory_groups_drive_policy_without_sign_in() {
    let people = "ou=people,dc=example,dc=org";
    let mut ldif = String::new();
    for (uid, name) in [("alice", "Alice Example"), ("bob", "Bob"), ("carol", "Carol")] {
        ldif.push_str(&format!(
            "dn: uid={uid},{people}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\nsn: {uid}\nmail: {uid}@example.com\n\n"
        ));
    }
    // Nested: platform is a member of engineering.
    ldif.push_str(&format!(
        "dn: cn=platform,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: platform\nmember: uid=carol,{people}\n\n"
    ));
    ldif.push_str(&format!(
        "dn: cn=engineering,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: engineering\nmember: uid=bob,{people}\nmember: cn=platform,ou=groups,dc=example,dc=org\n\n"
    ));
    let slapd = Slapd::start(&ldif).await;
    let engineering = "cn=engineering,ou=groups,dc=example,dc=org".to_owned();
    run(Fixture {
        server: slapd,
        alice_handle: format!("uid=alice,{people}"),
        engineering_handle: engineering.clone(),
        alice_id: "alice".into(),
        engineering_id: engineering.clone(),
        users: 3,
        groups: 2,
        nested: Some(("carol".into(), engineering)),
    })
    .await;
}
