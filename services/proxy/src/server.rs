//! Accepting connections: plain or TLS (rustls, ALPN h2 and http/1.1), served by hyper's
//! auto (HTTP/1.1 + HTTP/2) builder, drained gracefully at shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use portcullis_runtime::Shutdown;
use portcullis_runtime::config::TlsFiles;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::handler::Proxy;

/// Most request headers accepted (more: 431).
const MAX_HEADERS: usize = 100;
/// Largest request head accepted, bytes (larger: 431).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How long in-flight requests may take to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate_file {0}: {1}")]
    Certificate(String, String),
    #[error("certificate_key_file {0}: {1}")]
    Key(String, String),
    #[error("certificate and key do not form a valid pair: {0}")]
    Pair(String),
}

/// Build the rustls acceptor from the configured files.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let cert_path = files.certificate_file.display().to_string();
    let key_path = files.certificate_key_file.display().to_string();
    let cert_pem = std::fs::read(&files.certificate_file)
        .map_err(|e| TlsError::Certificate(cert_path.clone(), e.to_string()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate(cert_path.clone(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Certificate(cert_path, "no certificate in PEM".into()));
    }
    let key_pem = std::fs::read(&files.certificate_key_file)
        .map_err(|e| TlsError::Key(key_path.clone(), e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError::Key(key_path.clone(), e.to_string()))?
        .ok_or_else(|| TlsError::Key(key_path, "no private key in PEM".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Pair(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn with_request_id(mut response: http::Response<crate::Body>, id: &str) -> http::Response<crate::Body> {
    if let Ok(v) = http::HeaderValue::from_str(id) {
        response.headers_mut().insert(http::HeaderName::from_static("x-request-id"), v);
    }
    response
}

/// Serve `listener` until `shutdown`, then drain.
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, proxy: Arc<Proxy>, shutdown: Shutdown) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Oversized or too many request headers get 431 from hyper.
    builder.http1().max_headers(MAX_HEADERS).max_buf_size(MAX_HEADER_BYTES);
    builder.http2().max_header_list_size(MAX_HEADER_BYTES as u32);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let https = tls.is_some();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            async move {
                // Each request gets an id: on error pages, in JSON errors, to the upstream and
                // back to the client, so one request can be found in every log.
                let id = portcullis_runtime::crypto::random_token(9);
                let response = portcullis_runtime::pages::REQUEST_ID
                    .scope(id.clone(), proxy.handle(req, peer, https))
                    .await;
                Ok::<_, Infallible>(with_request_id(response, &id))
            }
        });
        match &tls {
            None => {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(error)) => return debug!(%error, %peer, "TLS handshake failed"),
                            Err(_) => return debug!(%peer, "TLS handshake timed out"),
                        };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                    if let Err(error) = watcher.watch(conn).await {
                        debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
        }
    }
    debug!("proxy thread draining connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        warn!("some connections did not finish in time");
    }
}
