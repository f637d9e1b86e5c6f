//! Criteria: the leaves of a PPL expression.

use serde_json::Value;

use crate::matcher::{StringMatcher, kind, scalar};
use crate::parse::PolicyError;
use crate::request::{self, DateWindow, Days, Network, TimeWindow};
use crate::{Input, Reason};

/// How deep `claim/a/b/c` may reach into nested claims (Pomerium's limit).
const MAX_CLAIM_PATH: usize = 5;

/// One criterion with its compiled matcher.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    /// Always true; its value is ignored (so `accept: false` still accepts, as in Pomerium).
    Accept,
    /// Always false; its value is ignored.
    Reject,
    /// True for any signed-in user.
    AuthenticatedUser,
    /// The user's email, compared case-insensitively.
    Email(StringMatcher),
    /// The domain of the user's email; an address that is not exactly `local@domain`
    /// matches nothing.
    Domain(StringMatcher),
    /// The user id (the IdP's `sub`).
    User(StringMatcher),
    /// A claim from the ID token or userinfo: looked up by its whole name first (names may
    /// hold `.` or `/`, e.g. `https://example.com/roles`), else at the `/`- or `.`-separated
    /// path. A missing claim is an empty list. All matchers must hold.
    Claim {
        name: String,
        path: Vec<String>,
        matcher: Vec<ListMatcher>,
    },
    /// The user's groups (ids and names; directory groups when known, else the claim).
    Groups(Vec<ListMatcher>),
    /// The request method (upper case).
    HttpMethod(StringMatcher),
    /// The normalised request path.
    HttpPath(StringMatcher),
    /// The client address is in one of these networks.
    SourceIp(Vec<Network>),
    /// The request is a CORS preflight; its value is ignored.
    CorsPreflight,
    Date(DateWindow),
    DayOfWeek(Days),
    TimeOfDay(TimeWindow),
    /// Conditions on the verified client certificate; every one given must hold.
    ClientCertificate(Box<CertMatcher>),
    /// The client presented no (valid) certificate; its value is ignored.
    InvalidClientCertificate,
}

/// A matcher over a list of strings (claims are lists; a scalar claim is a one-item list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListMatcher {
    /// Some element equals.
    Has(String),
    /// The list is exactly this one element.
    Is(String),
    /// No element equals.
    Exclude(String),
}

impl Criterion {
    /// Parse criterion `name` with its `value`.
    pub(crate) fn parse(name: &str, value: &Value) -> Result<Criterion, PolicyError> {
        Ok(match name {
            "accept" => Criterion::Accept,
            "reject" => Criterion::Reject,
            "authenticated_user" => Criterion::AuthenticatedUser,
            "email" => Criterion::Email(StringMatcher::parse(value, name, canonical_email)?),
            "domain" => Criterion::Domain(StringMatcher::parse(value, name, canonical_domain)?),
            "user" => Criterion::User(StringMatcher::parse(value, name, str::to_owned)?),
            "groups" => Criterion::Groups(list_matcher(name, value)?),
            "http_method" => Criterion::HttpMethod(request::method_matcher(value)?),
            "http_path" => Criterion::HttpPath(request::path_matcher(value)?),
            "source_ip" => Criterion::SourceIp(request::networks(value, name)?),
            "cors_preflight" => Criterion::CorsPreflight,
            "date" => Criterion::Date(DateWindow::parse(value)?),
            "day_of_week" => Criterion::DayOfWeek(Days::parse(value)?),
            "time_of_day" => Criterion::TimeOfDay(TimeWindow::parse(value)?),
            "client_certificate" => client_certificate(value)?,
            "invalid_client_certificate" => Criterion::InvalidClientCertificate,
            _ => match name.strip_prefix("claim/") {
                Some(path) => parse_claim(path, value)?,
                None => return Err(PolicyError::new(unknown_criterion(name))),
            },
        })
    }

    /// Whether the criterion reads the request (and so its decisions differ per request).
    pub fn reads_request(&self) -> bool {
        matches!(
            self,
            Criterion::HttpMethod(_)
                | Criterion::HttpPath(_)
                | Criterion::SourceIp(_)
                | Criterion::CorsPreflight
                | Criterion::Date(_)
                | Criterion::DayOfWeek(_)
                | Criterion::TimeOfDay(_)
                | Criterion::ClientCertificate(_)
                | Criterion::InvalidClientCertificate
        )
    }

