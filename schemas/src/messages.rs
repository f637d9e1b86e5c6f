//! Request-reply messages and key-value records.
//!
//! Every reply on a request-reply subject is a [`Reply`]: `{"ok": ...}` or
//! `{"error": {"code": ..., "message": ...}}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The envelope of every reply.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    Ok(T),
    Error(ErrorReply),
}

/// A request that could not be served. `code` is stable and machine-readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request did not parse or broke the contract.
    BadRequest,
    /// The named thing does not exist.
    NotFound,
    /// The route id is unknown to this instance (configurations differ).
    UnknownRoute,
    /// A dependency (KV, stream, IdP) failed; a retry may help.
    Unavailable,
    /// A bug or an invariant broken inside the service.
    Internal,
}

/// One HTTP header; repeated names appear as repeated entries, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header { name: name.into(), value: value.into() }
    }
}

/// `authorize.check`: may this request pass?
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckRequest {
    /// Content hash of the route the proxy matched (stable across instances with the same
    /// route configuration).
    pub route_id: String,
    /// The session named by the request's session cookie, if it had a valid one.
    pub session_id: Option<String>,
    pub method: String,
    /// The request host as the client sent it, without port.
    pub host: String,
    /// The normalised path (no query).
    pub path: String,
    pub client_ip: String,
    /// An `OPTIONS` request carrying `Origin` and `Access-Control-Request-Method`.
    #[serde(default)]
    pub cors_preflight: bool,
    /// The client certificate the TLS handshake verified, if any.
    #[serde(default)]
    pub client_certificate: Option<ClientCertificate>,
}

/// `authorize.check_batch`: several checks in one message. A proxy sends one when checks
/// queue up behind those already in flight; each is decided exactly as on `authorize.check`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckBatchRequest {
    pub checks: Vec<CheckRequest>,
    /// The sender reads `shared_headers` in the reply: a long header value granted to several
    /// checks of the message (one person's identity JWT, say) may then travel once. An
    /// authorize that does not know this field answers every header in full, as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share_headers: bool,
}

/// One result per check, in the order of the request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckBatchReply {
    pub results: Vec<Reply<CheckReply>>,
    /// Headers granted by reference (`shared` of an `allow`), each value once; only in reply
    /// to a request with `share_headers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_headers: Vec<Header>,
}

/// A verified downstream client certificate, as policies see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClientCertificate {
    /// SHA-256 of the certificate's DER, lower-case hex.
    pub fingerprint: String,
    /// SHA-256 of the SubjectPublicKeyInfo DER, base64 (as Pomerium's `spki_hash`).
    pub spki_hash: String,
    /// Subject alternative names of kind rfc822Name (email addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub san_email: Vec<String>,
    /// Subject alternative names of kind dNSName.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub san_dns: Vec<String>,
    /// Subject alternative names of kind uniformResourceIdentifier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub san_uri: Vec<String>,
}

/// The decision of `authorize.check`. A deny is a decision, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum CheckReply {
    /// Forward the request, adding these headers (after removing client-sent ones).
    Allow {
        headers: Vec<Header>,
        reasons: Vec<String>,
        /// How long the proxy may reuse this decision for the same session and route
        /// (0: not at all). Never longer than the identity JWT stays valid, less a margin.
        #[serde(default)]
        cache_for_ms: u64,
        /// Values for `${pomerium.id_token}` / `${pomerium.access_token}` in the route's
        /// `set_request_headers`, sealed for the proxy (never plaintext on NATS): name → sealed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sealed_templates: Vec<Header>,
        /// In a batch reply: also granted, the batch's `shared_headers` at these positions
        /// (before `headers`). Always empty in a reply to `authorize.check`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shared: Vec<u32>,
    },
    /// Refuse with `status` (403 for a policy deny).
    Deny {
        status: u16,
        reasons: Vec<String>,
        #[serde(default)]
        cache_for_ms: u64,
    },
    /// The user must sign in first.
    Login {
        reasons: Vec<String>,
        #[serde(default)]
        cache_for_ms: u64,
    },
}

