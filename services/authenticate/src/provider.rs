//! The OpenID Connect provider: discovery, authorization URLs, code exchange, ID token
//! verification, userinfo and the logout endpoint.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
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
