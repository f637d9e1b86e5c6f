//! A typed JSON view of a KV bucket, with revision-checked writes.

use std::marker::PhantomData;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A KV operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// `create` on an existing key, or a write with a stale revision: someone else won.
    #[error("conflict: the key changed concurrently")]
    Conflict,
    #[error("invalid key")]
    InvalidKey,
    #[error("stored value does not decode: {0}")]
    Decode(String),
    #[error("kv: {0}")]
    Nats(String),
}

/// A change seen by a watcher.
#[derive(Debug)]
pub enum Change<T> {
    Put {
        key: String,
        value: T,
        revision: u64,
    },
    Delete {
        key: String,
    },
    /// A value that did not decode (logged and skipped by callers).
    Undecodable {
        key: String,
        error: String,
    },
}

/// Whether a watcher has delivered everything that existed when it started.
#[derive(Debug)]
pub struct Watched<T> {
    pub change: Change<T>,
    /// True once the history present at start has been delivered.
    pub caught_up: bool,
}

/// Values of type `T` stored as JSON.
#[derive(Clone)]
pub struct Bucket<T> {
    store: kv::Store,
    _t: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Bucket<T> {
    pub(crate) fn new(store: kv::Store) -> Self {
        Bucket { store, _t: PhantomData }
    }

    fn encode(value: &T) -> Result<Bytes, KvError> {
        serde_json::to_vec(value).map(Bytes::from).map_err(|e| KvError::Decode(e.to_string()))
    }

    /// Store `value` under a key that must not exist yet.
    pub async fn create(&self, key: &str, value: &T) -> Result<u64, KvError> {
        self.store.create(key, Self::encode(value)?).await.map_err(|e| match e.kind() {
            kv::CreateErrorKind::AlreadyExists => KvError::Conflict,
            kv::CreateErrorKind::InvalidKey => KvError::InvalidKey,
            _ => KvError::Nats(e.to_string()),
        })
    }

    /// Store `value`, whatever was there.
    pub async fn put(&self, key: &str, value: &T) -> Result<u64, KvError> {
        self.store.put(key, Self::encode(value)?).await.map_err(|e| KvError::Nats(e.to_string()))
    }

    /// Replace the value at `revision`; fails with [`KvError::Conflict`] if it moved on.
    pub async fn update(&self, key: &str, value: &T, revision: u64) -> Result<u64, KvError> {
        self.store.update(key, Self::encode(value)?, revision).await.map_err(update_err)
    }

    /// The live value and its revision; `None` if absent or deleted.
    pub async fn get(&self, key: &str) -> Result<Option<(T, u64)>, KvError> {
        if !kv_key_ok(key) {
            return Ok(None);
        }
        let entry = self.store.entry(key).await.map_err(|e| KvError::Nats(e.to_string()))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let value =
                    serde_json::from_slice(&e.value).map_err(|err| KvError::Decode(err.to_string()))?;
                Ok(Some((value, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Every live key (a snapshot).
    pub async fn keys(&self) -> Result<Vec<String>, KvError> {
        use futures::TryStreamExt;
        let keys = self.store.keys().await.map_err(|e| KvError::Nats(e.to_string()))?;
        keys.try_collect().await.map_err(|e| KvError::Nats(e.to_string()))
    }

    /// Delete `key`, whatever its value.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.store.delete(key).await.map_err(|e| KvError::Nats(e.to_string()))
    }

    /// Delete `key` only if it is still at `revision` (consume-once).
    pub async fn delete_at(&self, key: &str, revision: u64) -> Result<(), KvError> {
        self.store.delete_expect_revision(key, Some(revision)).await.map_err(update_err)
    }

    /// Every current value, then every change, in order. The flag says whether the bucket
    /// was empty at start (then nothing marks the end of the history).
    #[allow(clippy::type_complexity)]
    pub async fn watch_all(
        &self,
    ) -> Result<(bool, impl Stream<Item = Result<Watched<T>, KvError>> + use<T>), KvError> {
        // Fresh stream info: `Store::status` answers from what was cached when the bucket was
        // opened, which would call a since-filled bucket empty.
        let mut stream = self.store.stream.clone();
        let empty = stream.info().await.map_err(|e| KvError::Nats(e.to_string()))?.state.messages == 0;
        let watch = self.store.watch_with_history(">").await.map_err(|e| KvError::Nats(e.to_string()))?;
        let mut caught_up = empty;
        Ok((
            empty,
            watch.map(move |item| {
                let entry = item.map_err(|e| KvError::Nats(e.to_string()))?;
                // `delta` (messages still pending after this one) is exact per message; the
                // watcher's `seen_current` comes from the consumer's info at creation and can
                // claim "caught up" before the first value.
                caught_up = caught_up || entry.delta == 0;
                let key = entry.key.clone();
                let change = match entry.operation {
                    kv::Operation::Put => match serde_json::from_slice::<T>(&entry.value) {
                        Ok(value) => Change::Put { key, value, revision: entry.revision },
                        Err(e) => Change::Undecodable { key, error: e.to_string() },
                    },
                    kv::Operation::Delete | kv::Operation::Purge => Change::Delete { key },
                };
                Ok(Watched { change, caught_up })
            }),
        ))
    }
}

fn update_err(e: kv::UpdateError) -> KvError {
    match e.kind() {
        kv::UpdateErrorKind::WrongLastRevision => KvError::Conflict,
        kv::UpdateErrorKind::InvalidKey => KvError::InvalidKey,
        _ => KvError::Nats(e.to_string()),
    }
}

/// Keys we generate are base64url; anything else is not ours and is never looked up.
pub fn kv_key_ok(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 256
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
