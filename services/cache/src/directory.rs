//! Directory sync (one instance at a time, under a lease): once per `refresh_interval`, or
//! when `portcullis directory sync --now` asks, pull the whole directory from the provider,
//! compare it with the stored view, write only what changed and tell subscribers.
//!
//! A provider that fails, times out or panics changes nothing stored: the last good view
//! stays, `directory.sync_failed` is published and the sync is retried with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use portcullis_directory::{Changes, Progress, Provider, View, diff};
use portcullis_runtime::bucket::{Bucket, Change};
use portcullis_runtime::buckets::{DIRECTORY_SYNC_REQUEST_KEY, directory_group_key, directory_user_key};
use portcullis_runtime::bus::Bus;
use portcullis_runtime::config::DirectoryConfig;
use portcullis_runtime::crypto::random_token;
use portcullis_runtime::{Shutdown, now_unix};
use portcullis_schemas::events::{DirectorySyncFailed, DirectorySynced, DirectoryUserGroupsChanged};
use portcullis_schemas::messages::{
    DirectoryGroup, DirectoryRecord, DirectoryShowReply, DirectoryShowRequest, DirectorySyncReply,
    DirectorySyncRequest, DirectoryUser, ErrorCode, ErrorReply, SyncRequested,
};
use tracing::{info, warn};

use crate::handlers::rfc3339;
use crate::lease::LeaseHolder;

/// The lease key of this job.
pub const JOB: &str = "directory-sync";
/// How often the job looks for a `sync --now` request.
const POLL: Duration = Duration::from_secs(1);
/// First retry after a failure; doubles up to the refresh interval.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// Writes and event publications in flight at once.
const IN_FLIGHT: usize = 64;

/// What the sync job and the directory endpoints share.
pub struct Directory {
    pub bus: Bus,
    pub bucket: Bucket<DirectoryRecord>,
    pub provider: Arc<dyn Provider>,
    pub config: DirectoryConfig,
}

/// How long the lease lasts: a whole sync must fit in it (it is renewed between phases).
pub fn lease_ttl(config: &DirectoryConfig) -> Duration {
    config.refresh_timeout + Duration::from_secs(60)
}

pub async fn run(dir: Arc<Directory>, mut lease: LeaseHolder, shutdown: Shutdown) {
    let mut next_at = Instant::now();
    let mut failures = 0u32;
    loop {
        let request = match dir.bucket.get(DIRECTORY_SYNC_REQUEST_KEY).await {
            Ok(Some((DirectoryRecord::SyncRequest(r), revision))) => Some((r, revision)),
            Ok(_) => None,
            Err(error) => {
                warn!(%error, "cannot read the directory bucket");
                None
            }
        };
        let due = Instant::now() >= next_at;
        if (due || request.is_some()) && lease.hold().await {
            let request_id = match request {
                // Whoever deletes the request at its revision runs it.
                Some((r, revision)) => match dir.bucket.delete_at(DIRECTORY_SYNC_REQUEST_KEY, revision).await
                {
                    Ok(()) => Some(r.request_id),
                    Err(_) => None,
                },
                None => None,
            };
            match sync_once(&dir, &mut lease, request_id.clone(), &shutdown).await {
                Ok(()) => {
                    failures = 0;
                    next_at = Instant::now() + dir.config.refresh_interval;
                }
                Err(error) => {
                    failures += 1;
                    let wait = retry_delay(failures, dir.config.refresh_interval);
                    next_at = Instant::now() + wait;
                    warn!(provider = dir.provider.name(), %error, attempt = failures, retry_in = ?wait, "directory sync failed; the stored directory is unchanged");
                    publish_failure(&dir, &error, failures, wait, request_id).await;
                }
            }
        } else if due {
            // Another instance holds the lease and syncs; look again next interval.
            next_at = Instant::now() + dir.config.refresh_interval;
        }
        if shutdown.sleep_or_stop(POLL).await {
            return;
        }
    }
}

fn retry_delay(failures: u32, interval: Duration) -> Duration {
    FIRST_RETRY.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1))).min(interval)
}

/// Why a sync did not complete.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("{0}")]
    Provider(#[from] portcullis_directory::ProviderError),
    #[error("the provider did not finish within {0:?} (directory.refresh_timeout)")]
    Timeout(Duration),
    #[error("the provider crashed: {0}")]
    Crashed(String),
    #[error("reading the stored directory: {0}")]
    Read(String),
    #[error("writing the directory: {0} (the next sync completes it)")]
    Write(String),
    #[error("another cache instance took the directory-sync lease")]
    LeaseLost,
    #[error("shutting down")]
    Stopped,
}

