use serde_json::{Map, Value, json};

use super::*;

fn policy(v: Value) -> Policy {
    Policy::from_ppl(&v).unwrap_or_else(|e| panic!("policy {v} did not parse: {e}"))
}

fn alice_claims() -> Map<String, Value> {
    let v = json!({"groups": ["admins", "staff"], "department": "eng", "org": {"team": "core"}});
    v.as_object().cloned().unwrap_or_default()
}

fn decide(p: &Policy, email: Option<&str>) -> Decision {
    let claims = alice_claims();
    let groups = vec!["admins".to_owned(), "staff".to_owned()];
    let user =
        email.map(|e| UserFacts { user_id: "alice-id", email: Some(e), claims: &claims, groups: &groups });
    p.decide(&Input { user, ..Input::default() })
}

fn is_allow(d: Decision) -> bool {
    matches!(d, Decision::Allow { .. })
}

#[test]
fn email_is_matches_case_insensitively() {
    let p = policy(json!({"allow": {"or": [{"email": {"is": "Alice@Example.com"}}]}}));
    assert!(is_allow(decide(&p, Some("alice@example.COM"))));
    assert!(matches!(decide(&p, Some("bob@example.com")), Decision::Deny { .. }));
}

#[test]
fn anonymous_user_is_sent_to_sign_in() {
    let p = policy(json!({"allow": {"or": [{"email": {"is": "a@b.c"}}]}}));
    assert!(matches!(decide(&p, None), Decision::Login { .. }));
}

#[test]
fn accept_allows_anonymous_whatever_the_value() {
    let p = policy(json!({"allow": {"or": [{"accept": false}]}}));
    assert!(is_allow(decide(&p, None)));
}

#[test]
fn route_without_policy_is_forbidden_even_for_anonymous() {
    let p = Policy::default();
    assert!(matches!(decide(&p, None), Decision::Deny { .. }));
    assert!(matches!(decide(&p, Some("a@b.c")), Decision::Deny { .. }));
}

#[test]
fn deny_wins_over_allow() {
    let p = policy(json!([
        {"allow": {"or": [{"domain": {"is": "example.com"}}]}},
        {"deny": {"or": [{"email": {"is": "alice@example.com"}}]}}
    ]));
    let d = decide(&p, Some("alice@example.com"));
    assert_eq!(d, Decision::Deny { reasons: Reasons::of(Reason::EmailOk) });
    assert!(is_allow(decide(&p, Some("bob@example.com"))));
}

#[test]
fn not_is_nor_and_nor_is_nand() {
    let not = policy(json!({"allow": {"not": [{"email": "x@y.z"}, {"domain": "other.org"}]}}));
    assert!(is_allow(decide(&not, Some("alice@example.com"))), "none match → not holds");
    assert!(!is_allow(decide(&not, Some("x@y.z"))), "one matches → not fails");
    let nor = policy(json!({"allow": {"nor": [{"email": "alice@example.com"}, {"domain": "example.com"}]}}));
    assert!(!is_allow(decide(&nor, Some("alice@example.com"))), "all match → nor fails");
    assert!(is_allow(decide(&nor, Some("bob@example.com"))), "not all match → nor holds");
}

#[test]
fn operators_in_one_block_are_ored() {
    let p = policy(json!({"allow": {"and": [{"email": "nobody@x.y"}], "or": [{"domain": "example.com"}]}}));
    assert!(is_allow(decide(&p, Some("alice@example.com"))));
}

#[test]
fn domain_needs_exactly_one_at() {
    let p = policy(json!({"allow": {"or": [{"domain": {"is": "example.com"}}]}}));
    assert!(is_allow(decide(&p, Some("alice@Example.com."))));
    assert!(!is_allow(decide(&p, Some("evil@attacker.org@example.com"))));
    assert!(!is_allow(decide(&p, Some("@example.com"))));
}

#[test]
fn string_matchers() {
    let cases = [
        (json!({"starts_with": "ali"}), true),
        (json!({"ends_with": "@example.com"}), true),
        (json!({"contains": "ce@ex"}), true),
        (json!({"not": "bob@example.com"}), true),
        (json!({"in": ["bob@example.com", "alice@example.com"]}), true),
        (json!({"not_in": ["alice@example.com"]}), false),
        (json!({"starts_with": "ali", "ends_with": "@other.org"}), false),
    ];
    for (m, want) in cases {
        let p = policy(json!({"allow": {"or": [{"email": m.clone()}]}}));
        assert_eq!(is_allow(decide(&p, Some("alice@example.com"))), want, "{m}");
    }
}

#[test]
fn claims_match_lists_and_nested_paths() {
    let cases = [
        (json!({"claim/groups": "admins"}), true),
        (json!({"claim/groups": {"has": "staff"}}), true),
        (json!({"claim/groups": {"is": "admins"}}), false),
        (json!({"claim/groups": {"exclude": "contractors"}}), true),
        (json!({"claim/department": "eng"}), true),
        (json!({"claim/org/team": "core"}), true),
        (json!({"claim/org.team": "other"}), false),
        (json!({"claim/missing": "x"}), false),
    ];
    for (c, want) in cases {
        let p = policy(json!({"allow": {"and": [c.clone()]}}));
        assert_eq!(is_allow(decide(&p, Some("alice@example.com"))), want, "{c}");
    }
}

#[test]
fn user_and_authenticated_user() {
    let p = policy(json!({"allow": {"and": [{"user": "alice-id"}, {"authenticated_user": true}]}}));
    assert!(is_allow(decide(&p, Some("alice@example.com"))));
    assert!(matches!(decide(&p, None), Decision::Login { .. }));
}

