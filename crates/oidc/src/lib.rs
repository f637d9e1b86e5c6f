//! The OpenID Connect relying party, shared by the authenticate service (login, logout) and
//! the cache service (refresh): discovery, authorization URLs, code exchange, refresh, ID
//! token verification, userinfo, the logout endpoint and back-channel logout tokens.

#![forbid(unsafe_code)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, JsonWebKey, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    SignatureVerificationError, TokenResponse,
};
use portcullis_runtime::config::IdpConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

/// Deadline for every call to the IdP.
const IDP_TIMEOUT: Duration = Duration::from_secs(10);

/// Signature algorithms accepted on ID tokens (no `none`, no HMAC).
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error("the IdP refused the code exchange: {0}")]
    Exchange(String),
    #[error("the IdP returned no ID token")]
    NoIdToken,
    #[error("the ID token is invalid: {0}")]
    InvalidIdToken(String),
    /// The token names a key not in the JWKS we hold: re-discover and verify again.
    #[error("the ID token is signed with an unknown key")]
    UnknownKey,
    #[error("userinfo failed: {0}")]
    UserInfo(String),
}

/// Why a refresh did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The IdP refused (`invalid_grant`, user deleted or disabled, client revoked): the
    /// session is over.
    #[error("the IdP refused the refresh: {0}")]
    Refused(String),
    /// Network trouble, a timeout or an IdP error that may pass: try again later.
    #[error("refresh failed, may be retried: {0}")]
    Transient(String),
}

/// The verified claims of an OIDC Back-Channel Logout token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutClaims {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    pub iat: i64,
}

/// Why a logout token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogoutTokenError {
    #[error("not a signed JWT")]
    Malformed,
    /// The token names a key we do not have: re-discover and try again.
    #[error("signed with an unknown key")]
    UnknownKey,
    #[error("signature invalid")]
    BadSignature,
    #[error("claim `{0}` is missing or invalid")]
    Claim(&'static str),
}

/// The event a back-channel logout token must carry (OIDC Back-Channel Logout 1.0, 2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How old (by `iat`) a logout token may be, and how far in the future.
pub const LOGOUT_TOKEN_MAX_AGE_SECS: i64 = 300;
const CLOCK_SKEW_SECS: i64 = 60;

/// The tokens of a session; stored only sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: String,
    /// Unix seconds, when the access token expires (if the IdP said).
    pub access_token_expires_at: Option<i64>,
}

/// A discovered provider.
pub struct Provider {
    metadata: CoreProviderMetadata,
    end_session_endpoint: Option<Url>,
    userinfo_endpoint: Option<Url>,
    http: reqwest::Client,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
}

type ConfiguredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(IDP_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())
}