/// Read as one flat object and then sorted by `decision`: the same JSON as the tagged enum
/// describes, without serde's buffering of every value of an internally tagged enum (a reply
/// carries an identity JWT, and the proxy reads one per check).
impl<'de> Deserialize<'de> for CheckReply {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Allow,
            Deny,
            Login,
        }
        #[derive(Deserialize)]
        struct Flat {
            decision: Kind,
            headers: Option<Vec<Header>>,
            reasons: Vec<String>,
            #[serde(default)]
            cache_for_ms: u64,
            #[serde(default)]
            sealed_templates: Vec<Header>,
            #[serde(default)]
            shared: Vec<u32>,
            status: Option<u16>,
        }
        let f = Flat::deserialize(deserializer)?;
        Ok(match f.decision {
            Kind::Allow => CheckReply::Allow {
                headers: f.headers.ok_or_else(|| D::Error::missing_field("headers"))?,
                reasons: f.reasons,
                cache_for_ms: f.cache_for_ms,
                sealed_templates: f.sealed_templates,
                shared: f.shared,
            },
            Kind::Deny => CheckReply::Deny {
                status: f.status.ok_or_else(|| D::Error::missing_field("status"))?,
                reasons: f.reasons,
                cache_for_ms: f.cache_for_ms,
            },
            Kind::Login => CheckReply::Login { reasons: f.reasons, cache_for_ms: f.cache_for_ms },
        })
    }
}

impl CheckReply {
    /// How long the decision may be reused.
    pub fn cache_for_ms(&self) -> u64 {
        match self {
            CheckReply::Allow { cache_for_ms, .. }
            | CheckReply::Deny { cache_for_ms, .. }
            | CheckReply::Login { cache_for_ms, .. } => *cache_for_ms,
        }
    }
}

/// An HTTP request carried to the authenticate service over NATS.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HttpRequest {
    pub method: String,
    /// `https` or `http`, as seen by the proxy.
    pub scheme: String,
    /// Host as sent by the client, possibly with port.
    pub host: String,
    /// Path and query, as received.
    pub path_and_query: String,
    pub headers: Vec<Header>,
    /// Body, base64 (standard alphabet).
    pub body: String,
    pub client_ip: String,
    /// Set by the proxy, never by the client: the session of the route-host cookie, for the
    /// internal `/.portcullis/*` endpoints served on route hosts.
    pub session_id: Option<String>,
}

/// The HTTP answer to an [`HttpRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<Header>,
    /// Body, base64 (standard alphabet).
    pub body: String,
}

/// Who signed in, as the IdP described them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Identity {
    /// The IdP's subject identifier (`sub`).
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Group names or ids from the token's `groups` claim; never null.
    pub groups: Vec<String>,
    /// Every claim from the ID token and userinfo (userinfo wins), without tokens.
    pub claims: Map<String, Value>,
}

/// `cache.session.create`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreateSessionRequest {
    pub identity: Identity,
    /// The IdP's issuer URL.
    pub idp: String,
    /// The IdP's session id (`sid` claim), for back-channel logout.
    pub idp_session_id: Option<String>,
    /// The OIDC tokens, sealed (AEAD) with a key derived from the shared secret. Never
    /// plaintext on NATS or in KV.
    pub sealed_tokens: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds: when the earliest of the tokens expires (refresh is due before).
    #[serde(default)]
    pub tokens_expire_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreateSessionReply {
    pub session_id: String,
    pub expires_at: i64,
}

/// `cache.session.get`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GetSessionRequest {
    pub session_id: String,
}

/// Why a session ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    SignOut,
    Admin,
    BackchannelLogout,
    IdpRefreshFailed,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::SignOut => "sign_out",
            RevokeReason::Admin => "admin",
            RevokeReason::BackchannelLogout => "backchannel_logout",
            RevokeReason::IdpRefreshFailed => "idp_refresh_failed",
        }
    }
}

/// `cache.session.revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RevokeSessionRequest {
    pub session_id: String,
    pub reason: RevokeReason,
}

/// The session as it was (get) or as it was when deleted (revoke); `None` if unknown.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SessionReply {
    pub session: Option<Session>,
}

/// A session, as stored in the sessions bucket under its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    pub id: String,
    pub identity: Identity,
    pub idp: String,
    pub idp_session_id: Option<String>,
    /// Sealed OIDC tokens (see [`CreateSessionRequest::sealed_tokens`]).
    pub sealed_tokens: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the session is void afterwards.
    pub expires_at: i64,
    /// Unix seconds: when the earliest of the tokens expires (refresh is due before).
    #[serde(default)]
    pub tokens_expire_at: Option<i64>,
    /// Unix seconds of the last successful refresh.
    #[serde(default)]
    pub refreshed_at: Option<i64>,
}

/// `cache.session.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ListSessionsRequest {
    /// Only this user's sessions: an email (case-insensitive) or a user id.
    pub user: Option<String>,
}

/// A session without its tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionSummary {
    pub id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub idp: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub refreshed_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ListSessionsReply {
    pub sessions: Vec<SessionSummary>,
}