async fn sync_once(
    dir: &Directory,
    lease: &mut LeaseHolder,
    request_id: Option<String>,
    shutdown: &Shutdown,
) -> Result<(), SyncError> {
    let started = Instant::now();
    let name = dir.provider.name();
    info!(provider = name, "directory sync started");
    let view = fetch(dir, shutdown).await?;
    info!(provider = name, users = view.users.len(), groups = view.groups.len(), took = ?started.elapsed(), "directory read");
    let (users, groups) = stored(&dir.bucket).await?;
    let (user_count, group_count) = (view.users.len() as u64, view.groups.len() as u64);
    let changes = diff::diff(&users, &groups, view);
    tracing::debug!(
        stored_users = users.len(),
        stored_groups = groups.len(),
        records = changes.records(),
        "compared with the stored directory"
    );
    // Large directories: keep only what is still needed from here on.
    drop((users, groups));
    if !lease.hold().await {
        return Err(SyncError::LeaseLost);
    }
    let records_written = changes.records() as u64;
    let user_changes = write(dir, changes, lease).await?;
    let users_changed = user_changes.len() as u64;
    // Owned items only: the stream runs inside a spawned task.
    let events = user_changes.into_iter().map(|c| DirectoryUserGroupsChanged {
        user_id: c.user_id,
        email: c.email,
        added: c.added,
        removed: c.removed,
        provider: name.to_owned(),
    });
    let failed = futures::stream::iter(events)
        .map(|e| {
            let bus = dir.bus.clone();
            async move { bus.publish_event(&e).await.is_err() }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter(|failed| futures::future::ready(*failed))
        .count()
        .await;
    if failed > 0 {
        warn!(failed, "some directory.user.groups_changed events could not be published");
    }
    let synced = DirectorySynced {
        provider: name.to_owned(),
        users: user_count,
        groups: group_count,
        users_changed,
        records_written,
        duration_ms: started.elapsed().as_millis() as u64,
        request_id,
        synced_at: rfc3339(now_unix()),
    };
    info!(
        provider = name,
        users = synced.users,
        groups = synced.groups,
        users_changed = synced.users_changed,
        records_written = synced.records_written,
        took_ms = synced.duration_ms,
        "directory synced"
    );
    if let Err(error) = dir.bus.publish_event(&synced).await {
        warn!(%error, "publishing directory.synced failed");
    }
    Ok(())
}

/// The provider's whole view, within the timeout, in its own task so a panic in a provider
/// (or a library under it) is a failed sync rather than a dead service.
async fn fetch(dir: &Directory, shutdown: &Shutdown) -> Result<View, SyncError> {
    let provider = dir.provider.clone();
    let mut task = tokio::spawn(async move {
        let progress = Progress::new(provider.name());
        provider.fetch(&progress).await
    });
    let timeout = dir.config.refresh_timeout;
    tokio::select! {
        joined = tokio::time::timeout(timeout, &mut task) => match joined {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(join)) => Err(SyncError::Crashed(join.to_string())),
            Err(_) => {
                task.abort();
                Err(SyncError::Timeout(timeout))
            }
        },
        _ = shutdown.wait() => {
            task.abort();
            Err(SyncError::Stopped)
        }
    }
}

type Stored = (HashMap<String, DirectoryUser>, HashMap<String, DirectoryGroup>);

/// The stored users and groups by provider id (one pass over the bucket).
async fn stored(bucket: &Bucket<DirectoryRecord>) -> Result<Stored, SyncError> {
    let read = |e: portcullis_runtime::bucket::KvError| SyncError::Read(e.to_string());
    let (empty, stream) = bucket.watch_all().await.map_err(read)?;
    let mut users = HashMap::new();
    let mut groups = HashMap::new();
    if empty {
        return Ok((users, groups));
    }
    let mut stream = Box::pin(stream);
    // History arrives back to back; silence means it ended without saying so (values expired
    // between counting and watching): fail this read, the sync retries.
    let stall = || SyncError::Read("the stored directory stopped arriving".into());
    while let Some(watched) = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .map_err(|_| stall())?
        .map_err(read)?
    {
        match watched.change {
            Change::Put { value: DirectoryRecord::User(u), .. } => {
                users.insert(u.id.clone(), u);
            }
            Change::Put { value: DirectoryRecord::Group(g), .. } => {
                groups.insert(g.id.clone(), g);
            }
            Change::Put { .. } | Change::Delete { .. } => {}
            // Rewritten by this sync if the provider still lists it.
            Change::Undecodable { key, error } => {
                warn!(key, %error, "skipping an undecodable directory record")
            }
        }
        if watched.caught_up {
            break;
        }
    }
    Ok((users, groups))
}

/// Write the changes, several at a time; hands back the membership changes (for events).
/// The lease is renewed every few seconds while writing; a lost lease stops the writes (the
/// instance that took it syncs again from what is stored).
async fn write(
    dir: &Directory,
    changes: Changes,
    lease: &mut LeaseHolder,
) -> Result<Vec<portcullis_directory::UserChange>, SyncError> {
    enum Op {
        Put(String, DirectoryRecord),
        Delete(String),
    }
    let total = changes.records();
    let Changes { put_users, delete_users, put_groups, delete_groups, user_changes } = changes;
    let ops = put_groups
        .into_iter()
        .map(|g| Op::Put(directory_group_key(&g.id), DirectoryRecord::Group(g)))
        .chain(put_users.into_iter().map(|u| Op::Put(directory_user_key(&u.id), DirectoryRecord::User(u))))
        .chain(delete_users.into_iter().map(|id| Op::Delete(directory_user_key(&id))))
        .chain(delete_groups.into_iter().map(|id| Op::Delete(directory_group_key(&id))));
    let mut done = 0usize;
    let mut last_log = Instant::now();
    let mut results = futures::stream::iter(ops)
        .map(|op| {
            let bucket = dir.bucket.clone();
            async move {
                match op {
                    Op::Put(key, record) => bucket.put(&key, &record).await.map(|_| ()),
                    Op::Delete(key) => bucket.delete(&key).await,
                }
            }
        })
        .buffer_unordered(IN_FLIGHT);
    while let Some(result) = results.next().await {
        result.map_err(|e| SyncError::Write(e.to_string()))?;
        done += 1;
        if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            info!(done, total, "writing the directory");
            if !lease.hold().await {
                return Err(SyncError::LeaseLost);
            }
        }
    }
    Ok(user_changes)
}

