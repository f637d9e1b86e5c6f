//! Secrets and the primitives built on them: sealing (AEAD), signing (HMAC), random ids.
//!
//! Every key is derived from a configured 32-byte secret with HKDF-SHA256 and a purpose
//! label, so a value sealed for one purpose (a cookie) cannot be opened as another (a
//! login handle). Sealed values are `base64url(nonce || ciphertext || tag)` with
//! ChaCha20-Poly1305 and a random 96-bit nonce.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use ring::aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::{hkdf, hmac};

/// Purposes keys are derived for. Each is a distinct HKDF `info` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The session cookie on route hosts (from `cookie_secret`).
    SessionCookie,
    /// OIDC tokens at rest in KV and on NATS (from `shared_secret`).
    Tokens,
    /// Login states in the logins bucket.
    LoginState,
    /// The short-lived handle authenticate passes to a route host's callback.
    CallbackHandle,
    /// Signed sign-in redirects from the proxy to authenticate.
    SignInUrl,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::SessionCookie => b"portcullis session cookie v1",
            Purpose::Tokens => b"portcullis oidc tokens v1",
            Purpose::LoginState => b"portcullis login state v1",
            Purpose::CallbackHandle => b"portcullis callback handle v1",
            Purpose::SignInUrl => b"portcullis sign-in url v1",
        }
    }
}

/// A 32-byte secret from the configuration. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a secret from the configuration is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("must be base64 (e.g. `head -c32 /dev/urandom | base64`)")]
    NotBase64,
    #[error("must decode to exactly 32 bytes, got {0}")]
    WrongLength(usize),
}

impl Secret {
    /// Decode a standard-base64 (or base64url) 32-byte secret, as Pomerium expects.
    pub fn from_base64(text: &str) -> Result<Secret, SecretError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| SecretError::NotBase64)?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SecretError::WrongLength(bytes.len()))?;
        Ok(Secret(arr))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Secret {
        Secret(bytes)
    }

    /// Derive 32 bytes for `label` (HKDF-SHA256, no salt).
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(&self.0);
        let mut out = [0u8; 32];
        let info = [label];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
        if let Ok(okm) = prk.expand(&info, Len32) {
            let _ = okm.fill(&mut out);
        }
        out
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// A value could not be opened: wrong key, wrong purpose, tampered, or not ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("sealed value is invalid")]
pub struct OpenError;

/// Seals and opens values for one purpose.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(secret: &Secret, purpose: Purpose) -> Sealer {
        let bytes = secret.derive(purpose.label());
        // A 32-byte key is always valid for ChaCha20-Poly1305.
        let key = match UnboundKey::new(&CHACHA20_POLY1305, &bytes) {
            Ok(k) => k,
            Err(_) => unreachable_key(),
        };
        Sealer { key: LessSafeKey::new(key) }
    }

    /// Encrypt and authenticate `plaintext`, binding `aad` (which must be given again to open).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let mut body = buf.split_off(NONCE_LEN);
        // Sealing only fails for inputs over ~256 GiB.
        let _ =
            self.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body);
        buf.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(buf)
    }

    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut raw = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| OpenError)?;
        if raw.len() < NONCE_LEN + aead::CHACHA20_POLY1305.tag_len() {
            return Err(OpenError);
        }
        let mut body = raw.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&raw).map_err(|_| OpenError)?;
        let plain = self.key.open_in_place(nonce, Aad::from(aad), &mut body).map_err(|_| OpenError)?;
        Ok(plain.to_vec())
    }

    /// Seal `value` as JSON.
    pub fn seal_json<T: serde::Serialize>(&self, value: &T, aad: &[u8]) -> String {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.seal(&bytes, aad)
    }

    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        sealed: &str,
        aad: &[u8],
    ) -> Result<T, OpenError> {
        let bytes = self.open(sealed, aad)?;
        serde_json::from_slice(&bytes).map_err(|_| OpenError)
    }
}

fn unreachable_key() -> UnboundKey {
    // CHACHA20_POLY1305 takes 32-byte keys; `derive` always yields 32 bytes.
    #[allow(clippy::panic)]
    {
        panic!("ChaCha20-Poly1305 rejected a 32-byte key")
    }
}

/// HMAC-SHA256 signatures for one purpose.
pub struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(secret: &Secret, purpose: Purpose) -> Signer {
        Signer { key: hmac::Key::new(hmac::HMAC_SHA256, &secret.derive(purpose.label())) }
    }

    /// base64url signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, message).as_ref())
    }

    /// Constant-time check of `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(signature) {
            Ok(sig) => hmac::verify(&self.key, message, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

/// `n` random bytes, base64url: ids, OAuth `state`, nonces, PKCE verifiers.
pub fn random_token(n: usize) -> String {
    let mut small = [0u8; 64];
    if let Some(bytes) = small.get_mut(..n) {
        rand::thread_rng().fill_bytes(bytes);
        return URL_SAFE_NO_PAD.encode(bytes);
    }
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of `data`, base64url.
pub fn sha256_b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(b: u8) -> Secret {
        Secret::from_bytes([b; 32])
    }

    #[test]
    fn sealed_values_open_only_with_same_key_purpose_and_aad() {
        let s = Sealer::new(&secret(1), Purpose::SessionCookie);
        let sealed = s.seal(b"session-id", b"app.example.com");
        assert_eq!(s.open(&sealed, b"app.example.com").as_deref(), Ok(&b"session-id"[..]));
        assert_eq!(s.open(&sealed, b"other.example.com"), Err(OpenError));
        let other_purpose = Sealer::new(&secret(1), Purpose::CallbackHandle);
        assert_eq!(other_purpose.open(&sealed, b"app.example.com"), Err(OpenError));
        let other_key = Sealer::new(&secret(2), Purpose::SessionCookie);
        assert_eq!(other_key.open(&sealed, b"app.example.com"), Err(OpenError));
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(s.open(std::str::from_utf8(&tampered).unwrap_or(""), b"app.example.com"), Err(OpenError));
        assert_eq!(s.open("not base64!", b""), Err(OpenError));
        assert_eq!(s.open("", b""), Err(OpenError));
    }

    #[test]
    fn sealing_twice_differs() {
        let s = Sealer::new(&secret(1), Purpose::Tokens);
        assert_ne!(s.seal(b"x", b""), s.seal(b"x", b""));
    }

    #[test]
    fn signatures_verify_only_for_the_same_message() {
        let s = Signer::new(&secret(3), Purpose::SignInUrl);
        let sig = s.sign(b"hello");
        assert!(s.verify(b"hello", &sig));
        assert!(!s.verify(b"hellO", &sig));
        assert!(!s.verify(b"hello", "garbage"));
        assert!(!Signer::new(&secret(4), Purpose::SignInUrl).verify(b"hello", &sig));
    }

    #[test]
    fn secrets_must_be_32_bytes_of_base64() {
        assert!(Secret::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_ok());
        assert_eq!(Secret::from_base64("c2hvcnQ="), Err(SecretError::WrongLength(5)));
        assert_eq!(Secret::from_base64("%%%"), Err(SecretError::NotBase64));
        assert_eq!(format!("{:?}", secret(9)), "Secret(..)");
    }
}