/// `cache.session.revoke_where`: revoke every session matching all given fields (at least
/// one of `user`, `user_id`, `idp_session_id` must be given).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RevokeWhereRequest {
    /// An email (case-insensitive) or a user id.
    pub user: Option<String>,
    /// Exactly this user id (the IdP's `sub`).
    #[serde(default)]
    pub user_id: Option<String>,
    /// The IdP's session id (`sid`).
    pub idp_session_id: Option<String>,
    pub reason: RevokeReason,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RevokedReply {
    pub session_ids: Vec<String>,
}

/// A lease on a singleton job, stored under the job's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Lease {
    /// The instance holding it.
    pub holder: String,
    /// Unix milliseconds; free for others afterwards.
    pub expires_at_ms: i64,
}

/// A user, as stored in the users bucket under the user id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct User {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub claims: Map<String, Value>,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A login in progress, stored sealed in the logins bucket under the OAuth `state` and
/// consumed exactly once by the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoginState {
    /// Where to send the browser after sign-in (validated against route hosts).
    pub redirect_uri: String,
    pub pkce_verifier: String,
    pub nonce: String,
    /// SHA-256 (base64url) of the browser-binding cookie set on the authenticate host when
    /// the login began.
    pub browser_binding: String,
    /// SHA-256 (base64url) of the binding cookie the proxy set on the route host; handed
    /// back in the callback handle.
    pub route_binding: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A user as the directory provider lists them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct DirectoryUser {
    /// The provider's id of the user (SCIM id, LDAP attribute, Okta/Graph/Google id, ...).
    pub id: String,
    /// Lower-cased; how a session is matched to a directory user when ids differ.
    pub email: Option<String>,
    pub name: Option<String>,
    /// Ids of the groups the user is in, directly or through nested groups, sorted.
    pub groups: Vec<String>,
}

/// A group as the directory provider lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct DirectoryGroup {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
}

/// A pending request for a sync now, stored under `sync-request` until the syncing instance
/// takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncRequested {
    /// Echoed in the resulting `directory.synced` or `directory.sync_failed` event.
    pub request_id: String,
    /// Unix seconds.
    pub requested_at: i64,
}

/// A value in the directory bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DirectoryRecord {
    User(DirectoryUser),
    Group(DirectoryGroup),
    SyncRequest(SyncRequested),
}

/// `cache.directory.sync`: ask for a sync as soon as the instance holding the sync lease sees
/// it (within a second or two).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DirectorySyncRequest {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DirectorySyncReply {
    /// Carried by the event that reports the outcome.
    pub request_id: String,
}

/// `cache.directory.show`: a user by provider id or email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DirectoryShowRequest {
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DirectoryShowReply {
    pub user: DirectoryUser,
    /// The user's groups with their names, in the order of `user.groups`.
    pub groups: Vec<DirectoryGroup>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_replies_read_back_as_written_and_incomplete_ones_are_refused() {
        let replies = [
            CheckReply::Allow {
                headers: vec![Header::new("x-portcullis-jwt-assertion", "a.b.c")],
                reasons: vec!["domain-ok".into()],
                cache_for_ms: 30_000,
                sealed_templates: vec![Header::new("id_token", "sealed")],
                shared: vec![0, 2],
            },
            CheckReply::Allow {
                headers: vec![],
                reasons: vec![],
                cache_for_ms: 0,
                sealed_templates: vec![],
                shared: vec![],
            },
            CheckReply::Deny { status: 403, reasons: vec!["domain-unauthorized".into()], cache_for_ms: 5 },
            CheckReply::Login { reasons: vec!["user-unauthenticated".into()], cache_for_ms: 0 },
        ];
        for reply in replies {
            let json = serde_json::to_string(&reply).expect("serialize");
            assert_eq!(serde_json::from_str::<CheckReply>(&json).expect(&json), reply);
        }
        // Optional fields default; required ones are named when missing.
        let login: CheckReply = serde_json::from_str(r#"{"decision":"login","reasons":[]}"#).expect("login");
        assert_eq!(login, CheckReply::Login { reasons: vec![], cache_for_ms: 0 });
        for (json, missing) in [
            (r#"{"decision":"deny","reasons":[]}"#, "status"),
            (r#"{"decision":"allow","reasons":[]}"#, "headers"),
            (r#"{"decision":"login"}"#, "reasons"),
            (r#"{"reasons":[]}"#, "decision"),
        ] {
            let error = serde_json::from_str::<CheckReply>(json).expect_err(json).to_string();
            assert!(error.contains(missing), "{json}: {error}");
        }
        let unknown = serde_json::from_str::<CheckReply>(r#"{"decision":"maybe","reasons":[]}"#);
        assert!(unknown.is_err(), "an unknown decision is refused");
    }
}