#[test]
fn a_deny_needing_identity_sends_anonymous_to_sign_in() {
    let p = policy(json!([{"allow": {"or": [{"accept": 1}]}}, {"deny": {"or": [{"email": "x@y.z"}]}}]));
    assert!(matches!(decide(&p, None), Decision::Login { .. }));
}

#[test]
fn bad_documents_name_the_problem() {
    for (doc, needle) in [
        (json!({"allow": {"or": [{"device": {"is": "x"}}]}}), "device"),
        (json!({"allow": {"or": [{"source_ip": "10.0.0.0/99"}]}}), "source_ip"),
        (json!({"allow": {"or": [{"time_of_day": {"after": "9am"}}]}}), "time_of_day"),
        (json!({"allow": {"or": [{"frobnicate": 1}]}}), "unknown criterion `frobnicate`"),
        (json!({"allow": {"xor": []}}), "xor"),
        (json!({"permit": {}}), "permit"),
        (json!({"allow": {"or": [{"email": {"like": "x"}}]}}), "like"),
        (json!({"allow": {"or": [{"email": "a", "domain": "b"}]}}), "exactly one"),
    ] {
        let err = Policy::from_ppl(&doc).expect_err("must fail").to_string();
        assert!(err.contains(needle), "{doc}: {err}");
    }
}

const FP: &str = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";
const FP_LONG: &str =
    "8F:43:43:46:64:8F:6B:96:DF:89:DD:A9:01:C5:17:6B:10:A6:D8:39:61:DD:3C:1A:C8:8B:59:B2:DC:32:7A:A4";
const SPKI: &str = "FsDbM0rUYIiL3V339eIKqiz6HPSB+Pz2WeAWhqlqh8U=";

fn cert<'a>(fingerprint: &'a str, spki_hash: &'a str) -> ClientCertFacts<'a> {
    ClientCertFacts { fingerprint, spki_hash, san_email: &[], san_dns: &[], san_uri: &[] }
}

fn decide_cert(p: &Policy, cert: Option<ClientCertFacts<'_>>) -> Decision {
    p.decide(&Input {
        user: None,
        request: RequestFacts { client_certificate: cert, ..RequestFacts::default() },
    })
}

#[test]
fn client_certificates_match_by_fingerprint_or_spki_and_absence_is_invalid() {
    let p = policy(json!([
        {"allow": {"or": [
            {"client_certificate": {"fingerprint": FP_LONG}},
            {"client_certificate": {"spki_hash": [SPKI]}},
        ]}},
        {"deny": {"or": [{"invalid_client_certificate": true}]}},
    ]));
    assert!(is_allow(decide_cert(&p, Some(cert(FP, "other")))), "the long form is canonicalised");
    assert!(is_allow(decide_cert(&p, Some(cert("0000", SPKI)))));
    assert!(matches!(decide_cert(&p, Some(cert("0000", "other"))), Decision::Deny { .. }));
    assert_eq!(
        decide_cert(&p, None),
        Decision::Deny { reasons: Reasons::of(Reason::InvalidClientCertificate) }
    );
    assert!(p.reads_request(), "decisions depend on the certificate");
}

#[test]
fn client_certificate_conditions_must_all_hold() {
    // As in Pomerium, the conditions of one criterion are a conjunction: naming a
    // fingerprint and an SPKI hash does not let either one alone in.
    let p =
        policy(json!([{"allow": {"and": [{"client_certificate": {"fingerprint": FP, "spki_hash": SPKI}}]}}]));
    assert!(is_allow(decide_cert(&p, Some(cert(FP, SPKI)))));
    assert!(!is_allow(decide_cert(&p, Some(cert(FP, "other")))));
    assert!(!is_allow(decide_cert(&p, Some(cert("0000", SPKI)))));
}

#[test]
fn client_certificate_san_matchers() {
    let p = policy(json!([{"allow": {"and": [{"client_certificate": {
        "san_email": {"ends_with": "@example.com"},
        "san_dns": {"in": ["laptop.corp.example", "desktop.corp.example"]},
        "san_uri": {"starts_with": "spiffe://example.com/"},
    }}]}}]));
    let emails = ["alice@example.com".to_owned()];
    let dns = ["other.example".to_owned(), "laptop.corp.example".to_owned()];
    let uris = ["spiffe://example.com/alice".to_owned()];
    let facts = ClientCertFacts { san_email: &emails, san_dns: &dns, san_uri: &uris, ..cert(FP, SPKI) };
    assert!(is_allow(decide_cert(&p, Some(facts))), "any name of each kind may match");
    let no_email = ClientCertFacts { san_email: &[], ..facts };
    assert!(!is_allow(decide_cert(&p, Some(no_email))), "a certificate without the SAN kind fails");
    let bob = ["bob@evil.example".to_owned()];
    assert!(!is_allow(decide_cert(&p, Some(ClientCertFacts { san_email: &bob, ..facts }))));
}

#[test]
fn client_certificate_conditions_are_validated() {
    for (cond, needle) in [
        (json!({"fingerprint": "AB:CD:EF"}), "not a SHA-256 fingerprint"),
        (json!({"fingerprint": FP.to_uppercase()}), "not a SHA-256 fingerprint"),
        (json!({"fingerprint": []}), "empty"),
        (json!({"spki_hash": "c3BraQ=="}), "not a base64-encoded SHA-256"),
        (json!({"san_email": {"like": "x"}}), "san_email"),
        (json!({"subject": "CN=alice"}), "`subject` is not supported"),
        (json!({}), "at least one"),
        (json!("yes"), "expected a map"),
    ] {
        let doc = json!({"allow": {"or": [{"client_certificate": cond}]}});
        let err = Policy::from_ppl(&doc).expect_err("must fail").to_string();
        assert!(err.contains(needle), "{doc}: {err}");
    }
}
