//! TLS for `https://` targets: one rustls client configuration per run (the platform's root certificates, or with
//! `insecure` any certificate while handshake signatures are still checked), and which error kind a failed
//! handshake counts as.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::outcome::ErrorKind;

/// The certificate was refused: unknown issuer, expired, or not for this host name.
pub const TLS_CERTIFICATE: ErrorKind = "tls_certificate";
/// Any other handshake failure: no common protocol or cipher, an alert, the peer closing mid-handshake, a plain
/// HTTP server on an https:// URL.
pub const TLS_HANDSHAKE: ErrorKind = "tls_handshake";

/// The error when the machine offers no root certificate to verify a server with.
pub const NO_ROOTS: &str = "no trusted root certificates found on this machine to verify https:// targets \
     (hint: install the ca-certificates package, or point SSL_CERT_FILE at a bundle; for a test endpoint with a \
     self-signed certificate, pass --insecure)";

/// What a connection to one https:// target needs: the shared configuration and the name to verify.
#[derive(Clone)]
pub struct Client {
    pub connector: tokio_rustls::TlsConnector,
    pub name: ServerName<'static>,
}

impl Client {
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<Client, String> {
        Ok(Client {
            connector: tokio_rustls::TlsConnector::from(config),
            name: server_name(host)?,
        })
    }
}

/// The name a certificate must be for: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|_| format!("`{host}` is not a host name a TLS certificate can be for"))
}

/// The client configuration every https:// connection of a run shares (so TLS sessions resume across a
/// viewer's reconnections, as a browser's would). Speaks HTTP/1.1 only, announced by ALPN.
pub fn client_config(insecure: bool) -> Result<Arc<ClientConfig>, String> {
    // The provider the AWS SDK already compiles in (aws-lc-rs), named rather than taken from a process default.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(NO_ROOTS.into());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The error kind of a failed TLS connect: the certificate, or the rest of the handshake.
pub fn handshake_error(e: &std::io::Error) -> ErrorKind {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(
            rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType,
        ) => TLS_CERTIFICATE,
        _ => TLS_HANDSHAKE,
    }
}

/// `--insecure`: accepts any certificate chain for any name (a self-signed test endpoint), but still checks that
/// the server signed the handshake with the key of the certificate it sent.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_errors_are_told_apart() {
        let wrap = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let cases = [
            (
                wrap(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer,
                )),
                TLS_CERTIFICATE,
            ),
            (
                wrap(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Expired,
                )),
                TLS_CERTIFICATE,
            ),
            (
                wrap(rustls::Error::AlertReceived(
                    rustls::AlertDescription::HandshakeFailure,
                )),
                TLS_HANDSHAKE,
            ),
            (
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                TLS_HANDSHAKE,
            ),
            (
                std::io::Error::from(std::io::ErrorKind::ConnectionReset),
                TLS_HANDSHAKE,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(handshake_error(&e), want, "{e:?}");
        }
    }

    #[test]
    fn server_names() {
        assert!(server_name("stats.example.com").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("bad name").is_err());
    }
}
