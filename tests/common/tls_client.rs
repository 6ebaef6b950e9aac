//! A gRPC channel over TLS that accepts any server certificate (the EPP's default is
//! self-signed), remembering the certificate the server presented.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The certificate the server presented on the last connection.
pub type SeenCertificate = Arc<Mutex<Option<CertificateDer<'static>>>>;

#[derive(Clone)]
struct Dial {
    address: SocketAddr,
    connector: TlsConnector,
    seen: SeenCertificate,
}

impl tonic::codegen::Service<Uri> for Dial {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let dial = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(dial.address).await?;
            let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
            let tls = dial.connector.connect(name, tcp).await?;
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.clone().into_owned());
            *dial.seen.lock().expect("lock") = leaf;
            Ok(TokioIo::new(tls))
        })
    }
}

/// Connects over TLS with ALPN h2, trusting any certificate.
pub async fn tls_channel(address: SocketAddr) -> (Channel, SeenCertificate) {
    let config = epp::tls::client::insecure_client_config().expect("client config");
    let seen: SeenCertificate = Arc::default();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(Dial {
            address,
            connector: TlsConnector::from(config),
            seen: seen.clone(),
        })
        .await
        .expect("TLS connect");
    (channel, seen)
}
