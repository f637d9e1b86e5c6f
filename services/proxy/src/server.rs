//! Accepting connections: plain or TLS (rustls, ALPN h2 and http/1.1), served by hyper's
//! auto (HTTP/1.1 + HTTP/2) builder, drained gracefully at shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portcullis_runtime::Shutdown;
use portcullis_runtime::config::TlsFiles;
use portcullis_runtime::pages::RequestId;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use portcullis_schemas::messages::ClientCertificate;

use crate::drain::Drain;
use crate::handler::{Connection, Proxy};
use crate::serve_h1::{self, Answer, Lean};

/// Largest request head accepted, bytes (larger: 431).
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;

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
    #[error("client_ca_file: {0}")]
    ClientCa(String),
}

/// The TLS side of the listener: the acceptor, and with `client_ca_file` the verifier that
/// decides, after the handshake, whether a presented client certificate is trusted.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

/// Asks for a client certificate and lets the handshake finish whatever chain it presents,
/// so that an untrusted certificate gets Pomerium's 495 page instead of a TLS alert. The
/// proof of possession (the handshake signature) is still checked here by the WebPKI
/// verifier; the chain is checked right after the handshake ([`trusted_client_certificate`]),
/// and a certificate that fails is treated as absent: fail closed, 495.
#[derive(Debug)]
struct AskForAnyChain(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for AskForAnyChain {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The client certificate of a finished handshake, if one was presented and its chain verifies
/// against `client_ca_file` now; an untrusted one is logged and treated as absent.
fn trusted_client_certificate(
    tls: &Tls,
    conn: &rustls::ServerConnection,
    peer: std::net::SocketAddr,
) -> Option<ClientCertificate> {
    let verifier = tls.client_verifier.as_ref()?;
    let (leaf, intermediates) = conn.peer_certificates()?.split_first()?;
    match verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
        Ok(_) => client_certificate(leaf),
        Err(error) => {
            debug!(%error, %peer, "client certificate does not verify against client_ca_file; answering 495");
            None
        }
    }
}

/// Build the rustls acceptor from the configured files.
pub fn tls_acceptor(files: &TlsFiles, client_ca_pem: Option<&str>) -> Result<Tls, TlsError> {
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
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair(e.to_string()))?;
    let mut client_verifier = None;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            // Certificates are asked for, not required, and any chain completes the handshake,
            // so that a missing or untrusted one gets a clear 495 page.
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                let cert = cert.map_err(|e| TlsError::ClientCa(e.to_string()))?;
                roots.add(cert).map_err(|e| TlsError::ClientCa(e.to_string()))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            client_verifier = Some(verifier.clone());
            builder.with_client_cert_verifier(Arc::new(AskForAnyChain(verifier)))
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| TlsError::Pair(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), client_verifier })
}

/// One client connection's requests, answered by the proxy.
pub(crate) struct Client {
    proxy: Arc<Proxy>,
    conn: Connection,
}

impl Answer for Client {
    /// The response to `req`, with its request id: on error pages, in JSON errors, to the
    /// upstream and back to the client.
    async fn answer(&self, req: http::Request<crate::RequestBody>) -> http::Response<crate::Body> {
        let id = RequestId::random();
        // Made once: the upstream and the client get the same value.
        let header = id_header(&id);
        let response = portcullis_runtime::pages::REQUEST_ID
            .scope(id, self.proxy.handle(req, &self.conn, header.as_ref()))
            .await;
        with_request_id(response, header)
    }
}

