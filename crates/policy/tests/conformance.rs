//! Table-driven conformance suite for the Pomerium Policy Language (PPL) engine.
//!
//! Every case is one row: a name, a PPL document (`serde_json::json!`), an input (anonymous
//! or a signed-in user, plus method, path, client address, clock and CORS flag), the
//! expected decision (allow / deny / login) with, where meaningful, the exact set of reason
//! strings, and a `cite` naming the Pomerium document, source file or reason string the row
//! follows.
//!
//! Sources the rows follow:
//! * operators and criteria: <https://www.pomerium.com/docs/reference/policy> and
//!   `pkg/policy/generator` (`generator.go`, `conditionals.go`);
//! * reason merging and inversion: `pkg/policy/rules/rules.go` (`merge_with_and`,
//!   `merge_with_or`, `invert_criterion_result`, `object_get`);
//! * decision order: `authorize/check_response.go` (`handleResult`);
//! * legacy keys: `config/policy_ppl.go`, mirrored by Portcullis' `route_policy`.
//!
//! A row marked `.engine_disagrees(..)` is one where the engine currently differs from the
//! semantics above. It stays in the table: the runner prints it as a known disagreement
//! instead of failing, and fails if the engine starts to agree (so the mark gets removed).

use std::collections::BTreeSet;
use std::net::IpAddr;

use portcullis_policy::{Decision, Input, Policy, RequestFacts, UserFacts};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------
// Clock: fixed instants (2026-11-29 is a Sunday).
// ---------------------------------------------------------------------------------------

/// 2026-11-29T12:00:00Z, a Sunday.
const SUN_NOON: i64 = 1_795_953_600;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// 2026-11-25T12:00:00Z, a Wednesday.
const WED_NOON: i64 = SUN_NOON - 4 * DAY;
/// 2026-11-30T00:00:00Z, Monday midnight.
const MON_MIDNIGHT: i64 = SUN_NOON + 12 * HOUR;

// ---------------------------------------------------------------------------------------
// Citations.
// ---------------------------------------------------------------------------------------

const DOC: &str = "https://www.pomerium.com/docs/reference/policy";
const DOC_OPS: &str =
    "https://www.pomerium.com/docs/reference/policy#operators; pkg/policy/generator/conditionals.go";
const DOC_NOT: &str =
    "policy#operators: `not` = none true (NOT A AND NOT B), generator/conditionals.go generateNotRule";
const DOC_NOR: &str =
    "policy#operators: `nor` = not all true (NOT A OR NOT B), generator/conditionals.go generateNorRule";
const MERGE: &str =
    "pkg/policy/rules/rules.go merge_with_and/merge_with_or: reasons of the deciding children";
const INVERT: &str = "pkg/policy/rules/rules.go invert_criterion_result: inverted results keep their reasons";
const EMPTY: &str =
    "pkg/policy/generator/generator.go: `if len(policyRule.And) > 0` — empty lists are skipped";
const RULES_OR: &str =
    "pkg/policy/generator/generator.go: all rules of one action are merged with merge_with_or";
const CHECK: &str = "authorize/check_response.go handleResult: user-unauthenticated → login; deny → 403; allow → ok; else 403";
const NESTED: &str = "policy#operators (Portcullis nests operators with ordinary boolean semantics)";
const ACCEPT: &str = "policy#accept: always true, value ignored; reason `accept`";
const REJECT: &str = "policy#reject: always false, value ignored; reason `reject`";
const AUTH_USER: &str =
    "policy#authenticated-user: user-ok / user-unauthorized (criteria/authenticated_user.go)";
const EMAIL: &str = "policy#email: email-ok / email-unauthorized";
const EMAIL_CI: &str = "policy#email + Portcullis hardening: case-insensitive, trailing dot ignored";
const DOMAIN: &str =
    "policy#domain: domain of local@domain; domain-ok / domain-unauthorized (criteria/domain.go)";
const DOMAIN_AT: &str = "policy#domain: an address with several `@` (or not local@domain) matches nothing";
const USER: &str = "policy#user: the user id (sub); user-ok / user-unauthorized (criteria/user.go)";
const CLAIM: &str =
    "policy#claim: list matcher, bare scalar = has; claim-ok / claim-unauthorized (criteria/claim.go)";
const CLAIM_PATH: &str = "policy#claim: nested paths with `/` or `.` (rules.go object_get)";
const GROUPS: &str = "policy#groups: list matcher over the user's groups; groups-ok / groups-unauthorized";
const METHOD: &str = "policy#http-method: http-method-ok / http-method-unauthorized, upper-cased";
const PATH: &str = "policy#http-path: http-path-ok / http-path-unauthorized";
const SOURCE_IP: &str = "policy#source-ip: IP or CIDR, list; source-ip-ok / source-ip-unauthorized";
const CORS: &str =
    "policy#cors-preflight: cors-request / non-cors-request; value unused (criteria/cors_preflight.go)";
const DATE: &str = "policy#date: after/before RFC 3339; date-ok / date-unauthorized";
const DOW: &str =
    "policy#day-of-week: mon-fri, lists, {days, timezone}; day-of-week-ok / day-of-week-unauthorized";
const TOD: &str =
    "policy#time-of-day: {after, before, timezone}, across midnight; time-of-day-ok / -unauthorized";
const NEEDS_USER: &str =
    "criteria needing a session give user-unauthenticated without one (NewCriterionSessionRule)";
const NO_USER: &str = "request criteria do not need a session (NewCriterionRule)";
const STR_M: &str = "policy#string-matcher: is, not, starts_with, ends_with, contains, in, not_in; bare = is";
const STR_AND: &str =
    "policy#string-matcher: several operators in one matcher are AND-ed (criteria/matchers.go)";
const LIST_M: &str = "policy#list-matcher: has, is (exactly one element), exclude (criteria/matchers.go)";
const LEGACY: &str = "config/policy_ppl.go: legacy keys become one `allow: or:` rule";
const NO_POLICY: &str = "a route with no policy denies everyone (default allow = [false, set()])";

// ---------------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct User {
    id: &'static str,
    email: Option<&'static str>,
    claims: Value,
    groups: Vec<&'static str>,
}

#[derive(Clone, Debug)]
struct In {
    user: Option<User>,
    method: &'static str,
    path: &'static str,
    ip: Option<&'static str>,
    now: i64,
    cors: bool,
}

fn request() -> In {
    In { user: None, method: "GET", path: "/", ip: Some("203.0.113.7"), now: SUN_NOON, cors: false }
}

/// No session.
fn anon() -> In {
    request()
}

/// alice-id / alice@example.com, groups admins+staff.
fn alice() -> In {
    In {
        user: Some(User {
            id: "alice-id",
            email: Some("alice@example.com"),
            claims: json!({
                "groups": ["admins", "staff"],
                "roles": ["viewer"],
                "department": "eng",
                "org": {"team": "core", "site": {"city": "berlin"}},
                "email_verified": true,
                "level": 3,
                "ids": [1, 2, 3],
                "custom.role": "lead",
                "https://example.com/roles": ["admin"]
            }),
            groups: vec!["admins", "staff"],
        }),
        ..request()
    }
}

/// bob-id / bob@partner.org, group contractors.
fn bob() -> In {
    In {
        user: Some(User {
            id: "bob-id",
            email: Some("bob@partner.org"),
            claims: json!({"groups": ["contractors"], "department": "sales"}),
            groups: vec!["contractors"],
        }),
        ..request()
    }
}

/// A signed-in user with only an id (no email, claims or groups).
fn user(id: &'static str) -> In {
    In { user: Some(User { id, email: None, claims: json!({}), groups: vec![] }), ..request() }
}

impl In {
    fn with_user(mut self, f: impl FnOnce(&mut User)) -> In {
        let u = self.user.as_mut().unwrap_or_else(|| panic!("input has no user to change"));
        f(u);
        self
    }
    fn email(self, e: &'static str) -> In {
        self.with_user(|u| u.email = Some(e))
    }
    fn no_email(self) -> In {
        self.with_user(|u| u.email = None)
    }
    fn id(self, id: &'static str) -> In {
        self.with_user(|u| u.id = id)
    }
    fn claims(self, c: Value) -> In {
        self.with_user(|u| u.claims = c)
    }
    fn groups(self, g: &[&'static str]) -> In {
        let g = g.to_vec();
        self.with_user(|u| u.groups = g)
    }
    fn method(mut self, m: &'static str) -> In {
        self.method = m;
        self
    }
    fn path(mut self, p: &'static str) -> In {
        self.path = p;
        self
    }
    fn ip(mut self, ip: &'static str) -> In {
        self.ip = Some(ip);
        self
    }
    fn no_ip(mut self) -> In {
        self.ip = None;
        self
    }
    fn at(mut self, now: i64) -> In {
        self.now = now;
        self
    }
    fn cors(mut self) -> In {
        self.cors = true;
        self
    }

    fn describe(&self) -> String {
        let who = match &self.user {
            None => "anonymous".to_owned(),
            Some(u) => {
                format!("user id={:?} email={:?} groups={:?} claims={}", u.id, u.email, u.groups, u.claims)
            }
        };
        format!("{who}; {} {} ip={:?} now={} cors={}", self.method, self.path, self.ip, self.now, self.cors)
    }

    fn decide(&self, policy: &Policy) -> Decision {
        let claims: Map<String, Value> = match self.user.as_ref().map(|u| &u.claims) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let groups: Vec<String> = self
            .user
            .as_ref()
            .map(|u| u.groups.iter().map(|g| (*g).to_owned()).collect())
            .unwrap_or_default();
        let client_ip =
            self.ip.map(|ip| ip.parse::<IpAddr>().unwrap_or_else(|e| panic!("bad test address {ip}: {e}")));
        let user = self.user.as_ref().map(|u| UserFacts {
            user_id: u.id,
            email: u.email,
            groups: &groups,
            claims: &claims,
        });
        policy.decide(&Input {
            user,
            request: RequestFacts {
                method: self.method,
                path: self.path,
                client_ip,
                now_unix: self.now,
                cors_preflight: self.cors,
                client_certificate: None,
            },
        })
    }
}

// ---------------------------------------------------------------------------------------
// Expectations and cases.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Allow,
    Deny,
    Login,
}

