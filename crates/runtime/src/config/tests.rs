use super::*;

const SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn base() -> Value {
    json!({
        "address": ":8443",
        "insecure_server": true,
        "authenticate_service_url": "https://authenticate.example.com",
        "idp_provider": "oidc",
        "idp_provider_url": "https://idp.example.com",
        "idp_client_id": "portcullis",
        "idp_client_secret": "s3cret",
        "shared_secret": SECRET,
        "routes": [{"from": "https://app.example.com", "to": "http://127.0.0.1:9000", "allowed_domains": ["example.com"]}],
    })
}

fn validate(doc: Value) -> Result<Config, Vec<FieldError>> {
    let mut raw: RawConfig = serde_json::from_value(doc.clone()).expect("raw parses");
    raw.unknown_keys = unknown_keys(&doc);
    match raw.validate() {
        Ok(c) => Ok(c),
        Err(ConfigError::Invalid(e)) => Err(e),
        Err(other) => panic!("{other}"),
    }
}

fn errors_for(doc: Value) -> Vec<String> {
    validate(doc).expect_err("must be invalid").into_iter().map(|e| e.to_string()).collect()
}

#[test]
fn a_minimal_pomerium_config_validates_with_pomerium_defaults() {
    let c = validate(base()).expect("valid");
    assert_eq!(c.server.address.port(), 8443);
    assert_eq!(c.cookie.name, "_pomerium");
    assert_eq!(c.cookie.expire, Duration::from_secs(14 * 3600));
    assert_eq!(c.idp.scopes, ["openid", "profile", "email", "offline_access"]);
    assert_eq!(c.nats.contract.prefix(), "portcullis");
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].from.host, "app.example.com");
    assert!(c.warnings.is_empty());
}

#[test]
fn errors_name_every_bad_field() {
    let mut doc = base();
    doc["shared_secret"] = json!("c2hvcnQ=");
    doc["cookie_expire"] = json!("forever");
    doc["routes"][0]["from"] = json!("not a url");
    doc["routes"][0]["policy"] = json!({"allow": {"or": [{"device": {"is": "x"}}]}});
    doc["nats"] = json!({"subject_prefix": "a.b"});
    let errors = errors_for(doc);
    for field in
        ["shared_secret:", "cookie_expire:", "routes[0].from:", "routes[0].policy:", "nats.subject_prefix:"]
    {
        assert!(errors.iter().any(|e| e.starts_with(field)), "{field} missing in {errors:?}");
    }
}

#[test]
fn tls_or_insecure_server_is_required() {
    let mut doc = base();
    doc.as_object_mut().map(|m| m.remove("insecure_server"));
    assert!(errors_for(doc).iter().any(|e| e.starts_with("certificate_file:")));
}

#[test]
fn unknown_keys_warn_without_failing() {
    let mut doc = base();
    doc["log_level"] = json!("debug");
    doc["routes"][0]["frobnicate"] = json!(true);
    let c = validate(doc).expect("still valid");
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[1].starts_with("routes[0].frobnicate"));
}

#[test]
fn legacy_keys_combine_as_pomerium_does() {
    let mut doc = base();
    doc["routes"][0]["allow_public_unauthenticated_access"] = json!(true);
    assert!(errors_for(doc).iter().any(|e| e.starts_with("routes[0].allow_public_unauthenticated_access")));
}

#[test]
fn idp_scopes_accept_a_comma_string() {
    let mut doc = base();
    doc["idp_scopes"] = json!("email, profile,groups");
    assert_eq!(validate(doc).expect("valid").idp.scopes, ["openid", "email", "profile", "groups"]);
}

#[test]
fn route_ids_are_content_hashes() {
    let a = validate(base()).expect("valid");
    let b = validate(base()).expect("valid");
    assert_eq!(a.routes[0].id, b.routes[0].id);
    let mut doc = base();
    doc["routes"][0]["allowed_domains"] = json!(["other.com"]);
    assert_ne!(validate(doc).expect("valid").routes[0].id, a.routes[0].id);
}

#[test]
fn redirect_targets_must_be_route_hosts() {
    let c = validate(base()).expect("valid");
    let ok = |u: &str| c.is_route_url(&Url::parse(u).expect("url"));
    assert!(ok("https://app.example.com/x?y=1"));
    assert!(!ok("https://evil.example.com/"));
    assert!(!ok("https://app.example.com.evil.com/"));
    assert!(!ok("https://user@app.example.com/"));
    assert!(!ok("javascript://app.example.com/"));
}

