//! `authorize.check`: decide one request against its route's policy.

use std::sync::Arc;

use portcullis_policy::{ClientCertFacts, Decision, Input, RequestFacts, UserFacts};
use portcullis_runtime::bucket::Bucket;
use portcullis_runtime::now_unix;
use portcullis_schemas::messages::{
    CheckBatchReply, CheckBatchRequest, CheckReply, CheckRequest, ErrorCode, ErrorReply, Header, Reply,
    Session,
};
use tracing::{debug, error, warn};

use crate::jwt::{Identity, Minter};
use crate::replica::Replica;

/// AAD of sealed OIDC token sets (the authenticate and cache services seal them so).
const TOKENS_AAD: &[u8] = b"oidc tokens";

/// The longest a proxy may reuse a decision, seconds.
const DECISION_CACHE_CAP_SECS: i64 = 30;

/// The header carrying the identity JWT to upstreams.
pub const JWT_ASSERTION_HEADER: &str = "x-portcullis-jwt-assertion";

/// What a check reads.
pub struct Checker {
    pub live: portcullis_runtime::reload::LiveConfig,
    /// Opens session tokens and seals template values for the proxy (shared secret).
    pub token_sealer: portcullis_runtime::crypto::Sealer,
    pub replica: Arc<Replica>,
    pub minter: Arc<Minter>,
    /// For sessions not yet replicated (created a moment ago): one direct read. `None` runs
    /// from the replica alone (benchmarks, tests).
    pub sessions: Option<Bucket<Session>>,
}

impl Checker {
    pub async fn check(&self, req: CheckRequest) -> Result<CheckReply, ErrorReply> {
        // The routes as now configured (reloaded when the file changes).
        let live = self.live.borrow().clone();
        let Some(route) = live.route_by_id(&req.route_id) else {
            warn!(route = %req.route_id, "check for a route this instance does not know");
            return Err(ErrorReply {
                code: ErrorCode::UnknownRoute,
                message: "unknown route id: proxy and authorize configurations differ".into(),
            });
        };
        let now = now_unix();
        let session = match &req.session_id {
            Some(id) => self.session(id).await?.filter(|s| s.expires_at > now),
            None => None,
        };
        let user_record = session.as_ref().and_then(|s| self.replica.user_of(&s.identity.user_id));
        // The user record is the freshest view of the person (updated on every sign-in).
        let (email, name, groups, claims) = match (&session, &user_record) {
            (_, Some(u)) => (u.email.as_deref(), u.name.as_deref(), u.groups.as_slice(), &u.claims),
            (Some(s), None) => (
                s.identity.email.as_deref(),
                s.identity.name.as_deref(),
                s.identity.groups.as_slice(),
                &s.identity.claims,
            ),
            (None, None) => (None, None, &[][..], &*EMPTY_CLAIMS),
        };
        // Directory groups, when the directory knows the person, replace the token's.
        let directory_groups =
            session.as_ref().and_then(|s| self.replica.directory_groups(&s.identity.user_id, email, claims));
        let groups: &[String] = directory_groups.as_deref().unwrap_or(groups);
        let user =
            session.as_ref().map(|s| UserFacts { user_id: &s.identity.user_id, email, claims, groups });
        // Pomerium's default with a client CA: no verified certificate, no entry (495).
        if live.server.client_ca_pem.is_some() && req.client_certificate.is_none() {
            return Ok(CheckReply::Deny {
                status: 495,
                reasons: vec!["invalid-client-certificate".into()],
                cache_for_ms: 0,
            });
        }
        let request = RequestFacts {
            method: &req.method,
            path: &req.path,
            client_ip: req.client_ip.parse().ok(),
            now_unix: now,
            cors_preflight: req.cors_preflight,
            client_certificate: req.client_certificate.as_ref().map(|c| ClientCertFacts {
                fingerprint: &c.fingerprint,
                spki_hash: &c.spki_hash,
                san_email: &c.san_email,
                san_dns: &c.san_dns,
                san_uri: &c.san_uri,
            }),
        };
        let decision = route.policy.decide(&Input { user, request });
        debug!(route = route.index, host = %req.host, ?decision, "checked");
        // Decisions may be reused by the proxy for a while: never past the session's end,
        // never past the identity JWT's life less the reuse margin, never beyond a cap (so a
        // proxy that missed a revocation event still catches up soon).
        let session_left = session.as_ref().map_or(i64::MAX, |s| s.expires_at - now);
        // A policy that reads the request (method, path, address, time) decides per request.
        let reusable = !route.policy.reads_request() && live.server.client_ca_pem.is_none();
        let cache_for = |jwt_left: i64| -> u64 {
            if !reusable {
                return 0;
            }
            let secs = session_left.min(jwt_left).clamp(0, DECISION_CACHE_CAP_SECS);
            secs as u64 * 1000
        };
        Ok(match decision {
            Decision::Allow { reasons } => {
                let mut headers = Vec::new();
                let mut jwt_left = i64::MAX;
                // The JWT also feeds `${pomerium.jwt}` in set_request_headers.
                let wants_jwt = route.pass_identity_headers || route.uses_template("jwt");
                // jwt_groups_filter: users in hundreds of groups would overflow header limits.
                let shown_groups: Vec<String> = match &route.jwt_groups_filter {
                    Some(keep) => groups.iter().filter(|g| keep.contains(g)).cloned().collect(),
                    None => groups.to_vec(),
                };
                if let (Some(s), true) = (&session, wants_jwt) {
                    let identity = Identity {
                        user_id: &s.identity.user_id,
                        email: email.unwrap_or_default(),
                        name: name.unwrap_or_default(),
                        groups: &shown_groups,
                    };
                    let (jwt, exp) = self.minter.token(s, &identity, &req.host, now).map_err(|e| {
                        error!(error = %e, "signing the identity JWT failed");
                        ErrorReply { code: ErrorCode::Internal, message: "cannot sign identity".into() }
                    })?;
                    jwt_left = exp - now - crate::jwt::REUSE_MARGIN_SECS;
                    headers.push(Header::new(JWT_ASSERTION_HEADER, jwt));
                }
                if let (Some(s), true) = (&session, route.pass_identity_headers) {
                    for (header, claim) in &route.jwt_claims_headers {
                        let value = match claim.as_str() {
                            "email" => email.unwrap_or_default().to_owned(),
                            "name" => name.unwrap_or_default().to_owned(),
                            "sub" | "user" => s.identity.user_id.clone(),
                            "groups" => shown_groups.join(","),
                            other => claim_text(claims.get(other)),
                        };
                        headers.push(Header::new(header.clone(), value));
                    }
                }
                let sealed_templates = match &session {
                    Some(s) => self.sealed_templates(route, s, &req.route_id),
                    None => Vec::new(),
                };
                CheckReply::Allow {
                    headers,
                    reasons: reasons.to_strings(),
                    cache_for_ms: cache_for(jwt_left),
                    sealed_templates,
                    shared: Vec::new(),
                }
            }
            Decision::Deny { reasons } => CheckReply::Deny {
                status: 403,
                reasons: reasons.to_strings(),
                cache_for_ms: cache_for(i64::MAX),
            },
            Decision::Login { reasons } => {
                CheckReply::Login { reasons: reasons.to_strings(), cache_for_ms: cache_for(i64::MAX) }
            }
        })
    }

