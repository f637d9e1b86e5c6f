//! Pomerium Policy Language (PPL): parse once per configuration load, evaluate per request.
//!
//! Pure: no IO, no clocks, no allocation-heavy work on the evaluation path. A policy is a
//! list of rules; each rule has an action (`allow` or `deny`) and a condition built from the
//! operators `and`, `or`, `not`, `nor` over criteria. Pomerium's operator semantics are kept
//! exactly, including two surprises:
//!
//! * `not` is true when **none** of its children match (a NOR of the list);
//! * `nor` is true when **not all** of its children match (a NAND of the list).
//!
//! Several operators under one action, and several rules with the same action, are OR-ed.
//! Deny wins over allow. A user who is not signed in is sent to sign in before a deny for
//! missing identity is given (see [`Policy::decide`]).

#![forbid(unsafe_code)]

mod criteria;
mod matcher;
mod parse;
mod request;

use serde_json::{Map, Value};

pub use criteria::{CertMatcher, Criterion};
pub use matcher::StringMatcher;
pub use parse::PolicyError;
pub use request::{DateWindow, Days, Network, TimeWindow};

/// The facts about the signed-in user that criteria read.
#[derive(Debug, Clone, Copy)]
pub struct UserFacts<'a> {
    /// The IdP subject (`sub`).
    pub user_id: &'a str,
    pub email: Option<&'a str>,
    /// Group ids and names (directory groups when known, else the `groups` claim).
    pub groups: &'a [String],
    /// Every claim from the ID token and userinfo.
    pub claims: &'a Map<String, Value>,
}

/// The request being decided.
#[derive(Debug, Clone, Copy, Default)]
pub struct Input<'a> {
    /// `None` when the request carries no valid session.
    pub user: Option<UserFacts<'a>>,
    pub request: RequestFacts<'a>,
}

/// What criteria may read about the request itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// Upper case, e.g. `GET`.
    pub method: &'a str,
    /// The normalised path.
    pub path: &'a str,
    pub client_ip: Option<std::net::IpAddr>,
    /// Seconds since the Unix epoch.
    pub now_unix: i64,
    /// An `OPTIONS` request with `Origin` and `Access-Control-Request-Method`.
    pub cors_preflight: bool,
    /// The verified client certificate, if the client presented one.
    pub client_certificate: Option<ClientCertFacts<'a>>,
}

/// What policies may read of a verified client certificate.
#[derive(Debug, Clone, Copy)]
pub struct ClientCertFacts<'a> {
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: &'a str,
    /// SHA-256 of the SubjectPublicKeyInfo, base64.
    pub spki_hash: &'a str,
    /// The subject alternative names: rfc822Name, dNSName and URI.
    pub san_email: &'a [String],
    pub san_dns: &'a [String],
    pub san_uri: &'a [String],
}

/// What a rule does when its condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

/// A logical expression over criteria.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// True when every child is true (true when empty).
    And(Vec<Expr>),
    /// True when any child is true (false when empty).
    Or(Vec<Expr>),
    /// Pomerium's `not`: true when no child is true.
    Not(Vec<Expr>),
    /// Pomerium's `nor`: true when not every child is true.
    Nor(Vec<Expr>),
    Criterion(Criterion),
}

/// One `allow:` or `deny:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub action: Action,
    pub condition: Expr,
}

/// A compiled policy: the rules of a route, legacy keys included.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

/// The outcome of evaluating a policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow {
        reasons: Reasons,
    },
    /// Refuse (HTTP 403).
    Deny {
        reasons: Reasons,
    },
    /// The user is not signed in and the policy needs them to be.
    Login {
        reasons: Reasons,
    },
}

/// A reason a criterion gives for its result, as Pomerium names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    Accept,
    Reject,
    UserUnauthenticated,
    UserOk,
    UserUnauthorized,
    EmailOk,
    EmailUnauthorized,
    DomainOk,
    DomainUnauthorized,
    ClaimOk,
    ClaimUnauthorized,
    GroupsOk,
    GroupsUnauthorized,
    HttpMethodOk,
    HttpMethodUnauthorized,
    HttpPathOk,
    HttpPathUnauthorized,
    SourceIpOk,
    SourceIpUnauthorized,
    CorsRequest,
    NonCorsRequest,
    DateOk,
    DateUnauthorized,
    DayOfWeekOk,
    DayOfWeekUnauthorized,
    TimeOfDayOk,
    TimeOfDayUnauthorized,
    ClientCertificateOk,
    ClientCertificateUnauthorized,
    ValidClientCertificate,
    InvalidClientCertificate,
}

