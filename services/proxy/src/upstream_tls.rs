//! TLS towards upstreams: the system's trust roots by default; per route, extra CAs, a
//! different server name, a client certificate, or (Pomerium's `tls_skip_verify`) none.

use std::sync::Arc;

use portcullis_runtime::config::UpstreamTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tracing::warn;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trust roots (loaded once per call; callers cache the result).
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if !found.errors.is_empty() {
        warn!(errors = found.errors.len(), "some system CA certificates could not be loaded");
    }
    roots
}

/// The rustls configuration for an upstream with `tls` settings (or the defaults).
pub fn client_config(tls: Option<&UpstreamTls>, roots: &RootCertStore) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match tls {
        Some(t) if t.skip_verify => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        }
        _ => {
            let mut roots = roots.clone();
            if let Some(pem) = tls.and_then(|t| t.custom_ca_pem.as_deref()) {
                for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                    roots
                        .add(cert.map_err(|e| format!("tls_custom_ca_file: {e}"))?)
                        .map_err(|e| format!("tls_custom_ca_file: {e}"))?;
                }
            }
            builder.with_root_certificates(roots)
        }
    };
    match tls.and_then(|t| t.client_cert_pem.as_ref()) {
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("tls_client_cert_file: {e}"))?;
            let key = rustls_pemfile::private_key(&mut key.as_bytes())
                .map_err(|e| format!("tls_client_key_file: {e}"))?
                .ok_or("tls_client_key_file: no private key")?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("tls_client_cert_file: {e}"))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// `tls_skip_verify`: any certificate is accepted (signatures are still checked).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
