//! A lease in KV so that a singleton job runs on one cache instance at a time. Taken with
//! `create`, renewed and taken over with revision-checked `update`: two instances can never
//! both believe they hold it at the same revision.

use std::time::Duration;

use portcullis_runtime::bucket::{Bucket, KvError};
use portcullis_runtime::crypto::random_token;
use portcullis_schemas::messages::Lease;
use tracing::{info, warn};

pub struct LeaseHolder {
    bucket: Bucket<Lease>,
    key: &'static str,
    /// This instance's identity.
    me: String,
    ttl: Duration,
    held: bool,
}

impl LeaseHolder {
    pub fn new(bucket: Bucket<Lease>, key: &'static str, ttl: Duration) -> LeaseHolder {
        LeaseHolder { bucket, key, me: random_token(12), ttl, held: false }
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// Take or renew the lease; true if this instance holds it now.
    pub async fn hold(&mut self) -> bool {
        let now = Self::now_ms();
        let mine = Lease { holder: self.me.clone(), expires_at_ms: now + self.ttl.as_millis() as i64 };
        let result = match self.bucket.get(self.key).await {
            Ok(None) => self.bucket.create(self.key, &mine).await.map(|_| ()),
            Ok(Some((lease, revision))) if lease.holder == self.me || lease.expires_at_ms < now => {
                self.bucket.update(self.key, &mine, revision).await.map(|_| ())
            }
            Ok(Some(_)) => Err(KvError::Conflict),
            Err(e) => Err(e),
        };
        let held = match result {
            Ok(()) => true,
            Err(KvError::Conflict) => false,
            Err(error) => {
                warn!(%error, job = self.key, "lease check failed");
                false
            }
        };
        if held != self.held {
            info!(job = self.key, held, "lease changed hands");
            self.held = held;
        }
        held
    }
}