impl Reason {
    const ALL: [Reason; 31] = [
        Reason::Accept,
        Reason::Reject,
        Reason::UserUnauthenticated,
        Reason::UserOk,
        Reason::UserUnauthorized,
        Reason::EmailOk,
        Reason::EmailUnauthorized,
        Reason::DomainOk,
        Reason::DomainUnauthorized,
        Reason::ClaimOk,
        Reason::ClaimUnauthorized,
        Reason::GroupsOk,
        Reason::GroupsUnauthorized,
        Reason::HttpMethodOk,
        Reason::HttpMethodUnauthorized,
        Reason::HttpPathOk,
        Reason::HttpPathUnauthorized,
        Reason::SourceIpOk,
        Reason::SourceIpUnauthorized,
        Reason::CorsRequest,
        Reason::NonCorsRequest,
        Reason::DateOk,
        Reason::DateUnauthorized,
        Reason::DayOfWeekOk,
        Reason::DayOfWeekUnauthorized,
        Reason::TimeOfDayOk,
        Reason::TimeOfDayUnauthorized,
        Reason::ClientCertificateOk,
        Reason::ClientCertificateUnauthorized,
        Reason::ValidClientCertificate,
        Reason::InvalidClientCertificate,
    ];

    /// Pomerium's reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Accept => "accept",
            Reason::Reject => "reject",
            Reason::UserUnauthenticated => "user-unauthenticated",
            Reason::UserOk => "user-ok",
            Reason::UserUnauthorized => "user-unauthorized",
            Reason::EmailOk => "email-ok",
            Reason::EmailUnauthorized => "email-unauthorized",
            Reason::DomainOk => "domain-ok",
            Reason::DomainUnauthorized => "domain-unauthorized",
            Reason::ClaimOk => "claim-ok",
            Reason::ClaimUnauthorized => "claim-unauthorized",
            Reason::GroupsOk => "groups-ok",
            Reason::GroupsUnauthorized => "groups-unauthorized",
            Reason::HttpMethodOk => "http-method-ok",
            Reason::HttpMethodUnauthorized => "http-method-unauthorized",
            Reason::HttpPathOk => "http-path-ok",
            Reason::HttpPathUnauthorized => "http-path-unauthorized",
            Reason::SourceIpOk => "source-ip-ok",
            Reason::SourceIpUnauthorized => "source-ip-unauthorized",
            Reason::CorsRequest => "cors-request",
            Reason::NonCorsRequest => "non-cors-request",
            Reason::DateOk => "date-ok",
            Reason::DateUnauthorized => "date-unauthorized",
            Reason::DayOfWeekOk => "day-of-week-ok",
            Reason::DayOfWeekUnauthorized => "day-of-week-unauthorized",
            Reason::TimeOfDayOk => "time-of-day-ok",
            Reason::TimeOfDayUnauthorized => "time-of-day-unauthorized",
            Reason::ClientCertificateOk => "client-certificate-ok",
            Reason::ClientCertificateUnauthorized => "client-certificate-unauthorized",
            Reason::ValidClientCertificate => "valid-client-certificate",
            Reason::InvalidClientCertificate => "invalid-client-certificate",
        }
    }
}

/// A set of [`Reason`]s, as a bit set (no allocation per reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reasons(u32);

impl Reasons {
    pub fn of(reason: Reason) -> Self {
        Reasons(1 << reason as u8)
    }