impl Provider {
    /// Discover `idp` (metadata and JWKS); `redirect` is our `/oauth2/callback`.
    pub async fn discover(
        idp: &IdpConfig,
        redirect: &Url,
        http: reqwest::Client,
    ) -> Result<Provider, ProviderError> {
        let issuer_text = idp.provider_url.as_str().trim_end_matches('/').to_owned();
        let issuer =
            IssuerUrl::new(issuer_text.clone()).map_err(|e| ProviderError::Discovery(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| ProviderError::Discovery(e.to_string()))?;
        // Fields openidconnect's core metadata does not model.
        let doc: Value = http
            .get(format!("{issuer_text}/.well-known/openid-configuration"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| ProviderError::Discovery(e.to_string()))?
            .json()
            .await
            .map_err(|e| ProviderError::Discovery(e.to_string()))?;
        let endpoint = |name: &str| doc.get(name).and_then(Value::as_str).and_then(|s| Url::parse(s).ok());
        Ok(Provider {
            end_session_endpoint: endpoint("end_session_endpoint"),
            userinfo_endpoint: endpoint("userinfo_endpoint"),
            metadata,
            http,
            client_id: ClientId::new(idp.client_id.clone()),
            client_secret: ClientSecret::new(idp.client_secret.clone()),
            redirect: RedirectUrl::from_url(redirect.clone()),
        })
    }

    pub fn issuer(&self) -> &str {
        self.metadata.issuer().as_str()
    }

    fn client(&self) -> ConfiguredClient {
        CoreClient::from_provider_metadata(
            self.metadata.clone(),
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// The IdP URL to send the browser to. Returns the PKCE verifier to keep.
    pub fn authorize_url(&self, scopes: &[String], state: &str, nonce: &str) -> (Url, String) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_owned();
        let nonce = nonce.to_owned();
        let client = self.client();
        let mut request = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(challenge);
        for scope in scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, _, _) = request.url();
        (url, verifier.secret().clone())
    }

    /// Exchange `code` (with the PKCE verifier) and return the tokens; the ID token is not
    /// verified yet (see [`Provider::verify_id_token`]).
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenSet, ProviderError> {
        let client = self.client();
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ProviderError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| ProviderError::Exchange(e.to_string()))?;
        let id_token = response.id_token().ok_or(ProviderError::NoIdToken)?.to_string();
        Ok(TokenSet {
            access_token: response.access_token().secret().clone(),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
            id_token,
            access_token_expires_at: response
                .expires_in()
                .map(|d| portcullis_runtime::now_unix() + d.as_secs() as i64),
        })
    }

    /// Verify the ID token (signature from the JWKS, `iss`, `aud`/`azp`, `exp`, `nonce`,
    /// algorithm) and return all its claims.
    pub fn verify_id_token(&self, id_token: &str, nonce: &str) -> Result<Map<String, Value>, ProviderError> {
        let token: openidconnect::core::CoreIdToken =
            id_token.parse().map_err(|e: serde_json::Error| ProviderError::InvalidIdToken(e.to_string()))?;
        let client = self.client();
        let verifier = client.id_token_verifier().set_allowed_algs(ALLOWED_ALGS);
        match token.claims(&verifier, &Nonce::new(nonce.to_owned())) {
            Ok(_) => {}
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                return Err(ProviderError::UnknownKey);
            }
            Err(e) => return Err(ProviderError::InvalidIdToken(e.to_string())),
        }
        // Verified above; read every claim (custom ones like `groups` included).
        let payload =
            id_token.split('.').nth(1).ok_or_else(|| ProviderError::InvalidIdToken("not a JWS".into()))?;
        let bytes =
            URL_SAFE_NO_PAD.decode(payload).map_err(|e| ProviderError::InvalidIdToken(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| ProviderError::InvalidIdToken(e.to_string()))
    }

    /// Use `refresh_token`. The new token set keeps the old refresh token (and ID token) when
    /// the IdP does not send new ones.
    pub async fn refresh(&self, old: &TokenSet) -> Result<TokenSet, RefreshError> {
        let Some(refresh_token) = &old.refresh_token else {
            return Err(RefreshError::Refused("the session has no refresh token".into()));
        };
        let client = self.client();
        let token = RefreshToken::new(refresh_token.clone());
        let request =
            client.exchange_refresh_token(&token).map_err(|e| RefreshError::Refused(e.to_string()))?;
        let response = match request.request_async(&self.http).await {
            Ok(r) => r,
            Err(RequestTokenError::ServerResponse(e)) => {
                let code = e.error().to_string();
                return Err(match code.as_str() {
                    "server_error" | "temporarily_unavailable" => RefreshError::Transient(code),
                    _ => RefreshError::Refused(code),
                });
            }
            Err(e) => return Err(RefreshError::Transient(e.to_string())),
        };
        Ok(TokenSet {
            access_token: response.access_token().secret().clone(),
            refresh_token: response
                .refresh_token()
                .map(|t| t.secret().clone())
                .or_else(|| old.refresh_token.clone()),
            id_token: response.id_token().map(|t| t.to_string()).unwrap_or_else(|| old.id_token.clone()),
            access_token_expires_at: response
                .expires_in()
                .map(|d| portcullis_runtime::now_unix() + d.as_secs() as i64),
        })
    }

    /// Verify an ID token from a refresh (no nonce: OIDC Core 12.2 lets the IdP omit it) and
    /// return its claims; `sub` must stay the same.
    pub fn verify_refreshed_id_token(
        &self,
        id_token: &str,
        sub: &str,
    ) -> Result<Map<String, Value>, ProviderError> {
        let token: openidconnect::core::CoreIdToken =
            id_token.parse().map_err(|e: serde_json::Error| ProviderError::InvalidIdToken(e.to_string()))?;
        let client = self.client();
        let verifier = client.id_token_verifier().set_allowed_algs(ALLOWED_ALGS);
        match token.claims(&verifier, |_: Option<&Nonce>| Ok(())) {
            Ok(claims) if claims.subject().as_str() == sub => {}
            Ok(_) => return Err(ProviderError::InvalidIdToken("`sub` changed on refresh".into())),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                return Err(ProviderError::UnknownKey);
            }
            Err(e) => return Err(ProviderError::InvalidIdToken(e.to_string())),
        }
        jwt_claims(id_token).map_err(|_| ProviderError::InvalidIdToken("payload".into()))
    }