    /// Whether the criterion holds for `input`, and Pomerium's reason.
    pub fn evaluate(&self, input: &Input<'_>) -> (bool, Reason) {
        let r = &input.request;
        let verdict = |ok: bool, yes: Reason, no: Reason| (ok, if ok { yes } else { no });
        let user = match (self, input.user) {
            (Criterion::Accept, _) => return (true, Reason::Accept),
            (Criterion::Reject, _) => return (false, Reason::Reject),
            (Criterion::HttpMethod(m), _) => {
                return verdict(m.matches(r.method), Reason::HttpMethodOk, Reason::HttpMethodUnauthorized);
            }
            (Criterion::HttpPath(m), _) => {
                return verdict(m.matches(r.path), Reason::HttpPathOk, Reason::HttpPathUnauthorized);
            }
            (Criterion::SourceIp(nets), _) => {
                let ok = r.client_ip.is_some_and(|ip| nets.iter().any(|n| n.contains(ip)));
                return verdict(ok, Reason::SourceIpOk, Reason::SourceIpUnauthorized);
            }
            (Criterion::CorsPreflight, _) => {
                return verdict(r.cors_preflight, Reason::CorsRequest, Reason::NonCorsRequest);
            }
            (Criterion::Date(w), _) => {
                return verdict(w.matches(r.now_unix), Reason::DateOk, Reason::DateUnauthorized);
            }
            (Criterion::DayOfWeek(d), _) => {
                return verdict(d.matches(r.now_unix), Reason::DayOfWeekOk, Reason::DayOfWeekUnauthorized);
            }
            (Criterion::TimeOfDay(w), _) => {
                return verdict(w.matches(r.now_unix), Reason::TimeOfDayOk, Reason::TimeOfDayUnauthorized);
            }
            (Criterion::ClientCertificate(m), _) => {
                let ok = r.client_certificate.is_some_and(|c| m.matches(&c));
                return verdict(ok, Reason::ClientCertificateOk, Reason::ClientCertificateUnauthorized);
            }
            (Criterion::InvalidClientCertificate, _) => {
                let invalid = r.client_certificate.is_none();
                return (
                    invalid,
                    if invalid { Reason::InvalidClientCertificate } else { Reason::ValidClientCertificate },
                );
            }
            (_, None) => return (false, Reason::UserUnauthenticated),
            (_, Some(user)) => user,
        };
        let (ok, yes, no) = match self {
            Criterion::Groups(m) => {
                (m.iter().all(|m| m.matches_list(user.groups)), Reason::GroupsOk, Reason::GroupsUnauthorized)
            }
            Criterion::Accept
            | Criterion::Reject
            | Criterion::HttpMethod(_)
            | Criterion::HttpPath(_)
            | Criterion::SourceIp(_)
            | Criterion::CorsPreflight
            | Criterion::Date(_)
            | Criterion::DayOfWeek(_)
            | Criterion::TimeOfDay(_)
            | Criterion::ClientCertificate(_)
            | Criterion::InvalidClientCertificate => unreachable_constant(),
            Criterion::AuthenticatedUser => {
                (!user.user_id.is_empty(), Reason::UserOk, Reason::UserUnauthorized)
            }
            Criterion::User(m) => (m.matches(user.user_id), Reason::UserOk, Reason::UserUnauthorized),
            Criterion::Email(m) => (
                user.email.map(canonical_email).is_some_and(|e| m.matches(&e)),
                Reason::EmailOk,
                Reason::EmailUnauthorized,
            ),
            Criterion::Domain(m) => (
                user.email.and_then(email_domain).is_some_and(|d| m.matches(&d)),
                Reason::DomainOk,
                Reason::DomainUnauthorized,
            ),
            Criterion::Claim { name, path, matcher } => {
                let value = user.claims.get(name).or_else(|| lookup(user.claims, path));
                let ok = match value {
                    Some(v) => matcher.iter().all(|m| m.matches(v)),
                    None => matcher.iter().all(|m| m.matches_list(&[])),
                };
                (ok, Reason::ClaimOk, Reason::ClaimUnauthorized)
            }
        };
        (ok, if ok { yes } else { no })
    }
}

/// `Accept`/`Reject` return before the match above; this keeps the match exhaustive
/// without a panic path.
fn unreachable_constant() -> (bool, Reason, Reason) {
    (false, Reason::Reject, Reason::Reject)
}