    pub fn contains(self, reason: Reason) -> bool {
        self.0 & (1 << reason as u8) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn union(self, other: Reasons) -> Reasons {
        Reasons(self.0 | other.0)
    }

    /// The reasons in a stable order.
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// Reason strings, for replies and logs.
    pub fn to_strings(self) -> Vec<String> {
        self.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

/// The result of one expression: whether it holds and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Outcome {
    value: bool,
    reasons: Reasons,
}

impl Policy {
    /// Parse a PPL document (`policy:` value: one rule object or a list of them).
    pub fn from_ppl(value: &Value) -> Result<Policy, PolicyError> {
        parse::policy(value)
    }

    /// Append the rules of `other` (legacy keys and PPL are OR-ed per action).
    pub fn extend(&mut self, other: Policy) {
        self.rules.extend(other.rules);
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a decision depends on the request (method, path, address, time, CORS) and not
    /// only on the user: such decisions must not be reused for other requests.
    pub fn reads_request(&self) -> bool {
        fn reads(e: &Expr) -> bool {
            match e {
                Expr::Criterion(c) => c.reads_request(),
                Expr::And(c) | Expr::Or(c) | Expr::Not(c) | Expr::Nor(c) => c.iter().any(reads),
            }
        }
        self.rules.iter().any(|r| reads(&r.condition))
    }

    /// Decide a request, in Pomerium's order: a `user-unauthenticated` reason from any rule
    /// sends the user to sign in; then a matching deny rule refuses; then a matching allow
    /// rule allows; anything else (a route without policy included) is refused.
    pub fn decide(&self, input: &Input<'_>) -> Decision {
        let mut allow = Outcome::default();
        let mut deny = Outcome::default();
        for rule in &self.rules {
            let outcome = eval(&rule.condition, input);
            let acc = match rule.action {
                Action::Allow => &mut allow,
                Action::Deny => &mut deny,
            };
            *acc = merge_or(&[*acc, outcome]);
        }
        let any = allow.reasons.union(deny.reasons);
        if any.contains(Reason::UserUnauthenticated) {
            Decision::Login { reasons: Reasons::of(Reason::UserUnauthenticated) }
        } else if deny.value {
            Decision::Deny { reasons: deny.reasons }
        } else if allow.value {
            Decision::Allow { reasons: allow.reasons }
        } else {
            Decision::Deny { reasons: allow.reasons }
        }
    }
}

/// Evaluate `expr` without short-circuiting: reasons of every child count.
fn eval(expr: &Expr, input: &Input<'_>) -> Outcome {
    match expr {
        Expr::Criterion(c) => {
            let (value, reason) = c.evaluate(input);
            Outcome { value, reasons: Reasons::of(reason) }
        }
        // An empty list contributes nothing: false, never "vacuously true" (that would let
        // everyone in through `or: [and: []]`).
        Expr::And(children) | Expr::Not(children) if children.is_empty() => Outcome::default(),
        Expr::And(children) => merge_and(children.iter().map(|e| eval(e, input))),
        Expr::Or(children) => {
            let outcomes: Vec<Outcome> = children.iter().map(|e| eval(e, input)).collect();
            merge_or(&outcomes)
        }
        Expr::Not(children) => merge_and(children.iter().map(|e| invert(eval(e, input)))),
        Expr::Nor(children) => {
            let outcomes: Vec<Outcome> = children.iter().map(|e| invert(eval(e, input))).collect();
            merge_or(&outcomes)
        }
    }
}

/// Inversion flips the value and keeps the reasons, as Pomerium does.
fn invert(o: Outcome) -> Outcome {
    Outcome { value: !o.value, reasons: o.reasons }
}

/// True when all are true (true when empty); reasons of the children that decided it.
fn merge_and(outcomes: impl Iterator<Item = Outcome>) -> Outcome {
    let (mut t, mut f) = (Reasons::default(), Reasons::default());
    let mut value = true;
    for o in outcomes {
        if o.value {
            t = t.union(o.reasons);
        } else {
            value = false;
            f = f.union(o.reasons);
        }
    }
    Outcome { value, reasons: if value { t } else { f } }
}

/// True when any is true (false when empty); reasons of the children that decided it.
fn merge_or(outcomes: &[Outcome]) -> Outcome {
    let (mut t, mut f) = (Reasons::default(), Reasons::default());
    let mut value = false;
    for o in outcomes {
        if o.value {
            value = true;
            t = t.union(o.reasons);
        } else {
            f = f.union(o.reasons);
        }
    }
    Outcome { value, reasons: if value { t } else { f } }
}

#[cfg(test)]
mod tests;
