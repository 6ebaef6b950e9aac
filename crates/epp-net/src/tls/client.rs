//! A TLS client configuration for talking to an EPP whose certificate cannot be verified
//! (the default self-signed one), as the load tool and the tests do, and as gateways do
//! with `insecureSkipVerify`. Never use it to reach anything else.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Accepts any server certificate, but still checks the handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
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

/// A client config (ALPN `h2`) that trusts any certificate the EPP presents.
pub fn insecure_client_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The leaf certificate the server presented on the last connection of an
/// [`InsecureTlsDial`].
pub type SeenCertificate = Arc<std::sync::Mutex<Option<CertificateDer<'static>>>>;

/// A tonic connector (`Endpoint::connect_with_connector`) that dials `target` (`host:port`)
/// over TCP without Nagle, then TLS with [`insecure_client_config`]; the URI tonic passes is
/// ignored. It remembers the certificate the server presented.
#[derive(Clone)]
pub struct InsecureTlsDial {
    target: Arc<str>,
    connector: tokio_rustls::TlsConnector,
    seen: SeenCertificate,
}

impl InsecureTlsDial {
    pub fn new(target: &str) -> Result<Self, rustls::Error> {
        Ok(InsecureTlsDial {
            target: Arc::from(target),
            connector: tokio_rustls::TlsConnector::from(insecure_client_config()?),
            seen: SeenCertificate::default(),
        })
    }

    /// Where the certificate of the last connection is kept.
    pub fn seen_certificate(&self) -> SeenCertificate {
        Arc::clone(&self.seen)
    }
}

type DialFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = std::io::Result<
                    hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
                >,
            > + Send,
    >,
>;

impl tonic::codegen::Service<tonic::transport::Uri> for InsecureTlsDial {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = DialFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: tonic::transport::Uri) -> Self::Future {
        let dial = self.clone();
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(dial.target.as_ref()).await?;
            tcp.set_nodelay(true)?;
            let host = dial
                .target
                .rsplit_once(':')
                .map_or(dial.target.as_ref(), |(host, _)| host)
                .trim_matches(['[', ']']);
            let name = ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
            let tls = dial.connector.connect(name, tcp).await?;
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.clone().into_owned());
            if let Ok(mut seen) = dial.seen.lock() {
                *seen = leaf;
            }
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}
