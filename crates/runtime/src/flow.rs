//! What the proxy and authenticate services agree on for the login flow: the internal
//! paths, the signed sign-in URL, and the sealed callback handle.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::crypto::{Sealer, Signer};

/// Internal endpoints. Those on route hosts are served by the proxy (or carried by it to
/// authenticate); those on the authenticate host are authenticate's.
pub mod paths {
    /// Route hosts and authenticate host: liveness.
    pub const PING: &str = "/ping";
    /// Route hosts: the public keys of identity JWTs.
    pub const JWKS: &str = "/.well-known/portcullis/jwks.json";
    /// Route hosts: the user page.
    pub const USER: &str = "/.portcullis/";
    /// Route hosts: where authenticate sends the browser back with a session handle.
    pub const CALLBACK: &str = "/.portcullis/callback";
    /// Route hosts: sign out (GET asks to confirm, POST signs out).
    pub const SIGN_OUT: &str = "/.portcullis/sign_out";
    /// Authenticate host: start a login (signed URL).
    pub const SIGN_IN: &str = "/.portcullis/sign_in";
    /// Authenticate host: where the IdP returns after logout.
    pub const SIGNED_OUT: &str = "/.portcullis/signed_out";
    /// Authenticate host: OIDC Back-Channel Logout (the IdP posts `logout_token`).
    pub const BACKCHANNEL_LOGOUT: &str = "/.portcullis/backchannel_logout";
    /// Authenticate host: the OAuth redirect URI (Pomerium's path).
    pub const OAUTH_CALLBACK: &str = crate::config::OAUTH_CALLBACK_PATH;
}

/// Query parameters.
pub mod params {
    pub const REDIRECT_URI: &str = "redirect_uri";
    pub const EXPIRY: &str = "exp";
    pub const SIGNATURE: &str = "sig";
    pub const HANDLE: &str = "handle";
    /// SHA-256 of the route host's login-binding cookie (see [`super::binding_cookie_name`]).
    pub const BINDING: &str = "binding";
}

/// The cookie on a route host that binds a login to the browser that started it: the
/// proxy sets it with the sign-in redirect and requires it on the callback, so a callback
/// link is useless in any other browser (no login CSRF, no leaked-link session theft).
pub fn binding_cookie_name(session_cookie_name: &str) -> String {
    format!("{session_cookie_name}_csrf")
}

/// How long a signed sign-in URL stays valid.
pub const SIGN_IN_URL_LIFETIME_SECS: i64 = 300;
/// How long a callback handle stays valid.
pub const HANDLE_LIFETIME_SECS: i64 = 60;

/// A flow artefact was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    #[error("invalid signature")]
    BadSignature,
    #[error("the link has expired; start again")]
    Expired,
    #[error("redirect target is not a configured route")]
    BadRedirect,
    #[error("invalid or expired handle")]
    BadHandle,
}

fn sign_in_message(redirect_uri: &str, binding: &str, exp: i64) -> Vec<u8> {
    format!("{redirect_uri}\n{binding}\n{exp}").into_bytes()
}

/// The signed URL the proxy sends a browser to, to sign in and come back to `redirect_uri`.
/// `binding` is the hash of the route host's binding cookie.
pub fn sign_in_url(authenticate: &Url, signer: &Signer, redirect_uri: &str, binding: &str, now: i64) -> Url {
    let exp = now + SIGN_IN_URL_LIFETIME_SECS;
    let sig = signer.sign(&sign_in_message(redirect_uri, binding, exp));
    let mut url = authenticate.clone();
    url.set_path(paths::SIGN_IN);
    url.query_pairs_mut()
        .append_pair(params::REDIRECT_URI, redirect_uri)
        .append_pair(params::BINDING, binding)
        .append_pair(params::EXPIRY, &exp.to_string())
        .append_pair(params::SIGNATURE, &sig);
    url
}

/// A verified sign-in request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub redirect_uri: String,
    pub binding: String,
}

/// The query parameters of a sign-in URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignInParams<'a> {
    pub redirect_uri: Option<&'a str>,
    pub binding: Option<&'a str>,
    pub exp: Option<&'a str>,
    pub sig: Option<&'a str>,
}

/// Check a sign-in URL's signature and expiry.
pub fn verify_sign_in(signer: &Signer, p: SignInParams<'_>, now: i64) -> Result<SignIn, FlowError> {
    let redirect_uri = p.redirect_uri.ok_or(FlowError::Missing(params::REDIRECT_URI))?;
    let binding = p.binding.ok_or(FlowError::Missing(params::BINDING))?;
    let exp_text = p.exp.ok_or(FlowError::Missing(params::EXPIRY))?;
    let sig = p.sig.ok_or(FlowError::Missing(params::SIGNATURE))?;
    let exp: i64 = exp_text.parse().map_err(|_| FlowError::BadSignature)?;
    if !signer.verify(&sign_in_message(redirect_uri, binding, exp), sig) {
        return Err(FlowError::BadSignature);
    }
    if exp < now {
        return Err(FlowError::Expired);
    }
    Ok(SignIn { redirect_uri: redirect_uri.to_owned(), binding: binding.to_owned() })
}