    /// Each check of a batch, decided on its own (concurrently, so a session read from KV does
    /// not hold up the others), each within `deadline` (a slow one answers `unavailable`
    /// rather than hold up the message); results in request order. The checks start together,
    /// so one deadline serves them all; a batch decided from the replica alone (nearly every
    /// one) finishes in its first poll and never sets a timer.
    pub async fn check_batch(
        &self,
        batch: CheckBatchRequest,
        deadline: std::time::Duration,
    ) -> CheckBatchReply {
        let share = batch.share_headers;
        let mut checks: Vec<_> =
            batch.checks.into_iter().map(|q| Box::pin(futures::future::maybe_done(self.check(q)))).collect();
        let all = std::future::poll_fn(|cx| {
            let mut done = true;
            for check in &mut checks {
                done &= check.as_mut().poll(cx).is_ready();
            }
            if done { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
        });
        // Past the deadline, the checks still running are dropped, unanswered.
        let _ = tokio::time::timeout(deadline, all).await;
        let mut results: Vec<Reply<CheckReply>> = checks
            .iter_mut()
            .map(|check| match check.as_mut().take_output() {
                Some(Ok(r)) => Reply::Ok(r),
                Some(Err(e)) => Reply::Error(e),
                None => Reply::Error(ErrorReply {
                    code: ErrorCode::Unavailable,
                    message: "the check took too long".into(),
                }),
            })
            .collect();
        let mut shared_headers = Vec::new();
        if share {
            share_long_headers(&mut results, &mut shared_headers);
        }
        CheckBatchReply { results, shared_headers }
    }

    /// The session's OIDC tokens the route's header templates ask for, re-sealed for the
    /// proxy with the route id as AAD.
    fn sealed_templates(
        &self,
        route: &portcullis_runtime::config::Route,
        s: &Session,
        route_id: &str,
    ) -> Vec<Header> {
        let wanted: Vec<&str> =
            ["id_token", "access_token"].into_iter().filter(|w| route.uses_template(w)).collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let Ok(tokens) = self.token_sealer.open_json::<serde_json::Value>(&s.sealed_tokens, TOKENS_AAD)
        else {
            warn!(route = route.index, "session tokens do not open; token templates left empty");
            return Vec::new();
        };
        wanted
            .into_iter()
            .filter_map(|w| {
                let value = tokens.get(w)?.as_str()?;
                Some(Header::new(w, self.token_sealer.seal(value.as_bytes(), route_id.as_bytes())))
            })
            .collect()
    }

    async fn session(&self, id: &str) -> Result<Option<Arc<Session>>, ErrorReply> {
        if let Some(s) = self.replica.session(id) {
            return Ok(Some(s));
        }
        // Not replicated yet, or not there at all. Sessions are created a moment before the
        // first request that uses them, so look once in KV. Cookies are sealed, so ids that
        // reach here were issued by us.
        let Some(sessions) = &self.sessions else { return Ok(None) };
        match sessions.get(id).await {
            Ok(Some((s, _))) => Ok(Some(self.replica.insert_session(s))),
            Ok(None) => Ok(None),
            Err(e) => {
                warn!(error = %e, "session lookup failed");
                Err(ErrorReply { code: ErrorCode::Unavailable, message: "session store unavailable".into() })
            }
        }
    }
}

/// Granted header values at least this long travel once per batch reply, when the proxy
/// reads shared headers (`share_headers`); shorter ones cost less in place than a reference.
const SHARE_FROM_BYTES: usize = 64;

/// Move the long headers at the front of each result's granted headers (the identity JWT
/// comes first) into `table`, each distinct (name, value) once, leaving their positions in
/// the result's `shared`. The proxy puts shared headers before a result's own, so only a
/// leading run is moved: the order of what is granted stays as it was.
fn share_long_headers(results: &mut [Reply<CheckReply>], table: &mut Vec<Header>) {
    for result in results {
        let Reply::Ok(CheckReply::Allow { headers, shared, .. }) = result else { continue };
        let lead = headers.iter().take_while(|h| h.value.len() >= SHARE_FROM_BYTES).count();
        for header in headers.drain(..lead) {
            let at = match table.iter().position(|t| *t == header) {
                Some(at) => at,
                None => {
                    table.push(header);
                    table.len() - 1
                }
            };
            // A batch carries at most a few hundred checks.
            shared.push(u32::try_from(at).unwrap_or(u32::MAX));
        }
    }
}

/// A claim as header text: strings as they are, lists joined with `,`, others as JSON.
fn claim_text(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

static EMPTY_CLAIMS: std::sync::LazyLock<serde_json::Map<String, serde_json::Value>> =
    std::sync::LazyLock::new(serde_json::Map::new);

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(headers: &[(&str, &str)]) -> Reply<CheckReply> {
        Reply::Ok(CheckReply::Allow {
            headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            reasons: vec![],
            cache_for_ms: 0,
            sealed_templates: vec![],
            shared: vec![],
        })
    }

    /// What a result grants, shared ones first, as the proxy reads it.
    fn granted(result: &Reply<CheckReply>, table: &[Header]) -> Vec<Header> {
        let Reply::Ok(CheckReply::Allow { headers, shared, .. }) = result else { return vec![] };
        shared.iter().map(|&at| table[at as usize].clone()).chain(headers.iter().cloned()).collect()
    }

    #[test]
    fn long_leading_headers_travel_once_per_batch_and_grant_the_same() {
        let (alice, bob) = ("a".repeat(SHARE_FROM_BYTES), "b".repeat(SHARE_FROM_BYTES + 500));
        let jwt = JWT_ASSERTION_HEADER;
        let mut results = vec![
            allow(&[(jwt, &alice), ("x-email", "alice@example.com")]),
            Reply::Ok(CheckReply::Deny { status: 403, reasons: vec![], cache_for_ms: 0 }),
            allow(&[(jwt, &bob)]),
            allow(&[(jwt, &alice), ("x-email", "alice@example.com"), ("x-groups", &bob)]),
            allow(&[("x-short", "1"), ("x-long", &"c".repeat(SHARE_FROM_BYTES))]),
            Reply::Error(ErrorReply { code: ErrorCode::Unavailable, message: "slow".into() }),
        ];
        let before = results.clone();
        let mut table = Vec::new();
        share_long_headers(&mut results, &mut table);
        assert_eq!(table, [Header::new(jwt, alice.clone()), Header::new(jwt, bob.clone())]);
        for (shared, original) in results.iter().zip(&before) {
            assert_eq!(granted(shared, &table), granted(original, &[]), "the same headers, in order");
        }
        // Only a leading run moves: a long header after a short one stays in place.
        let Reply::Ok(CheckReply::Allow { headers, shared, .. }) = &results[3] else { panic!() };
        assert_eq!((shared.as_slice(), headers.len()), (&[0][..], 2));
        let Reply::Ok(CheckReply::Allow { shared, .. }) = &results[4] else { panic!() };
        assert!(shared.is_empty());
        // The reply reads back with the table.
        let reply = CheckBatchReply { results, shared_headers: table };
        let json = serde_json::to_string(&reply).expect("json");
        assert_eq!(json.matches(&alice).count(), 1, "{json}");
        let back: CheckBatchReply = serde_json::from_str(&json).expect("reads back");
        assert_eq!(granted(&back.results[3], &back.shared_headers), granted(&before[3], &[]));
    }
}
