//! Access tokens by the OAuth 2.0 client-credentials grant (RFC 6749 §4.4), for the providers
//! whose APIs take one (Entra ID, Keycloak, Auth0).

use serde::Deserialize;
use url::Url;

use crate::ProviderError;
use crate::http::Api;

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// A token from `token_url`, sending `form` (form-encoded) or `json` as the body.
pub async fn client_credentials(
    api: &Api,
    token_url: Url,
    form: Option<&[(&str, &str)]>,
    json: Option<&serde_json::Value>,
) -> Result<String, ProviderError> {
    let mut request = api.client().post(token_url).header("accept", "application/json");
    if let Some(form) = form {
        request = request.form(form);
    }
    if let Some(json) = json {
        request = request.json(json);
    }
    match api.json::<TokenResponse>(request).await {
        Ok((t, _)) => Ok(t.access_token),
        // An OAuth error from a token endpoint is a refused credential, whatever the status.
        Err(ProviderError::Status { what, status: 400 | 401 | 403, detail }) => {
            Err(ProviderError::Auth(format!("{what}: {detail}")))
        }
        Err(e) => Err(e),
    }
}
