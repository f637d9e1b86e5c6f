use std::sync::Arc;

use portcullis_runtime::bus::{Bus, BusError};
use portcullis_runtime::{Config, Shutdown};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::handler::Proxy;
use crate::server::{self, TlsError};

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
pub struct App {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
}

impl App {
    /// Load TLS, bind the listener, connect to NATS (in the background).
    pub async fn build(config: Arc<Config>) -> Result<App, BuildError> {
        let tls = config.server.tls.as_ref().map(server::tls_acceptor).transpose()?;
        let address = config.server.address;
        let listener =
            TcpListener::bind(address).await.map_err(|source| BuildError::Bind { address, source })?;
        let bus = Bus::connect(&config.nats, "portcullis-proxy").await?;
        let proxy = Arc::new(Proxy::new(config, bus, crate::forward::client()));
        Ok(App { listener, tls, proxy })
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        server::local_addr(&self.listener)
    }

    /// Serve until `shutdown`; in-flight requests finish.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), BusError> {
        let follower = tokio::spawn(
            self.proxy.decisions.clone().follow_events(self.proxy.bus.clone(), shutdown.clone()),
        );
        server::serve(self.listener, self.tls, self.proxy.clone(), shutdown).await;
        let _ = follower.await;
        self.proxy.bus.flush().await;
        Ok(())
    }
}
