//! TLS for outbound SMTP: one rustls client configuration (ring provider,
//! Mozilla's roots from webpki-roots) that completes the handshake whatever
//! the certificate, and a check afterwards that tells whether the
//! certificate verified. Opportunistic TLS (RFC 3207 as MTAs use it) then
//! records the answer; a policy that requires verification acts on it.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

pub use faxmta_transport::TlsPolicy;

/// Accepts any certificate during the handshake but still checks the
/// handshake signatures; the certificate is judged afterwards by [`Tls::verify`].
#[derive(Debug)]
struct AcceptAny {
    inner: Arc<WebPkiServerVerifier>,
}

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
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The shared client TLS setup.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<ClientConfig>,
    /// A configuration that verifies during the handshake (same roots),
    /// for HTTPS fetches such as MTA-STS policies and TLS reports.
    pub verifying: Arc<ClientConfig>,
    verifier: Arc<WebPkiServerVerifier>,
}

impl Tls {
    /// Mozilla's roots.
    pub fn new() -> Result<Tls, String> {
        Tls::with_roots(None)
    }

    /// Mozilla's roots and the CA certificates in the PEM file `extra`
    /// (`[outbound] ca_file`: a private CA).
    pub fn with_roots(extra: Option<&std::path::Path>) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra {
            let pem = std::fs::read(path)
                .map_err(|e| format!("[outbound] ca_file {}: {e}", path.display()))?;
            let mut added = 0;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert =
                    cert.map_err(|e| format!("[outbound] ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("[outbound] ca_file {}: {e}", path.display()))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!(
                    "[outbound] ca_file {}: no certificate in it",
                    path.display()
                ));
            }
        }
        let roots = Arc::new(roots);
        let verifying = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS client: {e}"))?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("TLS verifier: {e}"))?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS client: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny {
                inner: verifier.clone(),
            }))
            .with_no_client_auth();
        Ok(Tls {
            config: Arc::new(config),
            verifying: Arc::new(verifying),
            verifier,
        })
    }

    /// Whether the peer's certificate chain verifies for `name`; the
    /// error text says why not.
    pub fn verify(&self, conn: &rustls::ClientConnection, name: &str) -> Result<(), String> {
        let certs = conn.peer_certificates().unwrap_or_default();
        let Some((end, intermediates)) = certs.split_first() else {
            return Err("no certificate".into());
        };
        let server_name =
            ServerName::try_from(name.to_string()).map_err(|e| format!("bad name {name}: {e}"))?;
        self.verifier
            .verify_server_cert(end, intermediates, &server_name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Protocol version and cipher suite of an established connection.
pub fn describe(conn: &rustls::ClientConnection) -> (String, String) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "unknown".into(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "unknown".into());
    (version, cipher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_adds_its_certificates_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        assert!(Tls::with_roots(Some(&good)).is_ok());
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let err = Tls::with_roots(Some(&empty)).err().unwrap();
        assert!(err.contains("no certificate in it"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = Tls::with_roots(Some(&missing)).err().unwrap();
        assert!(err.contains("[outbound] ca_file"), "{err}");
    }
}