/// What policies see of a verified client certificate: SHA-256 of the DER (hex) and of the
/// SubjectPublicKeyInfo (base64), and its subject alternative names.
fn client_certificate(der: &rustls::pki_types::CertificateDer<'_>) -> Option<ClientCertificate> {
    use base64::Engine;
    let fingerprint: String = ring::digest::digest(&ring::digest::SHA256, der.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cert = webpki::EndEntityCert::try_from(der).ok()?;
    let spki = cert.subject_public_key_info();
    let spki_hash = base64::engine::general_purpose::STANDARD
        .encode(ring::digest::digest(&ring::digest::SHA256, spki.as_ref()));
    Some(ClientCertificate {
        fingerprint,
        spki_hash,
        san_email: crate::x509::san_emails(der.as_ref()),
        san_dns: cert.valid_dns_names().map(str::to_owned).collect(),
        san_uri: cert.valid_uri_names().map(str::to_owned).collect(),
    })
}

/// `id` as a header value, cut from a buffer of the thread's: a value of its own would be
/// an allocation, and another when it is shared between the upstream and the client.
fn id_header(id: &RequestId) -> Option<http::HeaderValue> {
    thread_local! {
        static IDS: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::new(bytes::BytesMut::new());
    }
    let text = id.as_str().as_bytes();
    IDS.with_borrow_mut(|ids| {
        if ids.capacity() < text.len() {
            *ids = bytes::BytesMut::with_capacity(4096);
        }
        ids.extend_from_slice(text);
        http::HeaderValue::from_maybe_shared(ids.split().freeze()).ok()
    })
}

fn with_request_id(
    mut response: http::Response<crate::Body>,
    id: Option<http::HeaderValue>,
) -> http::Response<crate::Body> {
    if let Some(v) = id {
        response.headers_mut().insert(http::HeaderName::from_static("x-request-id"), v);
    }
    response
}

/// Serve `listener` until `shutdown`, then drain.
pub async fn serve(listener: TcpListener, tls: Option<Tls>, proxy: Arc<Proxy>, shutdown: Shutdown) {
    let drain = Drain::default();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Oversized or too many request headers get 431 from hyper. More than 100 headers is
    // hyper's default limit, checked with an array on the stack; setting `max_headers`, even
    // to 100, makes hyper build and move a 100-entry list for every request instead. (The
    // e2e hygiene test sends 150.)
    builder.http1().max_buf_size(MAX_HEADER_BYTES);
    // Connections handed to hyper (a request with a body, say) keep the lean path's limit on
    // a request head. hyper's timer runs from when it starts waiting for a head, so an idle
    // keep-alive connection it serves closes after that long too.
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(serve_h1::HEAD_TIMEOUT);
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
        match &tls {
            None => {
                let client = Arc::new(Client { proxy, conn: Connection::new(peer, false, None) });
                let conn = drain.watch(Lean::new(stream, client, builder.clone()));
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
            Some(tls) => {
                let tls = tls.clone();
                let builder = builder.clone();
                let entry = drain.entry();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        Duration::from_secs(10),
                        tls.acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(error)) => return debug!(%error, %peer, "TLS handshake failed"),
                        Err(_) => return debug!(%peer, "TLS handshake timed out"),
                    };
                    let cert = trusted_client_certificate(&tls, stream.get_ref().1, peer);
                    let client =
                        Arc::new(Client { proxy, conn: Connection::new(peer, true, cert.map(Arc::new)) });
                    // HTTP/2 is hyper's; HTTP/1.1 takes the lean path.
                    let ended = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        let service = serve_h1::service(client);
                        entry
                            .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service))
                            .await
                    } else {
                        entry.watch(Lean::new(stream, client, builder)).await
                    };
                    if let Err(error) = ended {
                        debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
        }
    }
    debug!("proxy thread draining connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, drain.shutdown()).await.is_err() {
        warn!("some connections did not finish in time");
    }
}

#[cfg(test)]
mod tests {
    use portcullis_runtime::pages::RequestId;

    use super::id_header;

    #[test]
    fn request_id_headers_carry_their_id_across_buffers() {
        let mut seen = std::collections::HashSet::new();
        // More than one 4 KiB buffer's worth (341 ids each).
        let headers: Vec<_> = (0..1000)
            .map(|_| {
                let id = RequestId::random();
                (id, id_header(&id).expect("an id is a valid header value"))
            })
            .collect();
        for (id, header) in &headers {
            assert_eq!(id.as_str().len(), 12);
            assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(header.as_bytes(), id.as_str().as_bytes());
            assert!(seen.insert(id.as_str().to_owned()), "ids differ");
        }
    }
}