async fn publish_failure(
    dir: &Directory,
    error: &SyncError,
    attempt: u32,
    wait: Duration,
    request_id: Option<String>,
) {
    let event = DirectorySyncFailed {
        provider: dir.provider.name().to_owned(),
        error: error.to_string(),
        attempt,
        retry_at: rfc3339(now_unix() + wait.as_secs() as i64),
        request_id,
    };
    if let Err(error) = dir.bus.publish_event(&event).await {
        warn!(%error, "publishing directory.sync_failed failed");
    }
}

/// `cache.directory.sync`: leave a request for the syncing instance (any instance may
/// answer; the lease holder runs it within a second or so).
pub async fn request_sync(
    dir: Option<Arc<Directory>>,
    _: DirectorySyncRequest,
) -> Result<DirectorySyncReply, ErrorReply> {
    let dir = dir.ok_or_else(not_configured)?;
    let request_id = random_token(12);
    let record = DirectoryRecord::SyncRequest(SyncRequested {
        request_id: request_id.clone(),
        requested_at: now_unix(),
    });
    dir.bucket.put(DIRECTORY_SYNC_REQUEST_KEY, &record).await.map_err(|e| ErrorReply {
        code: ErrorCode::Unavailable,
        message: format!("cannot store the sync request: {e}"),
    })?;
    Ok(DirectorySyncReply { request_id })
}

/// `cache.directory.show`: a user by provider id or email, with group names.
pub async fn show(
    dir: Option<Arc<Directory>>,
    req: DirectoryShowRequest,
) -> Result<DirectoryShowReply, ErrorReply> {
    let dir = dir.ok_or_else(not_configured)?;
    let unavailable = |e: portcullis_runtime::bucket::KvError| ErrorReply {
        code: ErrorCode::Unavailable,
        message: format!("directory bucket: {e}"),
    };
    let wanted = req.user.trim();
    let user = match dir.bucket.get(&directory_user_key(wanted)).await.map_err(unavailable)? {
        Some((DirectoryRecord::User(u), _)) => Some(u),
        _ if wanted.contains('@') => by_email(&dir.bucket, &wanted.to_lowercase()).await?,
        _ => None,
    };
    let user = user.ok_or_else(|| ErrorReply {
        code: ErrorCode::NotFound,
        message: format!("no directory user with id or email {wanted:?}"),
    })?;
    let mut groups = Vec::with_capacity(user.groups.len());
    for id in &user.groups {
        match dir.bucket.get(&directory_group_key(id)).await.map_err(unavailable)? {
            Some((DirectoryRecord::Group(g), _)) => groups.push(g),
            _ => groups.push(DirectoryGroup { id: id.clone(), name: String::new(), email: None }),
        }
    }
    Ok(DirectoryShowReply { user, groups })
}

/// The user with `email` (a scan: this serves an operator's command, not requests).
async fn by_email(
    bucket: &Bucket<DirectoryRecord>,
    email: &str,
) -> Result<Option<DirectoryUser>, ErrorReply> {
    let (users, _) = stored(bucket)
        .await
        .map_err(|e| ErrorReply { code: ErrorCode::Unavailable, message: e.to_string() })?;
    Ok(users.into_values().find(|u| u.email.as_deref() == Some(email)))
}

fn not_configured() -> ErrorReply {
    ErrorReply {
        code: ErrorCode::BadRequest,
        message: "no directory is configured (directory.provider)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_interval() {
        let interval = Duration::from_secs(60);
        let delays: Vec<u64> = (1..=6).map(|n| retry_delay(n, interval).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
    }
}