/// What authenticate hands a route host after a login: sealed, bound to that host, short-lived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackHandle {
    pub session_id: String,
    /// The original URL, on the same host.
    pub redirect_uri: String,
    /// Unix seconds; the session's own expiry (for the cookie's Max-Age).
    pub session_expires_at: i64,
    /// Hash of the route host's binding cookie, which the callback must present.
    pub binding: String,
    /// Unix seconds; the handle's expiry.
    pub exp: i64,
}

impl CallbackHandle {
    /// Seal for `host` (the redirect target's host).
    pub fn seal(&self, sealer: &Sealer, host: &str) -> String {
        sealer.seal_json(self, host.as_bytes())
    }

    /// Open a handle presented on `host`; checks binding, expiry and that the redirect stays
    /// on `host`.
    pub fn open(sealer: &Sealer, sealed: &str, host: &str, now: i64) -> Result<CallbackHandle, FlowError> {
        let handle: CallbackHandle =
            sealer.open_json(sealed, host.as_bytes()).map_err(|_| FlowError::BadHandle)?;
        if handle.exp < now {
            return Err(FlowError::BadHandle);
        }
        let target = Url::parse(&handle.redirect_uri).map_err(|_| FlowError::BadRedirect)?;
        if target.host_str().map(str::to_ascii_lowercase).as_deref() != Some(host) {
            return Err(FlowError::BadRedirect);
        }
        Ok(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Purpose, Secret};

    fn signer() -> Signer {
        Signer::new(&Secret::from_bytes([1; 32]), Purpose::SignInUrl)
    }

    fn query(url: &Url, key: &str) -> Option<String> {
        url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
    }

    #[test]
    fn sign_in_urls_verify_and_expire() {
        let auth = Url::parse("https://auth.example.com").expect("url");
        let url = sign_in_url(&auth, &signer(), "https://app.example.com/x?y=1", "bind", 1000);
        assert_eq!(url.path(), paths::SIGN_IN);
        let (r, b) = (query(&url, "redirect_uri"), query(&url, "binding"));
        let (e, s) = (query(&url, "exp"), query(&url, "sig"));
        let p = SignInParams {
            redirect_uri: r.as_deref(),
            binding: b.as_deref(),
            exp: e.as_deref(),
            sig: s.as_deref(),
        };
        let ok = verify_sign_in(&signer(), p, 1000).map(|s| s.redirect_uri);
        assert_eq!(ok.as_deref(), Ok("https://app.example.com/x?y=1"));
        let late = verify_sign_in(&signer(), p, 1000 + SIGN_IN_URL_LIFETIME_SECS + 1);
        assert_eq!(late, Err(FlowError::Expired));
        let swapped = SignInParams { redirect_uri: Some("https://evil.example.com/"), ..p };
        assert_eq!(verify_sign_in(&signer(), swapped, 1000), Err(FlowError::BadSignature));
        let rebound = SignInParams { binding: Some("attacker"), ..p };
        assert_eq!(verify_sign_in(&signer(), rebound, 1000), Err(FlowError::BadSignature));
        let extended = SignInParams { exp: Some("999999"), ..p };
        assert_eq!(verify_sign_in(&signer(), extended, 1000), Err(FlowError::BadSignature));
    }

    #[test]
    fn handles_are_bound_to_their_host_and_expire() {
        let sealer = Sealer::new(&Secret::from_bytes([2; 32]), Purpose::CallbackHandle);
        let h = CallbackHandle {
            session_id: "sid".into(),
            redirect_uri: "https://app.example.com/page".into(),
            session_expires_at: 5000,
            binding: "b".into(),
            exp: 1060,
        };
        let sealed = h.seal(&sealer, "app.example.com");
        assert_eq!(CallbackHandle::open(&sealer, &sealed, "app.example.com", 1000), Ok(h.clone()));
        assert_eq!(
            CallbackHandle::open(&sealer, &sealed, "other.example.com", 1000),
            Err(FlowError::BadHandle)
        );
        assert_eq!(
            CallbackHandle::open(&sealer, &sealed, "app.example.com", 2000),
            Err(FlowError::BadHandle)
        );
        let elsewhere = CallbackHandle { redirect_uri: "https://evil.com/".into(), ..h };
        let sealed = elsewhere.seal(&sealer, "app.example.com");
        assert_eq!(
            CallbackHandle::open(&sealer, &sealed, "app.example.com", 1000),
            Err(FlowError::BadRedirect)
        );
    }
}
