//! A gRPC channel over TLS that accepts any server certificate (the EPP's default is
//! self-signed), remembering the certificate the server presented.

use std::net::SocketAddr;

use epp_net::tls::client::{InsecureTlsDial, SeenCertificate};
use tonic::transport::{Channel, Endpoint};

/// Connects over TLS with ALPN h2, trusting any certificate.
pub async fn tls_channel(address: SocketAddr) -> (Channel, SeenCertificate) {
    // The name the EPP's self-signed certificate is checked against does not matter.
    let dial =
        InsecureTlsDial::new(&format!("localhost:{}", address.port())).expect("client config");
    let seen = dial.seen_certificate();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(dial)
        .await
        .expect("TLS connect");
    (channel, seen)
}
