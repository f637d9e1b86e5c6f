use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_runtime::bus::{Bus, BusError};
use portcullis_runtime::{Config, Shutdown};
use tokio::net::TcpSocket;
use tracing::{error, info};

use portcullis_runtime::reload::LiveConfig;

use crate::balance::Balancer;
use crate::decisions::DecisionCache;
use crate::handler::Proxy;
use crate::server::{self, TlsError};

/// Pending connections per listening socket.
const BACKLOG: u32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot listen on {address} (address): {source}")]
    Bind { address: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot connect to NATS: {0}")]
    Nats(#[from] BusError),
}

/// The proxy, bound and ready to run.
///
/// It serves from one thread per core (or `proxy_threads`), each with its own single-threaded runtime, its own
/// listening socket on the same address (`SO_REUSEPORT`: the kernel spreads connections) and
/// its own upstream connection pool, so a request never hops between threads. NATS and the
/// decision cache are shared.
pub struct App {
    sockets: Vec<TcpSocket>,
    address: SocketAddr,
    tls: Option<server::Tls>,
    config: Arc<Config>,
    bus: Bus,
    decisions: Arc<DecisionCache>,
    live: LiveConfig,
}

impl App {
    /// Load TLS, bind the listening sockets, connect to NATS (in the background).
    pub async fn build(config: Arc<Config>, live: LiveConfig) -> Result<App, BuildError> {
        let tls = config
            .server
            .tls
            .as_ref()
            .map(|files| server::tls_acceptor(files, config.server.client_ca_pem.as_deref()))
            .transpose()?;
        let address = config.server.address;
        let threads = config.proxy_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 64)
        });
        let mut sockets = Vec::with_capacity(threads);
        let mut bound = address;
        for _ in 0..threads {
            let socket = bind(bound).map_err(|source| BuildError::Bind { address, source })?;
            // With port 0 the first socket picks the port; the others join it.
            bound = socket.local_addr().map_err(|source| BuildError::Bind { address, source })?;
            sockets.push(socket);
        }
        let bus = Bus::connect(&config.nats, "portcullis-proxy").await?;
        let decisions = Arc::new(DecisionCache::new(
            config.decision_cache.enabled,
            config.decision_cache.max_entries,
            threads,
        ));
        Ok(App { sockets, address: bound, tls, config, bus, decisions, live })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.address)
    }

    /// Serve until `shutdown`; in-flight requests finish.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), BusError> {
        let App { sockets, address, tls, config, bus, decisions, live } = self;
        let balancer = Arc::new(Balancer::new(&live.borrow()));
        let roots = crate::upstream_tls::system_roots();
        let reloads =
            tokio::spawn(on_reload(live.clone(), decisions.clone(), balancer.clone(), shutdown.clone()));
        let follower = tokio::spawn(decisions.clone().follow_events(bus.clone(), shutdown.clone()));
        info!(%address, tls = tls.is_some(), threads = sockets.len(), "proxy listening");
        let mut threads = Vec::with_capacity(sockets.len());
        for (i, socket) in sockets.into_iter().enumerate() {
            let (tls, config, bus, decisions, shutdown) =
                (tls.clone(), config.clone(), bus.clone(), decisions.clone(), shutdown.clone());
            let balancer = balancer.clone();
            let live = live.clone();
            let roots = roots.clone();
            let thread = std::thread::Builder::new().name(format!("proxy-{i}")).spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return error!(error = %e, "cannot start a proxy thread"),
                };
                runtime.block_on(async move {
                    // Each serving thread asks authorize over its own NATS connection, driven
                    // by this thread's runtime: a check and its reply never cross threads. The
                    // shared connection keeps the event subscription.
                    let bus = match Bus::connect(&config.nats, &format!("portcullis-proxy-{i}")).await {
                        Ok(b) => b,
                        Err(e) => {
                            error!(error = %e, "cannot set up this thread's NATS connection; using the shared one");
                            bus
                        }
                    };
                    let client = match crate::forward::client(None, &roots) {
                        Ok(c) => c,
                        Err(e) => return error!(error = %e, "cannot build the upstream client"),
                    };
                    let listener = match socket.listen(BACKLOG) {
                        Ok(l) => l,
                        Err(e) => return error!(error = %e, "cannot listen"),
                    };
                    let proxy = Arc::new(Proxy::new(config, bus, client, decisions, i, balancer, live, roots));
                    tokio::spawn(crate::upstream::sweep(proxy.upstream_pool(), shutdown.clone()));
                    server::serve(listener, tls, proxy, shutdown).await;
                });
            });
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => error!(error = %e, "cannot start a proxy thread"),
            }
        }
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        let _ = follower.await;
        reloads.abort();
        bus.flush().await;
        Ok(())
    }
}

/// After a reload: cached decisions may belong to routes that changed; balancing state to
/// routes that are gone.
async fn on_reload(
    mut live: LiveConfig,
    decisions: Arc<DecisionCache>,
    balancer: Arc<Balancer>,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            changed = live.changed() => if changed.is_err() { return },
            _ = shutdown.wait() => return,
        }
        decisions.clear();
        balancer.reset(&live.borrow());
    }
}

/// A listening-ready socket on `address` that other sockets may share (`SO_REUSEPORT`).
fn bind(address: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(address)?;
    Ok(socket)
}