impl ListMatcher {
    /// Match a list of strings (groups).
    fn matches_list(&self, items: &[String]) -> bool {
        match self {
            ListMatcher::Has(w) => items.iter().any(|i| i == w),
            ListMatcher::Is(w) => items.len() == 1 && items[0] == *w,
            ListMatcher::Exclude(w) => !items.iter().any(|i| i == w),
        }
    }

    fn matches(&self, claim: &Value) -> bool {
        fn eq(v: &Value, want: &str) -> bool {
            match v {
                Value::String(s) => s == want,
                other => scalar(other).is_some_and(|s| s == want),
            }
        }
        match (self, claim) {
            (ListMatcher::Has(w), Value::Array(items)) => items.iter().any(|v| eq(v, w)),
            (ListMatcher::Is(w), Value::Array(items)) => items.len() == 1 && eq(&items[0], w),
            (ListMatcher::Exclude(w), Value::Array(items)) => !items.iter().any(|v| eq(v, w)),
            (ListMatcher::Has(w) | ListMatcher::Is(w), v) => eq(v, w),
            (ListMatcher::Exclude(w), v) => !eq(v, w),
        }
    }
}

fn parse_claim(path: &str, value: &Value) -> Result<Criterion, PolicyError> {
    let name = format!("claim/{path}");
    if path.is_empty() {
        return Err(PolicyError::new(format!("{name}: needs a claim name")));
    }
    // Nested lookup only for paths of 2 to 5 non-empty segments; the whole name always works.
    let segments: Vec<String> = path.split(['/', '.']).map(str::to_owned).collect();
    let nested =
        if segments.iter().any(String::is_empty) || segments.len() > MAX_CLAIM_PATH || segments.len() < 2 {
            Vec::new()
        } else {
            segments
        };
    let matcher = list_matcher(&name, value)?;
    Ok(Criterion::Claim { name: path.to_owned(), path: nested, matcher })
}

/// The conditions of a `client_certificate` criterion (Pomerium's): each one present must
/// hold. A SAN matcher holds when some name of that kind in the certificate matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertMatcher {
    /// SHA-256 of the DER, lower-case hex without colons.
    fingerprints: Option<Vec<String>>,
    /// SHA-256 of the SubjectPublicKeyInfo, standard base64.
    spki_hashes: Option<Vec<String>>,
    san_email: Option<StringMatcher>,
    san_dns: Option<StringMatcher>,
    san_uri: Option<StringMatcher>,
}

impl CertMatcher {
    fn matches(&self, c: &crate::ClientCertFacts<'_>) -> bool {
        let any = |m: &Option<StringMatcher>, names: &[String]| {
            m.as_ref().is_none_or(|m| names.iter().any(|n| m.matches(n)))
        };
        self.fingerprints.as_ref().is_none_or(|f| f.iter().any(|f| f == c.fingerprint))
            && self.spki_hashes.as_ref().is_none_or(|s| s.iter().any(|s| s == c.spki_hash))
            && any(&self.san_email, c.san_email)
            && any(&self.san_dns, c.san_dns)
            && any(&self.san_uri, c.san_uri)
    }
}

/// `client_certificate: {fingerprint, spki_hash, san_email, san_dns, san_uri}`: fingerprints
/// and SPKI hashes are a string or a list; SAN conditions are string matchers.
fn client_certificate(value: &Value) -> Result<Criterion, PolicyError> {
    let bad = |why: String| PolicyError::new(format!("client_certificate: {why}"));
    let Value::Object(map) = value else {
        return Err(bad(format!("expected a map of conditions, got {}", kind(value))));
    };
    if map.is_empty() {
        return Err(bad("give at least one of fingerprint, spki_hash, san_email, san_dns, san_uri".into()));
    }
    let list = |key: &str, v: &Value| -> Result<Vec<String>, PolicyError> {
        let items = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let out = items
            .into_iter()
            .map(|i| scalar(i).ok_or_else(|| bad(format!("{key}: expected strings, got {}", kind(i)))))
            .collect::<Result<Vec<_>, _>>()?;
        if out.is_empty() {
            return Err(bad(format!("{key}: the list is empty")));
        }
        Ok(out)
    };
    let mut m =
        CertMatcher { fingerprints: None, spki_hashes: None, san_email: None, san_dns: None, san_uri: None };
    for (k, v) in map {
        match k.as_str() {
            "fingerprint" => {
                m.fingerprints =
                    Some(list(k, v)?.iter().map(|f| canonical_fingerprint(f)).collect::<Result<_, _>>()?)
            }
            "spki_hash" => {
                let hashes = list(k, v)?;
                if let Some(h) = hashes.iter().find(|h| !is_sha256_base64(h)) {
                    return Err(bad(format!("spki_hash `{h}` is not a base64-encoded SHA-256 hash")));
                }
                m.spki_hashes = Some(hashes);
            }
            "san_email" => {
                m.san_email = Some(StringMatcher::parse(v, "client_certificate: san_email", str::to_owned)?)
            }
            "san_dns" => {
                m.san_dns = Some(StringMatcher::parse(v, "client_certificate: san_dns", str::to_owned)?)
            }
            "san_uri" => {
                m.san_uri = Some(StringMatcher::parse(v, "client_certificate: san_uri", str::to_owned)?)
            }
            other => {
                return Err(bad(format!(
                    "`{other}` is not supported (use fingerprint, spki_hash, san_email, san_dns or san_uri)"
                )));
            }
        }
    }
    Ok(Criterion::ClientCertificate(Box::new(m)))
}

