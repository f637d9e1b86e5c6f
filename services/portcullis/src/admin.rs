//! Operator commands that talk to a running installation over NATS: `sessions ls|revoke`
//! and `events tail`. They go through the services' request-reply APIs, never behind their
//! backs into KV.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::DateTime;
use futures::StreamExt;
use portcullis_runtime::{Bus, Config, duration};
use portcullis_schemas::messages::{
    ListSessionsReply, ListSessionsRequest, RevokeReason, RevokeSessionRequest, RevokeWhereRequest,
    RevokedReply, SessionReply,
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
