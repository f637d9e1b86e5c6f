//! `portcullis`: one binary, a subcommand per service. It only parses arguments, loads the
//! configuration and dispatches; the services live in their own crates.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

mod admin;
mod policy_eval;
use portcullis_runtime::{Config, Shutdown, config, shutdown, telemetry};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(name = "portcullis", version, about = "Identity-aware access proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The configuration file (Pomerium's config.yaml format).
    #[arg(long, short, env = "PORTCULLIS_CONFIG", default_value = "config.yaml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run all four services in this process (they still talk only through NATS).
    All(ConfigArg),
    /// Run the proxy: the network edge.
    Proxy(ConfigArg),
    /// Run the authenticate service: sign-in with the IdP.
    Authenticate(ConfigArg),
    /// Run the authorize service: policy decisions.
    Authorize(ConfigArg),
    /// Run the cache service: sessions, users, events.
    Cache(ConfigArg),
    /// Validate the configuration and exit (0 when valid).
    CheckConfig(ConfigArg),
    /// List or revoke sessions (through the cache service).
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Read the event stream.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Sync the directory now, or show what it says about a user (through the cache service).
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Evaluate policies offline.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Which route a request matches, and what its policy decides, with the reasons.
    Eval {
        #[command(flatten)]
        config: ConfigArg,
        /// The user's email (also the user id unless --user is given); none: anonymous.
        #[arg(long)]
        email: Option<String>,
        /// The user id (the IdP's `sub`).
        #[arg(long)]
        user: Option<String>,
        /// More claims, as a JSON object (e.g. '{"department":"eng"}').
        #[arg(long)]
        claims: Option<String>,
        /// Groups, comma-separated.
        #[arg(long)]
        groups: Option<String>,
        /// The client address (for source_ip).
        #[arg(long)]
        ip: Option<String>,
        /// e.g. GET
        method: String,
        /// e.g. https://app.example.com/reports
        url: String,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List live sessions.
    Ls {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this user's sessions (email or user id).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke one session, or every session of a user; proxies refuse them at once.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        /// The session id (see `sessions ls`).
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        /// Every session of this user (email or user id).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Ask for a sync and wait for its outcome (exit 1 if it failed).
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        /// Sync now rather than at the next refresh_interval.
        #[arg(long, required = true)]
        now: bool,
    },
    /// A user's directory record and groups.
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// Email or provider user id.
        user: String,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print events as they arrive, one JSON object per line.
    Tail {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this type (`session.revoked` or `io.portcullis.session.revoked.v1`).
        #[arg(long = "type")]
        kind: Option<String>,
        /// Start this far back (e.g. 1h); without it, only new events.
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Proxy,
    Authenticate,
    Authorize,
    Cache,
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let (arg, services): (&ConfigArg, &[Service]) = match &cli.command {
        Command::CheckConfig(arg) => return check_config(arg),
        Command::Sessions { .. } | Command::Events { .. } | Command::Directory { .. } => {
            return admin(cli.command);
        }
        Command::Policy {
            command: PolicyCommand::Eval { config, email, user, claims, groups, ip, method, url },
        } => {
            let Some(cfg) = load(config) else { return ExitCode::from(2) };
            let who = policy_eval::Who {
                email: email.clone(),
                user: user.clone(),
                claims: claims.clone(),
                groups: groups.clone(),
                ip: ip.clone(),
            };
            return match policy_eval::run(cfg, method, url, who) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("portcullis: {e:#}");
                    ExitCode::from(2)
                }
            };
        }
        Command::All(a) => (a, &[Service::Cache, Service::Authorize, Service::Authenticate, Service::Proxy]),
        Command::Proxy(a) => (a, &[Service::Proxy]),
        Command::Authenticate(a) => (a, &[Service::Authenticate]),
        Command::Authorize(a) => (a, &[Service::Authorize]),
        Command::Cache(a) => (a, &[Service::Cache]),
    };
    let config = match load(arg) {
        Some(c) => c,
        None => return ExitCode::from(2),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(config, arg.config.clone(), services));
    // Blocking tasks (a proxy thread still draining) get a moment, not forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The operator commands: load the configuration, run one command against NATS.
fn admin(command: Command) -> ExitCode {
    let (arg, task): (ConfigArg, admin::Command) = match command {
        Command::Sessions { command: SessionsCommand::Ls { config, user } } => {
            (config, Box::new(move |c| Box::pin(admin::sessions_ls(c, user))))
        }
        Command::Sessions { command: SessionsCommand::Revoke { config, id, user } } => {
            (config, Box::new(move |c| Box::pin(admin::sessions_revoke(c, id, user))))
        }
        Command::Events { command: EventsCommand::Tail { config, kind, since } } => {
            (config, Box::new(move |c| Box::pin(admin::events_tail(c, kind, since))))
        }
        Command::Directory { command: DirectoryCommand::Sync { config, now: _ } } => {
            (config, Box::new(move |c| Box::pin(admin::directory_sync(c))))
        }
        Command::Directory { command: DirectoryCommand::Show { config, user } } => {
            (config, Box::new(move |c| Box::pin(admin::directory_show(c, user))))
        }
        _ => return ExitCode::FAILURE,
    };
    let Some(config) = load(&arg) else { return ExitCode::from(2) };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(arg: &ConfigArg) -> Option<Arc<Config>> {
    match config::load_and_validate(&arg.config) {
        Ok(c) => {
            for w in &c.warnings {
                warn!("{w}");
            }
            Some(Arc::new(c))
        }
        Err(e) => {
            eprintln!("portcullis: {e}");
            None
        }
    }
}

fn check_config(arg: &ConfigArg) -> ExitCode {
    match config::load_and_validate(&arg.config) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("warning: {w}");
            }
            println!("{}: ok ({} routes)", arg.config.display(), c.routes.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portcullis: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(config: Arc<Config>, path: PathBuf, services: &[Service]) -> anyhow::Result<()> {
    let (trigger, shutdown) = Shutdown::new();
    shutdown::on_signals(trigger.clone());
    // Routes and policies follow the file; the proxy and authorize read the live version.
    let live = portcullis_runtime::reload::watch_file(path, config.clone(), shutdown.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for service in services {
        let config = config.clone();
        let sd: Shutdown = shutdown.clone();
        match service {
            Service::Cache => {
                let app = portcullis_cache::App::build(config).await?;
                tasks.spawn(async move { app.run(sd).await.map_err(anyhow::Error::from) });
            }
            Service::Authorize => {
                let app = portcullis_authorize::App::build(config, live.clone()).await?;
                tasks.spawn(async move { app.run(sd).await.map_err(anyhow::Error::from) });
            }
            Service::Authenticate => {
                let app = portcullis_authenticate::App::build(config, live.clone()).await?;
                tasks.spawn(async move { app.run(sd).await.map_err(anyhow::Error::from) });
            }
            Service::Proxy => {
                let app = portcullis_proxy::App::build(config, live.clone()).await?;
                tasks.spawn(async move { app.run(sd).await.map_err(anyhow::Error::from) });
            }
        }
    }
    info!(nats = %portcullis_runtime::bus::redact(&config.nats.url), "portcullis started");
    let mut result = Ok(());
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        // Once stopping, the services get a bounded time to drain (the proxy's in-flight
        // requests have 10 s): a dependency that is gone must not keep the process alive.
        if shutdown.is_fired() && deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + STOP_LIMIT);
        }
        let drained = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        let done = tokio::select! {
            next = tasks.join_next() => match next { Some(d) => d, None => break },
            _ = shutdown.wait(), if deadline.is_none() => continue,
            _ = drained => {
                warn!(limit = ?STOP_LIMIT, left = tasks.len(), "services did not stop in time; exiting");
                break;
            }
        };
        let outcome = match done {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("a service task failed: {e}")),
        };
        if let Err(e) = outcome {
            // One service failing takes the process down: a supervisor restarts it whole.
            error!("{e:#}");
            trigger.fire();
            result = Err(e);
        } else if !shutdown.is_fired() {
            trigger.fire();
        }
    }
    info!("stopped");
    result
}

/// How long the services may take to stop once asked.
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);
