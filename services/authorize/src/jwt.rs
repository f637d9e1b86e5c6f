//! The identity JWT (`X-Portcullis-Jwt-Assertion`) handed to upstreams.
//!
//! ES256, five minutes of life, claims as Pomerium's: `iss` and `aud` the route host, `sub`
//! and `user` the user id, `email`, `groups` (never null), `name`, `sid`, `iat`, `exp`, `jti`.
//! A token is reused for the same (session, host) until a minute before it expires, or until
//! the identity it states changes (a refresh brought new groups), so signing is not on the
//! path of most requests.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::Header;
use portcullis_runtime::crypto::random_token;
use portcullis_runtime::signing::{ALGORITHM, SigningKey};
use portcullis_schemas::messages::Session;
use serde::Serialize;

/// Lifetime of a JWT.
pub const LIFETIME_SECS: i64 = 300;
/// A cached JWT is re-signed once it has less than this left.
pub const REUSE_MARGIN_SECS: i64 = 60;
/// Upper bound on cached tokens; the cache is cleared when it is reached.
const MAX_CACHED: usize = 100_000;

#[derive(Debug, Serialize)]
pub struct IdentityClaims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub sub: &'a str,
    pub user: &'a str,
    pub email: &'a str,
    pub groups: &'a [String],
    pub name: &'a str,
    pub sid: &'a str,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// A signed JWT with what it states, so a change of identity (after a refresh) is noticed.
struct Cached {
    jwt: String,
    exp: i64,
    email: String,
    name: String,
    groups: Vec<String>,
}

impl Cached {
    fn states(&self, identity: &Identity<'_>) -> bool {
        self.email == identity.email && self.name == identity.name && self.groups == identity.groups
    }
}

/// Signs identity JWTs and keeps recent ones for reuse.
pub struct Minter {
    key: SigningKey,
    header: Header,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

impl Minter {
    pub fn new(key: SigningKey) -> Minter {
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(key.kid().to_owned());
        Minter { key, header, cache: Mutex::new(HashMap::new()) }
    }

    /// A JWT for `session` on `host`, valid for at least a minute from `now`, with its `exp`.
    pub fn token(
        &self,
        session: &Session,
        identity: &Identity<'_>,
        host: &str,
        now: i64,
    ) -> Result<(String, i64), jsonwebtoken::errors::Error> {
        let cache_key = (session.id.clone(), host.to_owned());
        if let Ok(cache) = self.cache.lock()
            && let Some(c) = cache.get(&cache_key)
            && c.exp - now > REUSE_MARGIN_SECS
            && c.states(identity)
        {
            return Ok((c.jwt.clone(), c.exp));
        }
        let exp = now + LIFETIME_SECS;
        let claims = IdentityClaims {
            iss: host,
            aud: host,
            sub: identity.user_id,
            user: identity.user_id,
            email: identity.email,
            groups: identity.groups,
            name: identity.name,
            sid: &session.id,
            iat: now,
            exp,
            jti: random_token(16),
        };
        let jwt = jsonwebtoken::encode(&self.header, &claims, self.key.encoding_key())?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            let cached = Cached {
                jwt: jwt.clone(),
                exp,
                email: identity.email.to_owned(),
                name: identity.name.to_owned(),
                groups: identity.groups.to_vec(),
            };
            cache.insert(cache_key, cached);
        }
        Ok((jwt, exp))
    }

    /// Drop cached tokens of a session that ended.
    pub fn forget(&self, session_id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|(sid, _), _| sid != session_id);
        }
    }
}

/// The identity facts a JWT states (the freshest of session and user record).
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub groups: &'a [String],
}