#[test]
fn addresses_parse_like_pomerium() {
    assert_eq!(parse_address(":443").map(|a| a.port()), Ok(443));
    assert!(parse_address("127.0.0.1:80").is_ok());
    assert!(parse_address("[::1]:80").is_ok());
    assert!(parse_address("443").is_err());
}

#[test]
fn keys_that_would_widen_a_route_if_ignored_are_errors() {
    let mut doc = base();
    doc["routes"][0]["regex_priority_order"] = json!(1);
    assert!(errors_for(doc).iter().any(|e| e.starts_with("routes[0].regex_priority_order:")));
    let mut doc = base();
    doc["routes"][0]["regex"] = json!("(unclosed");
    assert!(errors_for(doc).iter().any(|e| e.starts_with("routes[0].regex:")));
    let mut doc = base();
    doc["routes"][0]["set_request_headers"] = json!({"X-Cert": "${pomerium.client_cert_subject}"});
    assert!(
        errors_for(doc).iter().any(|e| e.contains("pomerium.client_cert_subject")),
        "unsupported templates fail"
    );
}

#[test]
fn routes_know_which_token_templates_they_use() {
    let mut doc = base();
    doc["routes"][0]["set_request_headers"] = json!({
        "X-Id": "Bearer ${pomerium.id_token}",
        "X-Both": "${portcullis.jwt}; pomerium.access_token",
    });
    let route = &validate(doc).expect("valid").routes[0];
    assert!(route.uses_template("id_token") && route.uses_template("jwt"));
    assert!(!route.uses_template("access_token"), "no template, only the words");
    assert!(!route.uses_template("id"), "a whole name, not its start");
    assert!(!validate(base()).expect("valid").routes[0].uses_template("jwt"));
}

#[test]
fn a_route_cannot_take_the_authenticate_host() {
    let mut doc = base();
    doc["routes"][0]["from"] = json!("https://authenticate.example.com");
    assert!(errors_for(doc).iter().any(|e| e.starts_with("routes[0].from:") && e.contains("authenticate")));
}

#[test]
fn load_balancing_policies_parse_and_bad_ones_name_the_field() {
    let mut doc = base();
    doc["routes"][0]["to"] = json!(["http://127.0.0.1:9000", "http://127.0.0.1:9001"]);
    doc["routes"][0]["load_balancing_policy"] = json!("LEAST_REQUEST");
    let c = validate(doc.clone()).expect("valid");
    assert_eq!(c.routes[0].to.len(), 2);
    assert_eq!(c.routes[0].load_balancing, LoadBalancing::LeastRequest);
    doc["routes"][0]["load_balancing_policy"] = json!("FASTEST");
    assert!(errors_for(doc).iter().any(|e| e.starts_with("routes[0].load_balancing_policy:")));
}

#[test]
fn numeric_secrets_from_the_environment_are_strings() {
    let mut doc = base();
    doc["idp_client_secret"] = json!(123456);
    assert_eq!(validate(doc).expect("valid").idp.client_secret, "123456");
}

#[test]
fn legacy_claims_and_cors_keys_become_ppl() {
    use portcullis_policy::{Decision, Input, RequestFacts, UserFacts};
    let mut doc = base();
    doc["routes"][0] = json!({
        "from": "https://app.example.com", "to": "http://127.0.0.1:9000",
        "allowed_idp_claims": {"department": ["eng", "ops"]}, "cors_allow_preflight": true,
    });
    let c = validate(doc).expect("valid");
    let policy = &c.routes[0].policy;
    let claims = |dept: &str| json!({"department": dept}).as_object().cloned().unwrap_or_default();
    let decide = |dept: &str, cors: bool| {
        let claims = claims(dept);
        let user = UserFacts { user_id: "u", email: Some("u@example.com"), claims: &claims, groups: &[] };
        let request =
            RequestFacts { method: "GET", path: "/", cors_preflight: cors, ..RequestFacts::default() };
        policy.decide(&Input { user: Some(user), request })
    };
    assert!(matches!(decide("ops", false), Decision::Allow { .. }));
    assert!(matches!(decide("sales", false), Decision::Deny { .. }));
    assert!(matches!(decide("sales", true), Decision::Allow { .. }), "preflights pass");
}