/// A SHA-256 fingerprint in either of Pomerium's forms: 64 lower-case hex digits, or 32
/// upper-case hex bytes joined by colons. Returns the short form.
fn canonical_fingerprint(f: &str) -> Result<String, PolicyError> {
    let short = f.len() == 64 && f.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let long = f.len() == 95
        && f.split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    if short {
        Ok(f.to_owned())
    } else if long {
        Ok(f.replace(':', "").to_ascii_lowercase())
    } else {
        Err(PolicyError::new(format!(
            "client_certificate: fingerprint `{f}` is not a SHA-256 fingerprint (64 lower-case hex \
             digits, or 32 upper-case hex bytes separated by colons)"
        )))
    }
}

/// Standard base64 (padded) of 32 bytes: 43 alphabet characters and one `=`.
fn is_sha256_base64(h: &str) -> bool {
    let b = h.as_bytes();
    b.len() == 44
        && b[43] == b'='
        && b[..43].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        // The last character carries 2 bits of padding: it must be one with them zero.
        && b"AEIMQUYcgkosw048".contains(&b[42])
}

/// List matchers: a bare scalar means `has`; or a map of `has`, `is`, `exclude` (all must
/// hold).
fn list_matcher(name: &str, value: &Value) -> Result<Vec<ListMatcher>, PolicyError> {
    let bad = |why: String| PolicyError::new(format!("{name}: {why}"));
    let operand =
        |v: &Value, op: &str| scalar(v).ok_or_else(|| bad(format!("`{op}` needs a string, got {}", kind(v))));
    match value {
        Value::Object(map) if map.is_empty() => Err(bad("empty matcher".into())),
        Value::Object(map) => map
            .iter()
            .map(|(op, v)| {
                Ok(match op.as_str() {
                    "has" => ListMatcher::Has(operand(v, op)?),
                    "is" => ListMatcher::Is(operand(v, op)?),
                    "exclude" => ListMatcher::Exclude(operand(v, op)?),
                    other => {
                        return Err(bad(format!(
                            "unknown list matcher `{other}` (expected has, is, exclude)"
                        )));
                    }
                })
            })
            .collect(),
        v => Ok(vec![ListMatcher::Has(operand(v, "has")?)]),
    }
}

fn lookup<'a>(claims: &'a serde_json::Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut at = claims.get(first)?;
    for seg in rest {
        at = at.as_object()?.get(seg)?;
    }
    Some(at)
}

fn unknown_criterion(name: &str) -> String {
    match name {
        "device" | "record" | "pomerium_routes" => {
            format!("criterion `{name}` is not supported yet")
        }
        _ => format!("unknown criterion `{name}`"),
    }
}

/// Emails compare case-insensitively, with a trailing dot on the domain ignored.
pub(crate) fn canonical_email(email: &str) -> String {
    email.trim_end_matches('.').to_lowercase()
}

/// Domains compare case-insensitively, with a trailing dot ignored.
pub(crate) fn canonical_domain(domain: &str) -> String {
    domain.trim_end_matches('.').to_lowercase()
}

/// The domain of `local@domain`; `None` for anything with no or several `@` or an empty side,
/// so look-alike tricks such as `a@b@c` fail closed.
fn email_domain(email: &str) -> Option<String> {
    let mut parts = email.split('@');
    let (local, domain) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || local.is_empty() || domain.is_empty() {
        return None;
    }
    Some(canonical_domain(domain))
}