#[derive(Clone, Debug)]
struct Expect {
    kind: Kind,
    /// `None`: reasons not checked.
    reasons: Option<BTreeSet<&'static str>>,
}

fn allow(reasons: &[&'static str]) -> Expect {
    Expect { kind: Kind::Allow, reasons: Some(reasons.iter().copied().collect()) }
}

fn deny(reasons: &[&'static str]) -> Expect {
    Expect { kind: Kind::Deny, reasons: Some(reasons.iter().copied().collect()) }
}

fn login() -> Expect {
    Expect { kind: Kind::Login, reasons: Some(["user-unauthenticated"].into_iter().collect()) }
}

struct Case {
    name: &'static str,
    cite: &'static str,
    policy: Value,
    input: In,
    expect: Expect,
    disagrees: Option<&'static str>,
}

fn case(name: &'static str, cite: &'static str, policy: Value, input: In, expect: Expect) -> Case {
    Case { name, cite, policy, input, expect, disagrees: None }
}

impl Case {
    /// The engine currently differs from the documented semantics on this row.
    // Kept for marking a future disagreement while the engine is being fixed.
    #[allow(dead_code)]
    fn engine_disagrees(mut self, why: &'static str) -> Case {
        self.disagrees = Some(why);
        self
    }
}

/// `allow: or: [c]`.
fn only(c: Value) -> Value {
    json!({"allow": {"or": [c]}})
}

/// `allow: or: items`.
fn any_of(items: Value) -> Value {
    json!({"allow": {"or": items}})
}

/// `allow: and: items`.
fn all_of(items: Value) -> Value {
    json!({"allow": {"and": items}})
}

fn outcome(d: Decision) -> (Kind, BTreeSet<String>) {
    let (kind, reasons) = match d {
        Decision::Allow { reasons } => (Kind::Allow, reasons),
        Decision::Deny { reasons } => (Kind::Deny, reasons),
        Decision::Login { reasons } => (Kind::Login, reasons),
    };
    (kind, reasons.to_strings().into_iter().collect())
}

/// Evaluate one case: `Ok(())` when the engine agrees, `Err(what happened)` otherwise.
fn check(c: &Case) -> Result<(), String> {
    let policy = Policy::from_ppl(&c.policy).map_err(|e| format!("policy did not parse: {e}"))?;
    let (kind, reasons) = outcome(c.input.decide(&policy));
    let want_reasons: Option<BTreeSet<String>> =
        c.expect.reasons.as_ref().map(|r| r.iter().map(|s| (*s).to_owned()).collect());
    let kind_ok = kind == c.expect.kind;
    let reasons_ok = want_reasons.as_ref().is_none_or(|w| *w == reasons);
    if kind_ok && reasons_ok {
        Ok(())
    } else {
        Err(format!(
            "got {kind:?} {reasons:?}, want {:?} {:?}",
            c.expect.kind,
            want_reasons.unwrap_or_default()
        ))
    }
}

/// Run a table; panic listing every failing row. Known disagreements are printed.
fn run(table: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    let mut known = 0;
    for c in cases {
        match (check(c), c.disagrees) {
            (Ok(()), None) => {}
            (Err(e), None) => failures.push(format!(
                "[{table}] {}: {e}\n    policy: {}\n    input:  {}\n    cite:   {}",
                c.name,
                c.policy,
                c.input.describe(),
                c.cite
            )),
            (Err(e), Some(why)) => {
                known += 1;
                eprintln!(
                    "KNOWN ENGINE DISAGREEMENT [{table}] {}: {e}\n    why: {why}\n    cite: {}",
                    c.name, c.cite
                );
            }
            (Ok(()), Some(why)) => failures.push(format!(
                "[{table}] {}: marked as an engine disagreement ({why}) but the engine now agrees; \
                 remove the mark",
                c.name
            )),
        }
    }
    eprintln!("[{table}] {} cases, {} known engine disagreements", cases.len(), known);
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Tables.
// ---------------------------------------------------------------------------------------

fn e_alice() -> Value {
    json!({"email": "alice@example.com"})
}
fn e_bob() -> Value {
    json!({"email": "bob@partner.org"})
}
fn d_example() -> Value {
    json!({"domain": "example.com"})
}
fn d_other() -> Value {
    json!({"domain": "other.org"})
}

#[rustfmt::skip]
fn operator_cases() -> Vec<Case> {
    let (ea, eb, dx, dot) = (e_alice(), e_bob(), d_example(), d_other());
    vec![
        // and
        case("and: all true", MERGE, all_of(json!([ea, dx])), alice(), allow(&["email-ok", "domain-ok"])),
        case("and: one false", MERGE, all_of(json!([ea, dot])), alice(), deny(&["domain-unauthorized"])),
        case("and: all false", MERGE, all_of(json!([eb, dot])), alice(), deny(&["email-unauthorized", "domain-unauthorized"])),
        case("and: single true", DOC_OPS, all_of(json!([ea])), alice(), allow(&["email-ok"])),
        case("and: false reasons only", MERGE, all_of(json!([ea, dx, {"user": "bob-id"}])), alice(), deny(&["user-unauthorized"])),
        // or
        case("or: one true", MERGE, any_of(json!([eb, dx])), alice(), allow(&["domain-ok"])),
        case("or: all true", MERGE, any_of(json!([ea, dx])), alice(), allow(&["email-ok", "domain-ok"])),
        case("or: none true", MERGE, any_of(json!([eb, dot])), alice(), deny(&["email-unauthorized", "domain-unauthorized"])),
        case("or: true reasons only", MERGE, any_of(json!([ea, eb, dot])), alice(), allow(&["email-ok"])),
        // not (NOR of the list)
        case("not: none true → true", DOC_NOT, json!({"allow": {"not": [eb, dot]}}), alice(), allow(&["email-unauthorized", "domain-unauthorized"])),
        case("not: one true → false", DOC_NOT, json!({"allow": {"not": [ea, dot]}}), alice(), deny(&["email-ok"])),
        case("not: all true → false", DOC_NOT, json!({"allow": {"not": [ea, dx]}}), alice(), deny(&["email-ok", "domain-ok"])),
        case("not: single false → true", INVERT, json!({"allow": {"not": [eb]}}), alice(), allow(&["email-unauthorized"])),
        case("not: single true → false", INVERT, json!({"allow": {"not": [ea]}}), alice(), deny(&["email-ok"])),
        // nor (NAND of the list)
        case("nor: all true → false", DOC_NOR, json!({"allow": {"nor": [ea, dx]}}), alice(), deny(&["email-ok", "domain-ok"])),
        case("nor: one false → true", DOC_NOR, json!({"allow": {"nor": [ea, dot]}}), alice(), allow(&["domain-unauthorized"])),
        case("nor: none true → true", DOC_NOR, json!({"allow": {"nor": [eb, dot]}}), alice(), allow(&["email-unauthorized", "domain-unauthorized"])),
        case("nor: single true → false", INVERT, json!({"allow": {"nor": [ea]}}), alice(), deny(&["email-ok"])),
        case("nor: single false → true", INVERT, json!({"allow": {"nor": [eb]}}), alice(), allow(&["email-unauthorized"])),
        // several operators in one block, several rules
        case("block: and false, or true → OR-ed", DOC_OPS, json!({"allow": {"and": [eb], "or": [dx]}}), alice(), allow(&["domain-ok"])),
        case("block: both false", DOC_OPS, json!({"allow": {"and": [eb], "or": [dot]}}), alice(), deny(&["email-unauthorized", "domain-unauthorized"])),
        case("block: and + not both true", DOC_OPS, json!({"allow": {"and": [ea], "not": [dot]}}), alice(), allow(&["email-ok", "domain-unauthorized"])),
        case("block: all four operators, only nor true", DOC_OPS, json!({"allow": {"and": [eb], "or": [dot], "not": [ea], "nor": [ea, dot]}}), alice(), allow(&["domain-unauthorized"])),
        case("rules: separate allow rules OR-ed", RULES_OR, json!([{"allow": {"and": [eb]}}, {"allow": {"and": [dx]}}]), alice(), allow(&["domain-ok"])),
        case("rules: separate allow rules all false", RULES_OR, json!([{"allow": {"and": [eb]}}, {"allow": {"and": [dot]}}]), alice(), deny(&["email-unauthorized", "domain-unauthorized"])),
        case("rules: allow and deny in one object", CHECK, json!({"allow": {"or": [dx]}, "deny": {"or": [ea]}}), alice(), deny(&["email-ok"])),
        case("rules: deny reasons union over deny rules", RULES_OR, json!([{"allow": {"or": [{"accept": true}]}}, {"deny": {"or": [ea]}}, {"deny": {"or": [dx]}}]), alice(), deny(&["email-ok", "domain-ok"])),
        case("rules: one-element list form", DOC, json!([{"allow": {"or": [ea]}}]), alice(), allow(&["email-ok"])),
        // empty lists
        case("empty: and [] skipped", EMPTY, json!({"allow": {"and": []}}), alice(), deny(&[])),
        case("empty: or [] skipped", EMPTY, json!({"allow": {"or": []}}), alice(), deny(&[])),
        case("empty: not [] skipped (not vacuously true)", EMPTY, json!({"allow": {"not": []}}), alice(), deny(&[])),
        case("empty: not [] skipped for anonymous", EMPTY, json!({"allow": {"not": []}}), anon(), deny(&[])),
        case("empty: nor [] skipped", EMPTY, json!({"allow": {"nor": []}}), alice(), deny(&[])),
        case("empty: empty and beside a true or", EMPTY, json!({"allow": {"and": [], "or": [ea]}}), alice(), allow(&["email-ok"])),
        case("empty: deny not [] does not deny", EMPTY, json!([{"allow": {"or": [{"accept": true}]}}, {"deny": {"not": []}}]), anon(), allow(&["accept"])),
        case("empty: deny and [] does not deny", EMPTY, json!([{"allow": {"or": [dx]}}, {"deny": {"and": []}}]), alice(), allow(&["domain-ok"])),
        case("empty: policy [] denies signed-in user", NO_POLICY, json!([]), alice(), deny(&[])),
        // nesting
        case("nested: or of ands", NESTED, any_of(json!([{"and": [ea, dx]}, {"and": [eb]}])), alice(), allow(&["email-ok", "domain-ok"])),
        case("nested: and of ors true", NESTED, all_of(json!([{"or": [eb, dx]}, {"or": [{"user": "alice-id"}]}])), alice(), allow(&["domain-ok", "user-ok"])),
        case("nested: and of ors false", NESTED, all_of(json!([{"or": [eb, dot]}, {"or": [{"user": "alice-id"}]}])), alice(), deny(&["email-unauthorized", "domain-unauthorized"])),
        case("nested: not inside and holds", NESTED, all_of(json!([dx, {"not": [eb]}])), alice(), allow(&["domain-ok", "email-unauthorized"])),
        case("nested: not inside and blocks", NESTED, all_of(json!([dx, {"not": [ea]}])), alice(), deny(&["email-ok"])),
        case("nested: nor inside or", NESTED, any_of(json!([{"nor": [ea, dx]}, {"user": "bob-id"}])), alice(), deny(&["email-ok", "domain-ok", "user-unauthorized"])),
        case("nested: not of not true", NESTED, json!({"allow": {"not": [{"not": [ea]}]}}), alice(), allow(&["email-ok"])),
        case("nested: not of not false", NESTED, json!({"allow": {"not": [{"not": [eb]}]}}), alice(), deny(&["email-unauthorized"])),
        case("nested: three levels", NESTED, all_of(json!([{"or": [{"and": [ea, {"not": [dot]}]}, {"reject": true}]}, {"groups": "admins"}])), alice(), allow(&["email-ok", "domain-unauthorized", "groups-ok"])),
        case("nested: anonymous inside and → login", NESTED, any_of(json!([{"and": [{"accept": true}, ea]}])), anon(), login()),
        case("nested: anonymous inside not(or) → login", NESTED, json!({"allow": {"not": [{"or": [ea]}]}}), anon(), login()),
        case("nested: empty nor inside or is false", NESTED, any_of(json!([{"nor": []}])), anon(), deny(&[])),
        case("nested: empty and inside or is skipped", EMPTY, any_of(json!([{"and": []}])), anon(), deny(&[])),
        case("nested: empty not inside or is skipped", EMPTY, any_of(json!([{"reject": true}, {"not": []}])), anon(), deny(&["reject"])),
    ]
}

#[rustfmt::skip]
fn decision_order_cases() -> Vec<Case> {
    let (ea, eb, dx, dot) = (e_alice(), e_bob(), d_example(), d_other());
    let public_deny_email = json!([{"allow": {"or": [{"accept": true}]}}, {"deny": {"or": [{"email": "x@y.z"}]}}]);
    let public_deny_admin = json!([{"allow": {"or": [{"accept": true}]}}, {"deny": {"or": [{"http_path": "/admin"}]}}]);
    vec![
        case("no policy: anonymous denied", NO_POLICY, json!([]), anon(), deny(&[])),
        case("no policy: signed-in denied", NO_POLICY, json!([]), bob(), deny(&[])),
        case("unauthenticated before deny", CHECK, json!([{"allow": {"or": [ea]}}, {"deny": {"or": [{"http_path": "/admin"}]}}]), anon().path("/admin"), login()),
        case("deny over allow", CHECK, json!([{"allow": {"or": [dx]}}, {"deny": {"or": [ea]}}]), alice(), deny(&["email-ok"])),
        case("deny rule not matching → allow", CHECK, json!([{"allow": {"or": [dx]}}, {"deny": {"or": [ea]}}]), user("carl-id").email("carl@example.com"), allow(&["domain-ok"])),
        case("public + deny needing identity → login", CHECK, public_deny_email.clone(), anon(), login()),
        case("public + deny needing identity, other user → allow", CHECK, public_deny_email.clone(), alice(), allow(&["accept"])),
        case("public + deny needing identity, that user → deny", CHECK, public_deny_email, user("x-id").email("x@y.z"), deny(&["email-ok"])),
        case("public + request deny, matching → deny", CHECK, public_deny_admin.clone(), anon().path("/admin"), deny(&["http-path-ok"])),
        case("public + request deny, not matching → allow", CHECK, public_deny_admin, anon(), allow(&["accept"])),
        case("deny and(path, email) false for anonymous → login", CHECK, json!([{"allow": {"or": [{"accept": true}]}}, {"deny": {"and": [{"http_path": "/x"}, ea]}}]), anon(), login()),
        case("reject only: anonymous gets 403 not login", REJECT, only(json!({"reject": true})), anon(), deny(&["reject"])),
        case("allow or(email, method) false → login", CHECK, any_of(json!([ea, {"http_method": "POST"}])), anon(), login()),
        case("allow or(email, method) true by method → allow", MERGE, any_of(json!([ea, {"http_method": "GET"}])), anon(), allow(&["http-method-ok"])),
        case("login reasons are user-unauthenticated", CHECK, all_of(json!([{"accept": true}, ea])), anon(), login()),
        case("deny-only policy, deny false → 403 without reasons", CHECK, json!({"deny": {"or": [eb]}}), alice(), deny(&[])),
        case("deny-only policy, deny true → 403", CHECK, json!({"deny": {"or": [ea]}}), alice(), deny(&["email-ok"])),
        case("deny false + allow true → allow", CHECK, json!([{"allow": {"or": [dx]}}, {"deny": {"or": [eb]}}]), alice(), allow(&["domain-ok"])),
        case("deny via not, anonymous → login", CHECK, json!([{"allow": {"or": [{"accept": true}]}}, {"deny": {"not": [ea]}}]), anon(), login()),
        case("deny via not, other user → deny", INVERT, json!([{"allow": {"or": [{"accept": true}]}}, {"deny": {"not": [ea]}}]), bob(), deny(&["email-unauthorized"])),
        case("allow via not, anonymous → login", CHECK, json!({"allow": {"not": [eb]}}), anon(), login()),
        case("deny reported with deny reasons", CHECK, json!([{"allow": {"or": [dx, ea]}}, {"deny": {"or": [{"user": "alice-id"}]}}]), alice(), deny(&["user-ok"])),
        case("no allow → 403 with allow reasons", CHECK, json!([{"allow": {"or": [eb]}}, {"deny": {"or": [dot]}}]), alice(), deny(&["email-unauthorized"])),
        case("deny accept denies everyone", CHECK, json!([{"allow": {"or": [{"accept": true}]}}, {"deny": {"or": [{"accept": true}]}}]), anon(), deny(&["accept"])),
        case("allow accept + allow email: anonymous allowed", MERGE, json!([{"allow": {"or": [{"accept": true}]}}, {"allow": {"or": [ea]}}]), anon(), allow(&["accept"])),
    ]
}

#[rustfmt::skip]
fn identity_cases() -> Vec<Case> {
    vec![
        // accept / reject
        case("accept: true, signed in", ACCEPT, only(json!({"accept": true})), alice(), allow(&["accept"])),
        case("accept: true, anonymous", ACCEPT, only(json!({"accept": true})), anon(), allow(&["accept"])),
        case("accept: false still accepts", ACCEPT, only(json!({"accept": false})), anon(), allow(&["accept"])),
        case("accept: 0 still accepts", ACCEPT, only(json!({"accept": 0})), anon(), allow(&["accept"])),
        case("accept: {} still accepts", ACCEPT, only(json!({"accept": {}})), bob(), allow(&["accept"])),
        case("reject: true, signed in", REJECT, only(json!({"reject": true})), alice(), deny(&["reject"])),
        case("reject: false still rejects", REJECT, only(json!({"reject": false})), alice(), deny(&["reject"])),
        case("reject in deny never denies", REJECT, json!([{"allow": {"or": [{"accept": true}]}}, {"deny": {"or": [{"reject": true}]}}]), anon(), allow(&["accept"])),
        // authenticated_user
        case("authenticated_user: signed in", AUTH_USER, only(json!({"authenticated_user": true})), alice(), allow(&["user-ok"])),
        case("authenticated_user: other user", AUTH_USER, only(json!({"authenticated_user": true})), bob(), allow(&["user-ok"])),
        case("authenticated_user: anonymous → login", NEEDS_USER, only(json!({"authenticated_user": true})), anon(), login()),
        case("authenticated_user: empty user id", AUTH_USER, only(json!({"authenticated_user": true})), user(""), deny(&["user-unauthorized"])),
        case("authenticated_user: value unused", "criteria/authenticated_user.go: CriterionDataTypeUnused", only(json!({"authenticated_user": false})), alice(), allow(&["user-ok"])),
        // email
        case("email: bare string matches", EMAIL, only(json!({"email": "alice@example.com"})), alice(), allow(&["email-ok"])),
        case("email: is matches", EMAIL, only(json!({"email": {"is": "alice@example.com"}})), alice(), allow(&["email-ok"])),
        case("email: other user", EMAIL, only(json!({"email": "alice@example.com"})), bob(), deny(&["email-unauthorized"])),
        case("email: anonymous → login", NEEDS_USER, only(json!({"email": "alice@example.com"})), anon(), login()),
        case("email: policy upper case", EMAIL_CI, only(json!({"email": {"is": "ALICE@EXAMPLE.COM"}})), alice(), allow(&["email-ok"])),
        case("email: input mixed case", EMAIL_CI, only(json!({"email": "alice@example.com"})), alice().email("Alice@Example.Com"), allow(&["email-ok"])),
        case("email: input trailing dot", EMAIL_CI, only(json!({"email": "alice@example.com"})), alice().email("alice@example.com."), allow(&["email-ok"])),
        case("email: policy trailing dot", EMAIL_CI, only(json!({"email": "alice@example.com."})), alice(), allow(&["email-ok"])),
        case("email: user without email", EMAIL, only(json!({"email": "alice@example.com"})), alice().no_email(), deny(&["email-unauthorized"])),
        case("email: prefix is not equal", EMAIL, only(json!({"email": "alice@example.co"})), alice(), deny(&["email-unauthorized"])),
        case("email: not the user id", EMAIL, only(json!({"email": "alice-id"})), alice(), deny(&["email-unauthorized"])),
        // domain
        case("domain: matches", DOMAIN, only(json!({"domain": "example.com"})), alice(), allow(&["domain-ok"])),
        case("domain: is matches", DOMAIN, only(json!({"domain": {"is": "example.com"}})), alice(), allow(&["domain-ok"])),
        case("domain: other domain", DOMAIN, only(json!({"domain": "example.com"})), bob(), deny(&["domain-unauthorized"])),
        case("domain: anonymous → login", NEEDS_USER, only(json!({"domain": "example.com"})), anon(), login()),
        case("domain: policy upper case", EMAIL_CI, only(json!({"domain": "EXAMPLE.com"})), alice(), allow(&["domain-ok"])),
        case("domain: input upper case", EMAIL_CI, only(json!({"domain": "example.com"})), alice().email("alice@EXAMPLE.COM"), allow(&["domain-ok"])),
        case("domain: input trailing dot", EMAIL_CI, only(json!({"domain": "example.com"})), alice().email("alice@example.com."), allow(&["domain-ok"])),
        case("domain: subdomain is not the domain", DOMAIN, only(json!({"domain": "example.com"})), alice().email("alice@eng.example.com"), deny(&["domain-unauthorized"])),
        case("domain: suffix look-alike", DOMAIN, only(json!({"domain": "example.com"})), alice().email("alice@evilexample.com"), deny(&["domain-unauthorized"])),
        case("domain: several @ (trusted last)", DOMAIN_AT, only(json!({"domain": "example.com"})), alice().email("evil@attacker.org@example.com"), deny(&["domain-unauthorized"])),
        case("domain: several @ (trusted middle)", DOMAIN_AT, only(json!({"domain": "attacker.org"})), alice().email("a@attacker.org@example.com"), deny(&["domain-unauthorized"])),
        case("domain: empty local part", DOMAIN_AT, only(json!({"domain": "example.com"})), alice().email("@example.com"), deny(&["domain-unauthorized"])),
        case("domain: no @ at all", DOMAIN_AT, only(json!({"domain": "example.com"})), alice().email("example.com"), deny(&["domain-unauthorized"])),
        case("domain: user without email", DOMAIN, only(json!({"domain": "example.com"})), alice().no_email(), deny(&["domain-unauthorized"])),
        case("domain: ends_with covers subdomains", STR_M, only(json!({"domain": {"ends_with": ".example.com"}})), alice().email("alice@eng.example.com"), allow(&["domain-ok"])),
        case("domain: in list", STR_M, only(json!({"domain": {"in": ["partner.org", "example.com"]}})), bob(), allow(&["domain-ok"])),
        case("domain: not", STR_M, only(json!({"domain": {"not": "partner.org"}})), alice(), allow(&["domain-ok"])),
        case("domain: starts_with", STR_M, only(json!({"domain": {"starts_with": "exam"}})), alice(), allow(&["domain-ok"])),
        // user
        case("user: matches id", USER, only(json!({"user": "alice-id"})), alice(), allow(&["user-ok"])),
        case("user: is matches id", USER, only(json!({"user": {"is": "alice-id"}})), alice(), allow(&["user-ok"])),
        case("user: other id", USER, only(json!({"user": "bob-id"})), alice(), deny(&["user-unauthorized"])),
        case("user: anonymous → login", NEEDS_USER, only(json!({"user": "alice-id"})), anon(), login()),
        case("user: case-sensitive", USER, only(json!({"user": "ALICE-ID"})), alice(), deny(&["user-unauthorized"])),
        case("user: id of the session", USER, only(json!({"user": "svc-1"})), alice().id("svc-1"), allow(&["user-ok"])),
        case("user: is the id, not the email", USER, only(json!({"user": "alice@example.com"})), alice(), deny(&["user-unauthorized"])),
        case("user: starts_with", STR_M, only(json!({"user": {"starts_with": "alice"}})), alice(), allow(&["user-ok"])),
        case("user: ends_with", STR_M, only(json!({"user": {"ends_with": "-id"}})), bob(), allow(&["user-ok"])),
        case("user: contains", STR_M, only(json!({"user": {"contains": "lic"}})), alice(), allow(&["user-ok"])),
        case("user: in miss", STR_M, only(json!({"user": {"in": ["bob-id", "carol-id"]}})), alice(), deny(&["user-unauthorized"])),
        case("user: not_in hit", STR_M, only(json!({"user": {"not_in": ["bob-id"]}})), alice(), allow(&["user-ok"])),
    ]
}

#[rustfmt::skip]
fn claim_and_group_cases() -> Vec<Case> {
    vec![
        // claim
        case("claim: bare scalar = has", CLAIM, only(json!({"claim/groups": "admins"})), alice(), allow(&["claim-ok"])),
        case("claim: has second element", LIST_M, only(json!({"claim/groups": {"has": "staff"}})), alice(), allow(&["claim-ok"])),
        case("claim: has miss", LIST_M, only(json!({"claim/groups": {"has": "contractors"}})), alice(), deny(&["claim-unauthorized"])),
        case("claim: is with two elements", LIST_M, only(json!({"claim/groups": {"is": "admins"}})), alice(), deny(&["claim-unauthorized"])),
        case("claim: is with one element", LIST_M, only(json!({"claim/roles": {"is": "viewer"}})), alice(), allow(&["claim-ok"])),
        case("claim: is with one other element", LIST_M, only(json!({"claim/roles": {"is": "editor"}})), alice(), deny(&["claim-unauthorized"])),
        case("claim: exclude absent value", LIST_M, only(json!({"claim/groups": {"exclude": "contractors"}})), alice(), allow(&["claim-ok"])),
        case("claim: exclude present value", LIST_M, only(json!({"claim/groups": {"exclude": "admins"}})), alice(), deny(&["claim-unauthorized"])),
        case("claim: scalar claim, bare", CLAIM, only(json!({"claim/department": "eng"})), alice(), allow(&["claim-ok"])),
        case("claim: scalar claim, is", LIST_M, only(json!({"claim/department": {"is": "eng"}})), alice(), allow(&["claim-ok"])),
        case("claim: scalar claim, exclude other", LIST_M, only(json!({"claim/department": {"exclude": "sales"}})), alice(), allow(&["claim-ok"])),
        case("claim: scalar claim, miss", CLAIM, only(json!({"claim/department": "eng"})), bob(), deny(&["claim-unauthorized"])),
        case("claim: nested with /", CLAIM_PATH, only(json!({"claim/org/team": "core"})), alice(), allow(&["claim-ok"])),
        case("claim: nested with .", CLAIM_PATH, only(json!({"claim/org.team": "core"})), alice(), allow(&["claim-ok"])),
        case("claim: nested three levels", CLAIM_PATH, only(json!({"claim/org/site/city": "berlin"})), alice(), allow(&["claim-ok"])),
        case("claim: nested mixed separators", CLAIM_PATH, only(json!({"claim/org.site/city": "berlin"})), alice(), allow(&["claim-ok"])),
        case("claim: nested miss", CLAIM_PATH, only(json!({"claim/org/team": "other"})), alice(), deny(&["claim-unauthorized"])),
        case("claim: path through a scalar", CLAIM_PATH, only(json!({"claim/department/x": "eng"})), alice(), deny(&["claim-unauthorized"])),
        case("claim: missing claim", CLAIM, only(json!({"claim/missing": "x"})), alice(), deny(&["claim-unauthorized"])),
        case("claim: boolean claim true", CLAIM, only(json!({"claim/email_verified": true})), alice(), allow(&["claim-ok"])),
        case("claim: boolean claim false", CLAIM, only(json!({"claim/email_verified": false})), alice(), deny(&["claim-unauthorized"])),
        case("claim: number claim", CLAIM, only(json!({"claim/level": 3})), alice(), allow(&["claim-ok"])),
        case("claim: number in list", CLAIM, only(json!({"claim/ids": 2})), alice(), allow(&["claim-ok"])),
        case("claim: anonymous → login", NEEDS_USER, only(json!({"claim/groups": "admins"})), anon(), login()),
        case("claim: user without claims", CLAIM, only(json!({"claim/groups": "admins"})), user("u-id"), deny(&["claim-unauthorized"])),
        case("claim: case-sensitive values", CLAIM, only(json!({"claim/groups": "Admins"})), alice(), deny(&["claim-unauthorized"])),
        case("claim: missing claim is an empty list, exclude holds", "rules.go object_get(all_claims, path, []) + matchers.go exclude: count == 0", only(json!({"claim/employment": {"exclude": "contractor"}})), alice(), allow(&["claim-ok"])),
        case("claim: deny on exclude of a missing claim", "rules.go object_get default [] + check_response.go deny", json!([{"allow": {"or": [d_example()]}}, {"deny": {"or": [{"claim/employment": {"exclude": "staff"}}]}}]), alice(), deny(&["claim-ok"])),
        case("claim: literal dotted key", "rules.go object_get: the literal key is tried before splitting on / and .", only(json!({"claim/custom.role": "lead"})), alice(), allow(&["claim-ok"])),
        case("claim: namespaced URL claim", "grammar.go CriterionFromObject cuts at the first `/`; rules.go object_get tries the literal key", only(json!({"claim/https://example.com/roles": "admin"})), alice(), allow(&["claim-ok"])),
        case("claim: several list operators are AND-ed", "criteria/matchers.go matchStringList: every operator of the map is applied", only(json!({"claim/groups": {"has": "admins", "exclude": "contractors"}})), alice(), allow(&["claim-ok"])),
        // groups
        case("groups: bare = has", GROUPS, only(json!({"groups": "admins"})), alice(), allow(&["groups-ok"])),
        case("groups: has", GROUPS, only(json!({"groups": {"has": "staff"}})), alice(), allow(&["groups-ok"])),
        case("groups: has miss", GROUPS, only(json!({"groups": {"has": "contractors"}})), alice(), deny(&["groups-unauthorized"])),
        case("groups: is with two groups", LIST_M, only(json!({"groups": {"is": "admins"}})), alice(), deny(&["groups-unauthorized"])),
        case("groups: is with one group", LIST_M, only(json!({"groups": {"is": "contractors"}})), bob(), allow(&["groups-ok"])),
        case("groups: exclude absent", LIST_M, only(json!({"groups": {"exclude": "contractors"}})), alice(), allow(&["groups-ok"])),
        case("groups: exclude present", LIST_M, only(json!({"groups": {"exclude": "contractors"}})), bob(), deny(&["groups-unauthorized"])),
        case("groups: anonymous → login", NEEDS_USER, only(json!({"groups": "admins"})), anon(), login()),
        case("groups: no groups, exclude holds", LIST_M, only(json!({"groups": {"exclude": "x"}})), user("u-id"), allow(&["groups-ok"])),
        case("groups: no groups, has fails", LIST_M, only(json!({"groups": "x"})), user("u-id"), deny(&["groups-unauthorized"])),
        case("groups: no groups, is fails", LIST_M, only(json!({"groups": {"is": "x"}})), user("u-id"), deny(&["groups-unauthorized"])),
        case("groups: read from UserFacts.groups, not the claim (miss)", GROUPS, only(json!({"groups": "admins"})), alice().groups(&["ops"]), deny(&["groups-unauthorized"])),
        case("groups: read from UserFacts.groups, not the claim (hit)", GROUPS, only(json!({"groups": "ops"})), alice().groups(&["ops"]), allow(&["groups-ok"])),
        case("groups: case-sensitive", GROUPS, only(json!({"groups": "Admins"})), alice(), deny(&["groups-unauthorized"])),
        case("groups: exclude with several groups", LIST_M, only(json!({"groups": {"exclude": "ops"}})), alice(), allow(&["groups-ok"])),
        case("claim + groups in and", MERGE, all_of(json!([{"claim/department": "eng"}, {"groups": "admins"}])), alice(), allow(&["claim-ok", "groups-ok"])),
        case("claim replaced by other claims", CLAIM, only(json!({"claim/department": "eng"})), alice().claims(json!({"department": ["eng", "ops"]})), allow(&["claim-ok"])),
    ]
}

#[rustfmt::skip]
fn request_cases() -> Vec<Case> {
    vec![
        // http_method
        case("http_method: GET matches", METHOD, only(json!({"http_method": "GET"})), alice(), allow(&["http-method-ok"])),
        case("http_method: POST vs GET", METHOD, only(json!({"http_method": "POST"})), alice(), deny(&["http-method-unauthorized"])),
        case("http_method: lower-case policy", METHOD, only(json!({"http_method": "get"})), alice(), allow(&["http-method-ok"])),
        case("http_method: in, lower-case operands", METHOD, only(json!({"http_method": {"in": ["get", "head"]}})), alice(), allow(&["http-method-ok"])),
        case("http_method: in miss", METHOD, only(json!({"http_method": {"in": ["POST", "PUT"]}})), alice(), deny(&["http-method-unauthorized"])),
        case("http_method: not GET on GET", METHOD, only(json!({"http_method": {"not": "get"}})), alice(), deny(&["http-method-unauthorized"])),
        case("http_method: not GET on POST", METHOD, only(json!({"http_method": {"not": "get"}})), alice().method("POST"), allow(&["http-method-ok"])),
        case("http_method: starts_with lower-case", METHOD, only(json!({"http_method": {"starts_with": "p"}})), alice().method("PATCH"), allow(&["http-method-ok"])),
        case("http_method: not_in on GET", METHOD, only(json!({"http_method": {"not_in": ["POST", "PUT", "DELETE"]}})), alice(), allow(&["http-method-ok"])),
        case("http_method: not_in on DELETE", METHOD, only(json!({"http_method": {"not_in": ["POST", "PUT", "DELETE"]}})), alice().method("DELETE"), deny(&["http-method-unauthorized"])),
        case("http_method: anonymous needs no user", NO_USER, only(json!({"http_method": "GET"})), anon(), allow(&["http-method-ok"])),
        // http_path
        case("http_path: exact", PATH, only(json!({"http_path": "/admin"})), alice().path("/admin"), allow(&["http-path-ok"])),
        case("http_path: exact is not prefix", PATH, only(json!({"http_path": "/admin"})), alice().path("/admin/users"), deny(&["http-path-unauthorized"])),
        case("http_path: starts_with hit", PATH, only(json!({"http_path": {"starts_with": "/api/"}})), alice().path("/api/v1"), allow(&["http-path-ok"])),
        case("http_path: starts_with miss", PATH, only(json!({"http_path": {"starts_with": "/api/"}})), alice().path("/apiv1"), deny(&["http-path-unauthorized"])),
        case("http_path: ends_with hit", PATH, only(json!({"http_path": {"ends_with": ".json"}})), alice().path("/data/x.json"), allow(&["http-path-ok"])),
        case("http_path: ends_with miss", PATH, only(json!({"http_path": {"ends_with": ".json"}})), alice().path("/data/x.jsonp"), deny(&["http-path-unauthorized"])),
        case("http_path: contains", PATH, only(json!({"http_path": {"contains": "secret"}})), alice().path("/a/secret/b"), allow(&["http-path-ok"])),
        case("http_path: not on that path", PATH, only(json!({"http_path": {"not": "/health"}})), alice().path("/health"), deny(&["http-path-unauthorized"])),
        case("http_path: not on other path", PATH, only(json!({"http_path": {"not": "/health"}})), alice(), allow(&["http-path-ok"])),
        case("http_path: in hit", PATH, only(json!({"http_path": {"in": ["/a", "/b"]}})), alice().path("/b"), allow(&["http-path-ok"])),
        case("http_path: in miss", PATH, only(json!({"http_path": {"in": ["/a", "/b"]}})), alice().path("/c"), deny(&["http-path-unauthorized"])),
        case("http_path: not_in hit", PATH, only(json!({"http_path": {"not_in": ["/a", "/b"]}})), alice().path("/c"), allow(&["http-path-ok"])),
        case("http_path: not_in miss", PATH, only(json!({"http_path": {"not_in": ["/a", "/b"]}})), alice().path("/a"), deny(&["http-path-unauthorized"])),
        case("http_path: case-sensitive", PATH, only(json!({"http_path": "/Admin"})), alice().path("/admin"), deny(&["http-path-unauthorized"])),
        case("http_path: anonymous needs no user", NO_USER, only(json!({"http_path": "/"})), anon(), allow(&["http-path-ok"])),
        case("http_path: AND-ed matcher excludes", STR_AND, only(json!({"http_path": {"starts_with": "/api/", "not": "/api/internal"}})), alice().path("/api/internal"), deny(&["http-path-unauthorized"])),
        case("http_path: AND-ed matcher allows", STR_AND, only(json!({"http_path": {"starts_with": "/api/", "not": "/api/internal"}})), alice().path("/api/public"), allow(&["http-path-ok"])),
        // source_ip
        case("source_ip: exact address", SOURCE_IP, only(json!({"source_ip": "203.0.113.7"})), alice(), allow(&["source-ip-ok"])),
        case("source_ip: CIDR hit", SOURCE_IP, only(json!({"source_ip": "203.0.113.0/24"})), alice(), allow(&["source-ip-ok"])),
        case("source_ip: CIDR miss", SOURCE_IP, only(json!({"source_ip": "10.0.0.0/8"})), alice(), deny(&["source-ip-unauthorized"])),
        case("source_ip: list hit", SOURCE_IP, only(json!({"source_ip": ["10.0.0.0/8", "203.0.113.0/24"]})), alice(), allow(&["source-ip-ok"])),
        case("source_ip: list miss", SOURCE_IP, only(json!({"source_ip": ["10.0.0.0/8", "192.168.0.0/16"]})), alice(), deny(&["source-ip-unauthorized"])),
        case("source_ip: IPv6 CIDR hit", SOURCE_IP, only(json!({"source_ip": "2001:db8::/32"})), alice().ip("2001:db8::1"), allow(&["source-ip-ok"])),
        case("source_ip: IPv6 CIDR miss", SOURCE_IP, only(json!({"source_ip": "2001:db8::/32"})), alice().ip("2001:db9::1"), deny(&["source-ip-unauthorized"])),
        case("source_ip: IPv4 net, IPv6 client", SOURCE_IP, only(json!({"source_ip": "10.0.0.0/8"})), alice().ip("2001:db8::1"), deny(&["source-ip-unauthorized"])),
        case("source_ip: unknown client address", SOURCE_IP, only(json!({"source_ip": "0.0.0.0/0"})), alice().no_ip(), deny(&["source-ip-unauthorized"])),
        case("source_ip: /0 matches all", SOURCE_IP, only(json!({"source_ip": "0.0.0.0/0"})), alice().ip("8.8.8.8"), allow(&["source-ip-ok"])),
        case("source_ip: host address miss", SOURCE_IP, only(json!({"source_ip": "203.0.113.7"})), alice().ip("203.0.113.8"), deny(&["source-ip-unauthorized"])),
        case("source_ip: /25 lower half", SOURCE_IP, only(json!({"source_ip": "203.0.113.0/25"})), alice(), allow(&["source-ip-ok"])),
        case("source_ip: /25 upper half", SOURCE_IP, only(json!({"source_ip": "203.0.113.0/25"})), alice().ip("203.0.113.200"), deny(&["source-ip-unauthorized"])),
        case("source_ip: anonymous needs no user", NO_USER, only(json!({"source_ip": "203.0.113.0/24"})), anon(), allow(&["source-ip-ok"])),
        // cors_preflight
        case("cors_preflight: preflight", CORS, only(json!({"cors_preflight": true})), alice().method("OPTIONS").cors(), allow(&["cors-request"])),
        case("cors_preflight: not a preflight", CORS, only(json!({"cors_preflight": true})), alice(), deny(&["non-cors-request"])),
        case("cors_preflight: anonymous preflight", NO_USER, only(json!({"cors_preflight": true})), anon().method("OPTIONS").cors(), allow(&["cors-request"])),
        case("cors_preflight: value unused", CORS, only(json!({"cors_preflight": false})), anon().method("OPTIONS").cors(), allow(&["cors-request"])),
        // date
        case("date: after, past", DATE, only(json!({"date": {"after": "2026-01-01T00:00:00Z"}})), alice(), allow(&["date-ok"])),
        case("date: after, future", DATE, only(json!({"date": {"after": "2027-01-01T00:00:00Z"}})), alice(), deny(&["date-unauthorized"])),
        case("date: before, future", DATE, only(json!({"date": {"before": "2027-01-01T00:00:00Z"}})), alice(), allow(&["date-ok"])),
        case("date: before, past", DATE, only(json!({"date": {"before": "2026-01-01T00:00:00Z"}})), alice(), deny(&["date-unauthorized"])),
        case("date: inside window", DATE, only(json!({"date": {"after": "2026-11-01T00:00:00Z", "before": "2026-12-01T00:00:00Z"}})), alice(), allow(&["date-ok"])),
        case("date: window in the past", DATE, only(json!({"date": {"after": "2026-10-01T00:00:00Z", "before": "2026-11-01T00:00:00Z"}})), alice(), deny(&["date-unauthorized"])),
        case("date: after one second ago", DATE, only(json!({"date": {"after": "2026-11-29T11:59:59Z"}})), alice(), allow(&["date-ok"])),
        case("date: after one second ahead", DATE, only(json!({"date": {"after": "2026-11-29T12:00:01Z"}})), alice(), deny(&["date-unauthorized"])),
        case("date: before one second ahead", DATE, only(json!({"date": {"before": "2026-11-29T12:00:01Z"}})), alice(), allow(&["date-ok"])),
        case("date: offset, just past", DATE, only(json!({"date": {"after": "2026-11-29T13:59:59+02:00"}})), alice(), allow(&["date-ok"])),
        case("date: offset, just ahead", DATE, only(json!({"date": {"after": "2026-11-29T14:00:01+02:00"}})), alice(), deny(&["date-unauthorized"])),
        case("date: anonymous needs no user", NO_USER, only(json!({"date": {"after": "2026-01-01T00:00:00Z"}})), anon(), allow(&["date-ok"])),
        // day_of_week (SUN_NOON is a Sunday)
        case("day_of_week: mon-fri on Sunday", DOW, only(json!({"day_of_week": "mon-fri"})), alice(), deny(&["day-of-week-unauthorized"])),
        case("day_of_week: mon-fri on Wednesday", DOW, only(json!({"day_of_week": "mon-fri"})), alice().at(WED_NOON), allow(&["day-of-week-ok"])),
        case("day_of_week: sat,sun on Sunday", DOW, only(json!({"day_of_week": "sat,sun"})), alice(), allow(&["day-of-week-ok"])),
        case("day_of_week: list [sun]", DOW, only(json!({"day_of_week": ["sun"]})), alice(), allow(&["day-of-week-ok"])),
        case("day_of_week: list [mon, tue]", DOW, only(json!({"day_of_week": ["mon", "tue"]})), alice(), deny(&["day-of-week-unauthorized"])),
        case("day_of_week: single day", DOW, only(json!({"day_of_week": "sun"})), alice(), allow(&["day-of-week-ok"])),
        case("day_of_week: range across the week end", DOW, only(json!({"day_of_week": "fri-mon"})), alice(), allow(&["day-of-week-ok"])),
        case("day_of_week: range tue-thu", DOW, only(json!({"day_of_week": "tue-thu"})), alice(), deny(&["day-of-week-unauthorized"])),
        case("day_of_week: +14:00 is Monday", DOW, only(json!({"day_of_week": {"days": "mon", "timezone": "+14:00"}})), alice(), allow(&["day-of-week-ok"])),
        case("day_of_week: +14:00 is not Sunday", DOW, only(json!({"day_of_week": {"days": "sun", "timezone": "+14:00"}})), alice(), deny(&["day-of-week-unauthorized"])),
        case("day_of_week: -13:00 is Saturday", DOW, only(json!({"day_of_week": {"days": "sat", "timezone": "-13:00"}})), alice(), allow(&["day-of-week-ok"])),
        case("day_of_week: -13:00 is not Sunday", DOW, only(json!({"day_of_week": {"days": "sun", "timezone": "-13:00"}})), alice(), deny(&["day-of-week-unauthorized"])),
        case("day_of_week: timezone UTC", DOW, only(json!({"day_of_week": {"days": ["sun"], "timezone": "UTC"}})), alice(), allow(&["day-of-week-ok"])),
        case("day_of_week: Monday 00:00Z", DOW, only(json!({"day_of_week": "mon"})), alice().at(MON_MIDNIGHT), allow(&["day-of-week-ok"])),
        case("day_of_week: Sunday 23:59:59Z", DOW, only(json!({"day_of_week": "sun"})), alice().at(MON_MIDNIGHT - 1), allow(&["day-of-week-ok"])),
        case("day_of_week: anonymous needs no user", NO_USER, only(json!({"day_of_week": "sun"})), anon(), allow(&["day-of-week-ok"])),
        // time_of_day (SUN_NOON is 12:00Z)
        case("time_of_day: office hours", TOD, only(json!({"time_of_day": {"after": "09:00", "before": "17:00"}})), alice(), allow(&["time-of-day-ok"])),
        case("time_of_day: outside window", TOD, only(json!({"time_of_day": {"after": "13:00", "before": "14:00"}})), alice(), deny(&["time-of-day-unauthorized"])),
        case("time_of_day: night window at noon", TOD, only(json!({"time_of_day": {"after": "22:00", "before": "06:00"}})), alice(), deny(&["time-of-day-unauthorized"])),
        case("time_of_day: night window at 23:00", TOD, only(json!({"time_of_day": {"after": "22:00", "before": "06:00"}})), alice().at(SUN_NOON + 11 * HOUR), allow(&["time-of-day-ok"])),
        case("time_of_day: night window at 03:00", TOD, only(json!({"time_of_day": {"after": "22:00", "before": "06:00"}})), alice().at(SUN_NOON + 15 * HOUR), allow(&["time-of-day-ok"])),
        case("time_of_day: +02:00 window hit", TOD, only(json!({"time_of_day": {"after": "13:00", "before": "15:00", "timezone": "+02:00"}})), alice(), allow(&["time-of-day-ok"])),
        case("time_of_day: +02:00 window miss", TOD, only(json!({"time_of_day": {"after": "11:00", "before": "13:00", "timezone": "+02:00"}})), alice(), deny(&["time-of-day-unauthorized"])),
        case("time_of_day: -05:00 office hours miss", TOD, only(json!({"time_of_day": {"after": "09:00", "before": "17:00", "timezone": "-05:00"}})), alice(), deny(&["time-of-day-unauthorized"])),
        case("time_of_day: -05:00 early window hit", TOD, only(json!({"time_of_day": {"after": "06:00", "before": "08:00", "timezone": "-05:00"}})), alice(), allow(&["time-of-day-ok"])),
        case("time_of_day: only after, hit", TOD, only(json!({"time_of_day": {"after": "11:00"}})), alice(), allow(&["time-of-day-ok"])),
        case("time_of_day: only after, miss", TOD, only(json!({"time_of_day": {"after": "13:00"}})), alice(), deny(&["time-of-day-unauthorized"])),
        case("time_of_day: only before, hit", TOD, only(json!({"time_of_day": {"before": "13:00"}})), alice(), allow(&["time-of-day-ok"])),
        case("time_of_day: only before, miss", TOD, only(json!({"time_of_day": {"before": "11:00"}})), alice(), deny(&["time-of-day-unauthorized"])),
        case("time_of_day: HH:MM:SS", TOD, only(json!({"time_of_day": {"after": "11:59:59", "before": "12:00:01"}})), alice(), allow(&["time-of-day-ok"])),
        case("time_of_day: timezone UTC", TOD, only(json!({"time_of_day": {"after": "11:00", "before": "13:00", "timezone": "UTC"}})), alice(), allow(&["time-of-day-ok"])),
        case("time_of_day: anonymous needs no user", NO_USER, only(json!({"time_of_day": {"after": "09:00", "before": "17:00"}})), anon(), allow(&["time-of-day-ok"])),
        // request criteria combined with identity
        case("office hours and weekdays on Sunday", MERGE, all_of(json!([{"time_of_day": {"after": "09:00", "before": "17:00"}}, {"day_of_week": "mon-fri"}])), alice(), deny(&["day-of-week-unauthorized"])),
        case("office hours and weekdays on Wednesday", MERGE, all_of(json!([{"time_of_day": {"after": "09:00", "before": "17:00"}}, {"day_of_week": "mon-fri"}])), alice().at(WED_NOON), allow(&["time-of-day-ok", "day-of-week-ok"])),
        case("intranet or signed-in: anonymous from intranet", MERGE, any_of(json!([{"source_ip": "10.0.0.0/8"}, {"authenticated_user": true}])), anon().ip("10.1.2.3"), allow(&["source-ip-ok"])),
        case("intranet or signed-in: anonymous from outside", CHECK, any_of(json!([{"source_ip": "10.0.0.0/8"}, {"authenticated_user": true}])), anon(), login()),
    ]
}

#[rustfmt::skip]
fn string_matcher_cases() -> Vec<Case> {
    let m = |matcher: Value| only(json!({"email": matcher}));
    vec![
        case("string: is hit", STR_M, m(json!({"is": "alice@example.com"})), alice(), allow(&["email-ok"])),
        case("string: is miss", STR_M, m(json!({"is": "bob@partner.org"})), alice(), deny(&["email-unauthorized"])),
        case("string: not other", STR_M, m(json!({"not": "bob@partner.org"})), alice(), allow(&["email-ok"])),
        case("string: not self", STR_M, m(json!({"not": "alice@example.com"})), alice(), deny(&["email-unauthorized"])),
        case("string: starts_with hit", STR_M, m(json!({"starts_with": "alice@"})), alice(), allow(&["email-ok"])),
        case("string: starts_with miss", STR_M, m(json!({"starts_with": "bob"})), alice(), deny(&["email-unauthorized"])),
        case("string: ends_with hit", STR_M, m(json!({"ends_with": "@example.com"})), alice(), allow(&["email-ok"])),
        case("string: ends_with miss", STR_M, m(json!({"ends_with": "@partner.org"})), alice(), deny(&["email-unauthorized"])),
        case("string: contains hit", STR_M, m(json!({"contains": "ce@ex"})), alice(), allow(&["email-ok"])),
        case("string: contains miss", STR_M, m(json!({"contains": "zzz"})), alice(), deny(&["email-unauthorized"])),
        case("string: in hit", STR_M, m(json!({"in": ["bob@partner.org", "alice@example.com"]})), alice(), allow(&["email-ok"])),
        case("string: in miss", STR_M, m(json!({"in": ["bob@partner.org", "carol@example.com"]})), alice(), deny(&["email-unauthorized"])),
        case("string: in empty list", STR_M, m(json!({"in": []})), alice(), deny(&["email-unauthorized"])),
        case("string: not_in hit", STR_M, m(json!({"not_in": ["bob@partner.org"]})), alice(), allow(&["email-ok"])),
        case("string: not_in miss", STR_M, m(json!({"not_in": ["alice@example.com", "bob@partner.org"]})), alice(), deny(&["email-unauthorized"])),
        case("string: not_in empty list", STR_M, m(json!({"not_in": []})), alice(), allow(&["email-ok"])),
        case("string: AND-ed all hold", STR_AND, m(json!({"starts_with": "ali", "ends_with": "@example.com"})), alice(), allow(&["email-ok"])),
        case("string: AND-ed one fails", STR_AND, m(json!({"starts_with": "ali", "ends_with": "@other.org"})), alice(), deny(&["email-unauthorized"])),
        case("string: AND-ed contains + not", STR_AND, m(json!({"contains": "@", "not": "alice@example.com"})), alice(), deny(&["email-unauthorized"])),
        case("string: AND-ed in + not_in", STR_AND, m(json!({"in": ["alice@example.com", "bob@partner.org"], "not_in": ["bob@partner.org"]})), alice(), allow(&["email-ok"])),
        case("string: operands compared canonically", EMAIL_CI, m(json!({"starts_with": "ALICE@"})), alice(), allow(&["email-ok"])),
        case("string: matcher on anonymous → login", NEEDS_USER, m(json!({"ends_with": "@example.com"})), anon(), login()),
    ]
}

/// The legacy route keys, turned into PPL the way `config/policy_ppl.go` (and Portcullis'
/// `route_policy`) does: one `allow: or:` rule; no keys at all → no rule.
#[derive(Default)]
struct Legacy {
    allow_public_unauthenticated_access: bool,
    cors_allow_preflight: bool,
    allow_any_authenticated_user: bool,
    allowed_domains: Vec<&'static str>,
    allowed_users: Vec<&'static str>,
    allowed_idp_claims: Vec<(&'static str, Value)>,
}

impl Legacy {
    fn ppl(&self) -> Value {
        let mut or = Vec::new();
        if self.allow_public_unauthenticated_access {
            or.push(json!({"accept": true}));
        }
        if self.cors_allow_preflight {
            or.push(json!({"cors_preflight": true}));
        }
        if self.allow_any_authenticated_user {
            or.push(json!({"authenticated_user": true}));
        }
        for d in &self.allowed_domains {
            or.push(json!({"domain": {"is": d}}));
        }
        for u in &self.allowed_users {
            or.push(json!({"user": {"is": u}}));
            or.push(json!({"email": {"is": u}}));
        }
        for (claim, values) in &self.allowed_idp_claims {
            let values = match values {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            for v in values {
                or.push(json!({ format!("claim/{claim}"): v }));
            }
        }
        if or.is_empty() { json!([]) } else { json!([{"allow": {"or": or}}]) }
    }

    /// Legacy rule plus a PPL `policy:` (rules are OR-ed per action).
    fn with(&self, ppl: Value) -> Value {
        let mut rules = match self.ppl() {
            Value::Array(r) => r,
            _ => Vec::new(),
        };
        rules.push(ppl);
        Value::Array(rules)
    }
}

#[rustfmt::skip]
fn legacy_cases() -> Vec<Case> {
    let public = Legacy { allow_public_unauthenticated_access: true, ..Default::default() };
    let any_user = Legacy { allow_any_authenticated_user: true, ..Default::default() };
    let domains = Legacy { allowed_domains: vec!["example.com"], ..Default::default() };
    let users = Legacy { allowed_users: vec!["alice@example.com"], ..Default::default() };
    let claims = Legacy { allowed_idp_claims: vec![("groups", json!(["admins", "ops"]))], ..Default::default() };
    let cors = Legacy { cors_allow_preflight: true, ..Default::default() };
    let cors_users = Legacy { cors_allow_preflight: true, allowed_users: vec!["alice@example.com"], ..Default::default() };
    vec![
        case("legacy public: anonymous", LEGACY, public.ppl(), anon(), allow(&["accept"])),
        case("legacy public: signed in", LEGACY, public.ppl(), alice(), allow(&["accept"])),
        case("legacy any user: signed in", LEGACY, any_user.ppl(), alice(), allow(&["user-ok"])),
        case("legacy any user: anonymous → login", LEGACY, any_user.ppl(), anon(), login()),
        case("legacy domains: member", LEGACY, domains.ppl(), alice(), allow(&["domain-ok"])),
        case("legacy domains: outsider", LEGACY, domains.ppl(), bob(), deny(&["domain-unauthorized"])),
        case("legacy domains: anonymous → login", LEGACY, domains.ppl(), anon(), login()),
        case("legacy domains: several", LEGACY, Legacy { allowed_domains: vec!["partner.org", "example.com"], ..Default::default() }.ppl(), bob(), allow(&["domain-ok"])),
        case("legacy users: by email", LEGACY, users.ppl(), alice(), allow(&["email-ok"])),
        case("legacy users: by user id", LEGACY, Legacy { allowed_users: vec!["alice-id"], ..Default::default() }.ppl(), alice(), allow(&["user-ok"])),
        case("legacy users: outsider", LEGACY, users.ppl(), bob(), deny(&["user-unauthorized", "email-unauthorized"])),
        case("legacy users: anonymous → login", LEGACY, users.ppl(), anon(), login()),
        case("legacy users: email case-insensitive", EMAIL_CI, Legacy { allowed_users: vec!["Alice@Example.com"], ..Default::default() }.ppl(), alice(), allow(&["email-ok"])),
        case("legacy users: several", LEGACY, Legacy { allowed_users: vec!["bob@partner.org", "alice-id"], ..Default::default() }.ppl(), alice(), allow(&["user-ok"])),
        case("legacy claims: member", LEGACY, claims.ppl(), alice(), allow(&["claim-ok"])),
        case("legacy claims: outsider", LEGACY, claims.ppl(), bob(), deny(&["claim-unauthorized"])),
        case("legacy claims: anonymous → login", LEGACY, claims.ppl(), anon(), login()),
        case("legacy claims: scalar value", LEGACY, Legacy { allowed_idp_claims: vec![("department", json!("eng"))], ..Default::default() }.ppl(), alice(), allow(&["claim-ok"])),
        case("legacy cors: preflight", LEGACY, cors.ppl(), anon().method("OPTIONS").cors(), allow(&["cors-request"])),
        case("legacy cors: not a preflight", LEGACY, cors.ppl(), anon(), deny(&["non-cors-request"])),
        case("legacy cors + users: anonymous preflight", LEGACY, cors_users.ppl(), anon().method("OPTIONS").cors(), allow(&["cors-request"])),
        case("legacy cors + users: anonymous GET → login", LEGACY, cors_users.ppl(), anon(), login()),
        case("legacy public + users: anonymous", LEGACY, Legacy { allow_public_unauthenticated_access: true, allowed_users: vec!["alice@example.com"], ..Default::default() }.ppl(), anon(), allow(&["accept"])),
        case("legacy any user + domains: outsider", LEGACY, Legacy { allow_any_authenticated_user: true, allowed_domains: vec!["example.com"], ..Default::default() }.ppl(), bob(), allow(&["user-ok"])),
        case("legacy none: signed in", NO_POLICY, Legacy::default().ppl(), alice(), deny(&[])),
        case("legacy none: anonymous", NO_POLICY, Legacy::default().ppl(), anon(), deny(&[])),
        case("legacy + PPL allow: PPL grants", RULES_OR, Legacy { allowed_domains: vec!["partner.org"], ..Default::default() }.with(only(e_alice())), alice(), allow(&["email-ok"])),
        case("legacy + PPL allow: legacy grants", RULES_OR, Legacy { allowed_domains: vec!["partner.org"], ..Default::default() }.with(only(e_alice())), bob(), allow(&["domain-ok"])),
        case("legacy public + PPL deny path", CHECK, public.with(json!({"deny": {"or": [{"http_path": "/admin"}]}})), anon().path("/admin"), deny(&["http-path-ok"])),
        case("legacy any user + PPL deny email", CHECK, any_user.with(json!({"deny": {"or": [e_alice()]}})), alice(), deny(&["email-ok"])),
        case("legacy public + PPL deny email: anonymous → login", CHECK, public.with(json!({"deny": {"or": [e_bob()]}})), anon(), login()),
    ]
}

fn all_cases() -> Vec<(&'static str, Vec<Case>)> {
    vec![
        ("operators", operator_cases()),
        ("decision order", decision_order_cases()),
        ("identity criteria", identity_cases()),
        ("claims and groups", claim_and_group_cases()),
        ("request criteria", request_cases()),
        ("string matchers", string_matcher_cases()),
        ("legacy keys", legacy_cases()),
    ]
}

// ---------------------------------------------------------------------------------------
// Error cases: `from_ppl` fails with a message naming the problem.
// ---------------------------------------------------------------------------------------

struct ErrorCase {
    name: &'static str,
    cite: &'static str,
    policy: Value,
    /// Every needle must occur in the error message.
    needles: &'static [&'static str],
}

fn err(name: &'static str, cite: &'static str, policy: Value, needles: &'static [&'static str]) -> ErrorCase {
    ErrorCase { name, cite, policy, needles }
}

const UNSUPPORTED: &str = "device and record need state Portcullis lacks: refused, naming the criterion";
const UNKNOWN: &str = "generator/conditionals.go: `unknown policy criterion`";
const GRAMMAR: &str = "pkg/policy/parser/grammar.go";
const MALFORMED: &str = "criteria/matchers.go: unknown matcher operators are errors";

#[rustfmt::skip]
fn error_cases() -> Vec<ErrorCase> {
    vec![
        err("device unsupported", UNSUPPORTED, only(json!({"device": {"is": "x"}})), &["device", "not supported"]),
        err("record unsupported", UNSUPPORTED, only(json!({"record": {"type": "t"}})), &["record", "not supported"]),
        err("unknown criterion", UNKNOWN, only(json!({"frobnicate": 1})), &["unknown criterion `frobnicate`"]),
        err("unknown criterion nested", UNKNOWN, any_of(json!([{"and": [{"frob": 1}]}])), &["frob"]),
        err("unknown criterion in second rule", UNKNOWN, json!([{"allow": {"or": [{"accept": 1}]}}, {"allow": {"or": [{"bogus": 1}]}}]), &["[1]", "bogus"]),
        err("misspelt criterion (singular group)", UNKNOWN, only(json!({"group": "admins"})), &["group"]),
        err("unknown operator", GRAMMAR, json!({"allow": {"xor": []}}), &["xor"]),
        err("unknown action", GRAMMAR, json!({"permit": {}}), &["permit"]),
        err("operator value not a list", GRAMMAR, json!({"allow": {"or": {"email": "a@b.c"}}}), &["or", "list"]),
        err("action body not a map", GRAMMAR, json!({"allow": [{"email": "a@b.c"}]}), &["allow"]),
        err("rule not a map", GRAMMAR, json!(["allow"]), &["rule must be a map"]),
        err("empty rule", GRAMMAR, json!({}), &["allow or deny"]),
        err("criteria item not a map", GRAMMAR, any_of(json!(["email"])), &["criterion map"]),
        err("two criteria in one item", "grammar.go CriterionFromObject: a single key and value", any_of(json!([{"email": "a@b.c", "domain": "b.c"}])), &["exactly one"]),
        err("empty criteria item", "grammar.go CriterionFromObject: a single key and value", any_of(json!([{}])), &["exactly one"]),
        err("unknown string matcher", MALFORMED, only(json!({"email": {"like": "x"}})), &["email", "like"]),
        err("empty string matcher", MALFORMED, only(json!({"email": {}})), &["email"]),
        err("string matcher given a list", MALFORMED, only(json!({"email": ["a@b.c"]})), &["email", "a list"]),
        err("string matcher operand a map", MALFORMED, only(json!({"user": {"is": {"x": 1}}})), &["user", "`is`"]),
        err("http_method given a number", MALFORMED, only(json!({"http_method": 42})), &["http_method"]),
        err("unknown list matcher", MALFORMED, only(json!({"claim/groups": {"contains": "x"}})), &["claim/groups", "contains"]),
        err("list matcher operand a map", MALFORMED, only(json!({"groups": {"has": {"x": 1}}})), &["groups", "`has`"]),
        err("claim without a name", CLAIM_PATH, only(json!({"claim/": "x"})), &["claim/"]),
        err("source_ip bad prefix", SOURCE_IP, only(json!({"source_ip": "10.0.0.0/99"})), &["source_ip", "10.0.0.0/99"]),
        err("source_ip not an address", SOURCE_IP, only(json!({"source_ip": ["10.0.0.0/8", "intranet"]})), &["source_ip", "intranet"]),
        err("source_ip given a map", SOURCE_IP, only(json!({"source_ip": {"is": "10.0.0.1"}})), &["source_ip"]),
        err("time_of_day bad clock", TOD, only(json!({"time_of_day": {"after": "9am"}})), &["time_of_day", "9am"]),
        err("time_of_day unknown key", TOD, only(json!({"time_of_day": {"from": "09:00"}})), &["time_of_day", "from"]),
        err("time_of_day not a map", TOD, only(json!({"time_of_day": "09:00-17:00"})), &["time_of_day"]),
        err("time_of_day no bounds", TOD, only(json!({"time_of_day": {"timezone": "UTC"}})), &["time_of_day"]),
        err("day_of_week not a day", DOW, only(json!({"day_of_week": "funday"})), &["day_of_week", "funday"]),
        err("day_of_week missing days", DOW, only(json!({"day_of_week": {"timezone": "UTC"}})), &["day_of_week", "days"]),
        err("day_of_week zone name", "request.rs timezone(): zone names need a tz database and are refused", only(json!({"day_of_week": {"days": "mon", "timezone": "Europe/Paris"}})), &["day_of_week", "Europe/Paris"]),
        err("time_of_day bad offset", TOD, only(json!({"time_of_day": {"after": "09:00", "timezone": "+25:00"}})), &["time_of_day", "+25:00"]),
        err("date not RFC 3339", DATE, only(json!({"date": {"after": "yesterday"}})), &["date", "yesterday"]),
        err("date unknown key", DATE, only(json!({"date": {"on": "2026-11-29T00:00:00Z"}})), &["date", "on"]),
        err("date empty", DATE, only(json!({"date": {}})), &["date"]),
    ]
}

// ---------------------------------------------------------------------------------------
// reads_request(): whether a decision depends on the request, not only on the user.
// ---------------------------------------------------------------------------------------

const READS: &str =
    "Policy::reads_request: request criteria (method, path, address, time, CORS) make decisions per request";

#[rustfmt::skip]
fn reads_request_cases() -> Vec<(&'static str, Value, bool)> {
    vec![
        ("empty policy", json!([]), false),
        ("accept", only(json!({"accept": true})), false),
        ("reject", only(json!({"reject": true})), false),
        ("authenticated_user", only(json!({"authenticated_user": true})), false),
        ("email + domain + user", any_of(json!([e_alice(), d_example(), {"user": "u"}])), false),
        ("claim + groups", all_of(json!([{"claim/department": "eng"}, {"groups": "admins"}])), false),
        ("http_method", only(json!({"http_method": "GET"})), true),
        ("http_path", only(json!({"http_path": "/admin"})), true),
        ("source_ip", only(json!({"source_ip": "10.0.0.0/8"})), true),
        ("cors_preflight", only(json!({"cors_preflight": true})), true),
        ("date", only(json!({"date": {"after": "2026-01-01T00:00:00Z"}})), true),
        ("day_of_week", only(json!({"day_of_week": "mon-fri"})), true),
        ("time_of_day", only(json!({"time_of_day": {"after": "09:00"}})), true),
        ("request criterion nested in not", json!({"allow": {"not": [{"or": [e_alice(), {"http_path": "/x"}]}]}}), true),
        ("request criterion only in a deny rule", json!([{"allow": {"or": [d_example()]}}, {"deny": {"or": [{"source_ip": "10.0.0.0/8"}]}}]), true),
        ("identity-only allow and deny", json!([{"allow": {"or": [d_example()]}}, {"deny": {"or": [e_bob()]}}]), false),
        ("legacy cors_allow_preflight", Legacy { cors_allow_preflight: true, allowed_users: vec!["a@b.c"], ..Default::default() }.ppl(), true),
        ("legacy without cors", Legacy { allow_public_unauthenticated_access: true, allowed_domains: vec!["b.c"], ..Default::default() }.ppl(), false),
    ]
}

// ---------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------

#[test]
fn operators() {
    run("operators", &operator_cases());
}

#[test]
fn decision_order() {
    run("decision order", &decision_order_cases());
}

#[test]
fn identity_criteria() {
    run("identity criteria", &identity_cases());
}

#[test]
fn claims_and_groups() {
    run("claims and groups", &claim_and_group_cases());
}

#[test]
fn request_criteria() {
    run("request criteria", &request_cases());
}

#[test]
fn string_matchers() {
    run("string matchers", &string_matcher_cases());
}

#[test]
fn legacy_keys() {
    run("legacy keys", &legacy_cases());
}

#[test]
fn errors_name_the_problem() {
    let cases = error_cases();
    let mut failures = Vec::new();
    for c in &cases {
        match Policy::from_ppl(&c.policy) {
            Ok(p) => failures.push(format!(
                "{}: parsed ({} rules), want an error ({})",
                c.name,
                p.rules.len(),
                c.cite
            )),
            Err(e) => {
                let msg = e.to_string();
                for needle in c.needles {
                    if !msg.contains(needle) {
                        failures.push(format!(
                            "{}: error `{msg}` does not mention `{needle}` ({})",
                            c.name, c.cite
                        ));
                    }
                }
            }
        }
    }
    eprintln!("[errors] {} cases", cases.len());
    assert!(failures.is_empty(), "{} error cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn reads_request() {
    let cases = reads_request_cases();
    let mut failures = Vec::new();
    for (name, doc, want) in &cases {
        match Policy::from_ppl(doc) {
            Ok(p) if p.reads_request() == *want => {}
            Ok(p) => failures
                .push(format!("{name}: reads_request() = {}, want {want} ({READS})", p.reads_request())),
            Err(e) => failures.push(format!("{name}: did not parse: {e}")),
        }
    }
    eprintln!("[reads_request] {} cases", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The table is large enough, and every row is named uniquely and cites its source.
#[test]
fn table_is_complete() {
    let mut names = BTreeSet::new();
    let mut decisions = 0;
    let mut marked = 0;
    for (table, cases) in all_cases() {
        for c in &cases {
            assert!(names.insert(c.name), "duplicate case name `{}` in {table}", c.name);
            assert!(!c.cite.is_empty(), "case `{}` has no cite", c.name);
            marked += usize::from(c.disagrees.is_some());
        }
        decisions += cases.len();
    }
    let errors = error_cases();
    for e in &errors {
        assert!(names.insert(e.name), "duplicate error case name `{}`", e.name);
    }
    let reads = reads_request_cases().len();
    let total = decisions + errors.len() + reads;
    eprintln!(
        "conformance: {decisions} decision cases ({marked} marked as engine disagreements), \
         {} error cases, {reads} reads_request cases, {total} in all",
        errors.len()
    );
    assert!(errors.len() >= 15, "want at least 15 error cases, have {}", errors.len());
    assert!(total >= 220, "want at least 220 cases, have {total}");
}
