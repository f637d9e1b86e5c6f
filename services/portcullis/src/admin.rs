//! Operator commands that talk to a running installation over NATS: `sessions ls|revoke`,
//! `events tail` and `directory sync --now|show`. They go through the services' request-reply APIs, never behind their
//! backs into KV.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::DateTime;
use futures::StreamExt;
use portcullis_runtime::{Bus, Config, duration};
use portcullis_schemas::messages::{
    DirectoryShowReply, DirectoryShowRequest, DirectorySyncReply, DirectorySyncRequest, ListSessionsReply,
    ListSessionsRequest, RevokeReason, RevokeSessionRequest, RevokeWhereRequest, RevokedReply, SessionReply,
};

/// A command's future.
pub type Task = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>;
/// A command, waiting for its configuration.
pub type Command = Box<dyn FnOnce(Arc<Config>) -> Task>;

async fn connect(config: &Config) -> anyhow::Result<Bus> {
    let bus = Bus::connect(&config.nats, "portcullis-cli").await.context("connecting to NATS")?;
    Ok(bus)
}

fn time(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0).map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()).unwrap_or_default()
}

/// `portcullis sessions ls [--user EMAIL|ID]`
pub async fn sessions_ls(config: Arc<Config>, user: Option<String>) -> anyhow::Result<()> {
    let bus = connect(&config).await?;
    let reply: ListSessionsReply = bus
        .request(bus.contract().cache_session_list(), &ListSessionsRequest { user })
        .await
        .context("asking the cache service for sessions")?;
    println!("{:<44} {:<24} {:<32} {:<21} {:<21}", "SESSION", "USER", "EMAIL", "CREATED", "EXPIRES");
    for s in &reply.sessions {
        println!(
            "{:<44} {:<24} {:<32} {:<21} {:<21}",
            s.id,
            s.user_id,
            s.email.as_deref().unwrap_or("-"),
            time(s.created_at),
            time(s.expires_at)
        );
    }
    eprintln!("{} session(s)", reply.sessions.len());
    Ok(())
}

/// `portcullis sessions revoke ID | --user EMAIL|ID`
pub async fn sessions_revoke(
    config: Arc<Config>,
    id: Option<String>,
    user: Option<String>,
) -> anyhow::Result<()> {
    let bus = connect(&config).await?;
    let revoked: Vec<String> = match (id, user) {
        (Some(id), None) => {
            let reply: SessionReply = bus
                .request(
                    bus.contract().cache_session_revoke(),
                    &RevokeSessionRequest { session_id: id.clone(), reason: RevokeReason::Admin },
                )
                .await
                .context("asking the cache service to revoke")?;
            reply.session.map(|s| vec![s.id]).unwrap_or_default()
        }
        (None, Some(user)) => {
            let reply: RevokedReply = bus
                .request(
                    bus.contract().cache_session_revoke_where(),
                    &RevokeWhereRequest {
                        user: Some(user),
                        user_id: None,
                        idp_session_id: None,
                        reason: RevokeReason::Admin,
                    },
                )
                .await
                .context("asking the cache service to revoke")?;
            reply.session_ids
        }
        _ => bail!("give a session ID or --user, not both"),
    };
    for id in &revoked {
        println!("revoked {id}");
    }
    eprintln!("{} session(s) revoked", revoked.len());
    Ok(())
}

/// `portcullis events tail [--type T] [--since DURATION]`: one JSON event per line.
pub async fn events_tail(
    config: Arc<Config>,
    kind: Option<String>,
    since: Option<String>,
) -> anyhow::Result<()> {
    let since: Option<Duration> =
        since.map(|s| duration::parse(&s)).transpose().map_err(anyhow::Error::msg).context("--since")?;
    // Accept `session.revoked` or the full type `io.portcullis.session.revoked.v1`.
    let kind = kind.map(|k| {
        let k = k.strip_prefix("io.portcullis.").unwrap_or(&k);
        k.strip_suffix(".v1").unwrap_or(k).to_owned()
    });
    let bus = connect(&config).await?;
    let mut events = bus.tail_events(kind.as_deref(), since).await.context("opening the events stream")?;
    while let Some(event) = events.next().await {
        match event {
            Ok(e) => println!("{e}"),
            Err(e) => eprintln!("skipping an event: {e}"),
        }
    }
    Ok(())
}

/// `portcullis directory sync --now`: leave a request, then wait for the event that reports
/// its outcome.
pub async fn directory_sync(config: Arc<Config>) -> anyhow::Result<()> {
    let Some(settings) = &config.directory else { bail!("no directory is configured (directory.provider)") };
    let bus = connect(&config).await?;
    // Listen before asking, so the outcome cannot slip past.
    let mut events = bus.tail_events(Some("directory.>"), None).await.context("opening the events stream")?;
    let reply: DirectorySyncReply = bus
        .request(bus.contract().cache_directory_sync(), &DirectorySyncRequest {})
        .await
        .context("asking the cache service for a sync")?;
    eprintln!("sync requested ({}); waiting for it", reply.request_id);
    let wait = settings.refresh_timeout + Duration::from_secs(30);
    let outcome = tokio::time::timeout(wait, async {
        while let Some(event) = events.next().await {
            let Ok(event) = event else { continue };
            let data = &event["data"];
            if data["request_id"].as_str() == Some(reply.request_id.as_str()) {
                return Some(event);
            }
        }
        None
    })
    .await;
    let event = match outcome {
        Ok(Some(e)) => e,
        Ok(None) => bail!("the event stream ended before the sync reported"),
        Err(_) => {
            bail!("no outcome within {wait:?}: is a cache service running with this directory configuration?")
        }
    };
    let data = &event["data"];
    if event["type"].as_str() == Some(portcullis_schemas::events::DIRECTORY_SYNCED) {
        println!(
            "synced from {}: {} users, {} groups, {} users changed, {} records written, {} ms",
            data["provider"].as_str().unwrap_or("?"),
            data["users"],
            data["groups"],
            data["users_changed"],
            data["records_written"],
            data["duration_ms"]
        );
        Ok(())
    } else {
        bail!("sync failed: {}", data["error"].as_str().unwrap_or("(no reason given)"))
    }
}

/// `portcullis directory show EMAIL|ID`
pub async fn directory_show(config: Arc<Config>, user: String) -> anyhow::Result<()> {
    let bus = connect(&config).await?;
    let reply: DirectoryShowReply = bus
        .request(bus.contract().cache_directory_show(), &DirectoryShowRequest { user })
        .await
        .context("asking the cache service")?;
    let u = &reply.user;
    println!("id:     {}", u.id);
    println!("email:  {}", u.email.as_deref().unwrap_or("-"));
    println!("name:   {}", u.name.as_deref().unwrap_or("-"));
    println!("groups: {}", reply.groups.len());
    for g in &reply.groups {
        println!("  {:<40} {}", g.id, g.name);
    }
    Ok(())
}
