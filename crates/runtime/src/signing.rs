//! The ES256 key that signs identity JWTs for upstreams, and its public JWKS.
//!
//! Configured as Pomerium does: `signing_key` is a PEM EC P-256 private key, base64-encoded
//! or raw. When absent it is derived deterministically from the shared secret, so every
//! instance signs with the same key and upstreams see one stable JWKS.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use p256::SecretKey;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde_json::{Value, json};

use crate::crypto::{Secret, sha256_b64};

/// The JWS algorithm of identity JWTs.
pub const ALGORITHM: jsonwebtoken::Algorithm = jsonwebtoken::Algorithm::ES256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningKeyError {
    #[error("must be a PEM EC P-256 private key (`EC PRIVATE KEY` or `PRIVATE KEY`), raw or base64")]
    NotPem,
}

/// A P-256 private key with what is derived from it.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    public_jwk: Value,
    kid: String,
    x: String,
    y: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parse the `signing_key` setting: base64 of PEM, or PEM.
    pub fn from_config_text(text: &str) -> Result<SigningKey, SigningKeyError> {
        let text = text.trim();
        let pem = match STANDARD.decode(text) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| SigningKeyError::NotPem)?,
            Err(_) => text.to_owned(),
        };
        let key = SecretKey::from_sec1_pem(&pem)
            .or_else(|_| SecretKey::from_pkcs8_pem(&pem))
            .map_err(|_| SigningKeyError::NotPem)?;
        Ok(SigningKey::from_secret_key(&key))
    }

    /// Derive the key from the shared secret (HKDF, then the first valid scalar).
    pub fn derive_from(shared: &Secret) -> SigningKey {
        let mut counter = 0u32;
        loop {
            let label = format!("portcullis derived jwt signing key {counter}");
            if let Ok(key) = SecretKey::from_slice(&shared.derive(label.as_bytes())) {
                return SigningKey::from_secret_key(&key);
            }
            // A 32-byte HKDF output is a valid P-256 scalar with probability 1 - 2^-32.
            counter += 1;
        }
    }

    fn from_secret_key(key: &SecretKey) -> SigningKey {
        let der = key.to_pkcs8_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
        let point = key.public_key().to_sec1_point(false);
        let x = point.x().map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
        let y = point.y().map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
        // RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order.
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = sha256_b64(thumbprint_input.as_bytes());
        let public_jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "use": "sig", "alg": "ES256", "kid": kid,
        });
        SigningKey { encoding: EncodingKey::from_ec_der(&der), public_jwk, kid, x, y }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The key to verify JWTs signed with this key.
    pub fn decoding_key(&self) -> Result<DecodingKey, jsonwebtoken::errors::Error> {
        DecodingKey::from_ec_components(&self.x, &self.y)
    }

    /// The JWKS document served at `/.well-known/portcullis/jwks.json`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_stable_and_sign_verifiable_jwts() {
        let secret = Secret::from_bytes([7; 32]);
        let a = SigningKey::derive_from(&secret);
        let b = SigningKey::derive_from(&secret);
        assert_eq!(a.kid(), b.kid());
        assert_ne!(a.kid(), SigningKey::derive_from(&Secret::from_bytes([8; 32])).kid());

        let mut header = jsonwebtoken::Header::new(ALGORITHM);
        header.kid = Some(a.kid().to_owned());
        let claims = json!({"sub": "alice", "exp": 4_000_000_000u64});
        let token = jsonwebtoken::encode(&header, &claims, a.encoding_key()).expect("sign");
        let jwk: jsonwebtoken::jwk::JwkSet = serde_json::from_value(a.jwks()).expect("jwks parses");
        let key = DecodingKey::from_jwk(&jwk.keys[0]).expect("jwk key");
        let data = jsonwebtoken::decode::<Value>(&token, &key, &jsonwebtoken::Validation::new(ALGORITHM))
            .expect("verify");
        assert_eq!(data.claims["sub"], "alice");
    }

    #[test]
    fn configured_pem_keys_parse_raw_and_base64() {
        let key = SecretKey::from_slice(&[5; 32]).expect("scalar");
        let pem = key.to_sec1_pem(p256::pkcs8::LineEnding::LF).expect("pem");
        let raw = SigningKey::from_config_text(&pem).expect("raw pem");
        let b64 = SigningKey::from_config_text(&STANDARD.encode(pem.as_bytes())).expect("base64 pem");
        assert_eq!(raw.kid(), b64.kid());
        assert_eq!(SigningKey::from_config_text("nope").err(), Some(SigningKeyError::NotPem));
    }
}