    /// Verify an OIDC Back-Channel Logout token: signature (the IdP's JWKS, no `none`, no
    /// HMAC), `iss`, `aud`, `iat` (recent), the logout `events` member, `sid` and/or `sub`, and
    /// no `nonce`. Replay (`jti`) is the caller's to check.
    pub fn verify_logout_token(&self, token: &str, now: i64) -> Result<LogoutClaims, LogoutTokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LogoutTokenError::Malformed);
        };
        let header: Value = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(LogoutTokenError::Malformed)?;
        let alg: CoreJwsSigningAlgorithm =
            serde_json::from_value(header["alg"].clone()).map_err(|_| LogoutTokenError::Malformed)?;
        if !ALLOWED_ALGS.contains(&alg) {
            return Err(LogoutTokenError::BadSignature);
        }
        let kid = header["kid"].as_str();
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| LogoutTokenError::Malformed)?;
        let candidates: Vec<_> = self
            .metadata
            .jwks()
            .keys()
            .iter()
            .filter(|k| kid.is_none_or(|kid| k.key_id().is_some_and(|id| id.as_str() == kid)))
            .collect();
        if candidates.is_empty() {
            return Err(LogoutTokenError::UnknownKey);
        }
        let message = format!("{h}.{p}");
        if !candidates.iter().any(|k| k.verify_signature(&alg, message.as_bytes(), &signature).is_ok()) {
            return Err(LogoutTokenError::BadSignature);
        }
        let claims = jwt_claims(token).map_err(|_| LogoutTokenError::Malformed)?;
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        if text("iss").as_deref() != Some(self.issuer()) {
            return Err(LogoutTokenError::Claim("iss"));
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == self.client_id.as_str(),
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(self.client_id.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(LogoutTokenError::Claim("aud"));
        }
        let iat = claims.get("iat").and_then(Value::as_i64).ok_or(LogoutTokenError::Claim("iat"))?;
        if iat < now - LOGOUT_TOKEN_MAX_AGE_SECS || iat > now + CLOCK_SKEW_SECS {
            return Err(LogoutTokenError::Claim("iat"));
        }
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
            && exp < now - CLOCK_SKEW_SECS
        {
            return Err(LogoutTokenError::Claim("exp"));
        }
        let jti = text("jti").filter(|j| !j.is_empty()).ok_or(LogoutTokenError::Claim("jti"))?;
        if !claims.get("events").and_then(|e| e.get(BACKCHANNEL_LOGOUT_EVENT)).is_some_and(Value::is_object) {
            return Err(LogoutTokenError::Claim("events"));
        }
        if claims.contains_key("nonce") {
            return Err(LogoutTokenError::Claim("nonce"));
        }
        let (sub, sid) = (text("sub"), text("sid"));
        if sub.is_none() && sid.is_none() {
            return Err(LogoutTokenError::Claim("sub"));
        }
        Ok(LogoutClaims { sub, sid, jti, iat })
    }

    /// The userinfo claims (empty when the IdP has no userinfo endpoint).
    pub async fn userinfo(
        &self,
        access_token: &str,
        expected_sub: &str,
    ) -> Result<Map<String, Value>, ProviderError> {
        let Some(endpoint) = &self.userinfo_endpoint else {
            return Ok(Map::new());
        };
        let response = self
            .http
            .get(endpoint.clone())
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| ProviderError::UserInfo(e.without_url().to_string()))?;
        let claims: Map<String, Value> =
            response.json().await.map_err(|e| ProviderError::UserInfo(e.to_string()))?;
        // OIDC Core 5.3.2: the userinfo `sub` must match the ID token's.
        if claims.get("sub").and_then(Value::as_str) != Some(expected_sub) {
            return Err(ProviderError::UserInfo("userinfo `sub` does not match the ID token".into()));
        }
        Ok(claims)
    }

    /// RP-initiated logout URL, if the IdP supports it.
    pub fn end_session_url(&self, id_token_hint: Option<&str>, post_logout_redirect: &Url) -> Option<Url> {
        let mut url = self.end_session_endpoint.clone()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("client_id", self.client_id.as_str());
            q.append_pair("post_logout_redirect_uri", post_logout_redirect.as_str());
        }
        Some(url)
    }
}

/// The claims of a JWS (not verified here).
fn jwt_claims(jwt: &str) -> Result<Map<String, Value>, String> {
    let payload = jwt.split('.').nth(1).ok_or("not a JWS")?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// When the session's tokens need refreshing: the earlier of the access token's and the ID
/// token's expiry (Unix seconds), if either is known.
pub fn tokens_expire_at(tokens: &TokenSet) -> Option<i64> {
    let id_exp = jwt_claims(&tokens.id_token).ok().and_then(|c| c.get("exp").and_then(Value::as_i64));
    match (tokens.access_token_expires_at, id_exp) {
        (Some(a), Some(i)) => Some(a.min(i)),
        (a, i) => a.or(i),
    }
}

/// AAD of sealed [`TokenSet`]s (with the key for `Purpose::Tokens`).
pub const TOKENS_AAD: &[u8] = b"oidc tokens";

/// The person, from ID token and userinfo claims (userinfo wins).
pub fn identity(
    sub: String,
    mut claims: Map<String, Value>,
    userinfo: Map<String, Value>,
) -> portcullis_schemas::messages::Identity {
    claims.extend(userinfo);
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    let groups = match claims.get("groups") {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    portcullis_schemas::messages::Identity {
        user_id: sub,
        email: text("email"),
        name: text("name"),
        groups,
        claims,
    }
}