#[test]
fn route_timeouts_default_like_pomerium_and_zero_turns_them_off() {
    let mut doc = base();
    let c = validate(doc.clone()).expect("valid");
    assert_eq!(c.routes[0].timeout, DEFAULT_ROUTE_TIMEOUT);
    assert_eq!(c.routes[0].idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
    doc["routes"][0]["timeout"] = json!("0s");
    doc["routes"][0]["idle_timeout"] = json!("0s");
    let c = validate(doc.clone()).expect("valid");
    assert_eq!(c.routes[0].timeout, Duration::MAX, "no deadline");
    assert_eq!(c.routes[0].idle_timeout, None);
    doc["routes"][0]["idle_timeout"] = json!("90s");
    assert_eq!(validate(doc.clone()).expect("valid").routes[0].idle_timeout, Some(Duration::from_secs(90)));
    doc["routes"][0]["idle_timeout"] = json!("soon");
    assert!(errors_for(doc).iter().any(|e| e.starts_with("routes[0].idle_timeout:")));
}

#[test]
fn a_directory_section_validates_with_defaults_and_hides_credentials() {
    let mut doc = base();
    doc["directory"] = json!({"provider": "scim", "scim": {"url": "https://scim.example.com/v2", "bearer_token": "tok-123"}});
    let c = validate(doc).expect("valid");
    let d = c.directory.expect("directory configured");
    assert_eq!(d.refresh_interval, Duration::from_secs(600));
    assert_eq!(d.refresh_timeout, Duration::from_secs(300));
    assert_eq!(d.requests_per_second, Some(10.0));
    let DirectoryProvider::Scim(s) = &d.provider else { panic!("scim") };
    assert_eq!(s.bearer_token.as_ref().map(Credential::expose), Some("tok-123"));
    assert!(!format!("{d:?}").contains("tok-123"), "credentials must not show in Debug");
    assert!(validate(base()).expect("valid").directory.is_none());
}

#[test]
fn directory_errors_name_the_field() {
    let cases = [
        (json!({"scim": {"url": "x"}}), "directory.provider:"),
        (json!({"provider": "nope"}), "directory.provider:"),
        (json!({"provider": "scim", "scim": {"url": "ftp://scim"}}), "directory.scim.url:"),
        (
            json!({"provider": "scim", "scim": {"url": "https://s", "bearer_tokne": "x"}}),
            "directory.scim.bearer_tokne:",
        ),
        (json!({"provider": "okta", "okta": {"url": "https://o.okta.com"}}), "directory.okta.api_token:"),
        (
            json!({"provider": "okta", "okta": {"url": "https://o", "api_token": "a", "api_token_file": "/x"}}),
            "directory.okta.api_token:",
        ),
        (
            json!({"provider": "ldap", "ldap": {"url": "http://ldap", "user_base_dn": "dc=x"}}),
            "directory.ldap.url:",
        ),
        (json!({"provider": "ldap", "ldap": {"url": "ldap://ldap"}}), "directory.ldap.user_base_dn:"),
        (
            json!({"provider": "ldap", "ldap": {"url": "ldap://l", "user_base_dn": "dc=x", "membership": "both"}}),
            "directory.ldap.membership:",
        ),
        (
            json!({"provider": "google", "google": {"service_account": "{}", "impersonate_user": "a@b"}}),
            "directory.google.service_account:",
        ),
        (
            json!({"provider": "scim", "refresh_interval": "0s", "scim": {"url": "https://s"}}),
            "directory.refresh_interval:",
        ),
        (
            json!({"provider": "scim", "requests_per_second": -1, "scim": {"url": "https://s"}}),
            "directory.requests_per_second:",
        ),
        (json!({"provider": "scim", "scim": {"url": "https://s"}, "typo": 1}), "directory.typo:"),
    ];
    for (section, field) in cases {
        let mut doc = base();
        doc["directory"] = section.clone();
        let errors = errors_for(doc);
        assert!(errors.iter().any(|e| e.starts_with(field)), "{field} missing for {section}: {errors:?}");
    }
}

#[test]
fn proxy_threads_default_to_one_per_core_and_bad_counts_name_the_field() {
    assert_eq!(validate(base()).expect("valid").proxy_threads, None);
    let mut doc = base();
    doc["proxy_threads"] = json!(1);
    assert_eq!(validate(doc).expect("valid").proxy_threads, Some(1));
    for bad in [json!(0), json!(-2), json!(100_000)] {
        let mut doc = base();
        doc["proxy_threads"] = bad.clone();
        let errors = errors_for(doc);
        assert!(errors.iter().any(|e| e.starts_with("proxy_threads:")), "{bad}: {errors:?}");
    }
}
