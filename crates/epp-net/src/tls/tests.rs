//! Tests of the serving TLS setup through a real tonic server and a rustls client.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Server, Uri};

use super::*;
use crate::health::pb::HealthCheckRequest;
use crate::health::pb::health_client::HealthClient;
use crate::health::tests::TestHealth;
use crate::health::{ServingStatus, health_server};

// ---------------------------------------------------------------- PKI helpers

struct TestCa {
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn test_ca() -> TestCa {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "epp test CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    TestCa {
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf for `localhost`, signed by `ca`: (cert PEM, key PEM, cert DER).
fn leaf(ca: &TestCa, cn: &str) -> (String, String, CertificateDer<'static>) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// Lays out `dir` like a Kubernetes Secret volume: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<version>`; calling it again swaps `..data` atomically.
fn write_secret_volume(dir: &Path, version: &str, cert_pem: &str, key_pem: &str) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join(CERT_FILE), cert_pem).unwrap();
    std::fs::write(versioned.join(KEY_FILE), key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for file in [CERT_FILE, KEY_FILE] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).unwrap();
        }
    }
}

// ---------------------------------------------------------------- client helpers

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    super::client::insecure_client_config().unwrap()
}

fn verifying_client_config(ca: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

async fn handshake(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    TlsConnector::from(config).connect(name, tcp).await
}

/// The leaf certificate the server presents to a new connection.
async fn served_leaf(addr: SocketAddr) -> CertificateDer<'static> {
    let stream = handshake(addr, insecure_client_config()).await.unwrap();
    let (_, conn) = stream.get_ref();
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]), "ALPN must be h2");
    conn.peer_certificates().unwrap()[0].clone().into_owned()
}

/// tonic connector speaking TLS to a fixed address.
#[derive(Clone)]
struct TlsDial {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    seen_leaf: Arc<Mutex<Option<CertificateDer<'static>>>>,
}

impl tonic::codegen::Service<Uri> for TlsDial {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let stream = handshake(this.addr, this.config).await?;
            let leaf = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.clone().into_owned());
            *this.seen_leaf.lock().unwrap() = leaf;
            Ok(TokioIo::new(stream))
        })
    }
}

async fn grpc_client(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> (
    HealthClient<Channel>,
    Arc<Mutex<Option<CertificateDer<'static>>>>,
) {
    let seen_leaf = Arc::new(Mutex::new(None));
    let channel = Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(TlsDial {
            addr,
            config,
            seen_leaf: seen_leaf.clone(),
        })
        .await
        .unwrap();
    (HealthClient::new(channel), seen_leaf)
}

async fn check_serving(client: &mut HealthClient<Channel>) {
    let status = client
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
}

/// Serves the health service over `tls` on 127.0.0.1:0.
async fn serve(tls: &ServingTls, handshake_timeout: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = TestHealth::new(false);
    state.set_synced(true);
    let incoming = tls_incoming_with_timeout(listener, tls.acceptor(), handshake_timeout);
    tokio::spawn(
        Server::builder()
            .add_service(health_server(state.clone()))
            .serve_with_incoming(incoming),
    );
    addr
}

const FAST: Duration = Duration::from_millis(100);

fn cert_dir_settings(dir: &Path) -> TlsSettings {
    TlsSettings {
        cert_dir: Some(dir.to_path_buf()),
        reload_interval: FAST,
    }
}

/// Polls until the server presents `expected` (or panics after 10 s).
async fn wait_for_leaf(addr: SocketAddr, expected: &CertificateDer<'static>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if &served_leaf(addr).await == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn self_signed_serves_grpc() {
    let tls = ServingTls::load(&TlsSettings::default()).unwrap();
    assert!(tls.is_self_signed());
    assert!(tls.spawn_reloader().is_none());
    let chain = tls.current_chain();
    assert_eq!(chain.len(), 1);
    let addr = serve(&tls, DEFAULT_HANDSHAKE_TIMEOUT).await;
    let (mut client, seen) = grpc_client(addr, insecure_client_config()).await;
    check_serving(&mut client).await;
    assert_eq!(seen.lock().unwrap().as_ref(), Some(&chain[0]));
    // The generated certificate carries upstream's organization.
    let der = chain[0].as_ref();
    assert!(
        der.windows(b"Inference Ext".len())
            .any(|w| w == b"Inference Ext"),
        "subject O=Inference Ext"
    );
}

#[tokio::test]
async fn cert_dir_serves_that_certificate_and_verifies() {
    let ca = test_ca();
    let (cert_pem, key_pem, leaf_der) = leaf(&ca, "epp-1");
    let dir = tempfile::tempdir().unwrap();
    write_secret_volume(dir.path(), "v1", &cert_pem, &key_pem);
    let tls = ServingTls::load(&cert_dir_settings(dir.path())).unwrap();
    assert!(!tls.is_self_signed());
    let addr = serve(&tls, DEFAULT_HANDSHAKE_TIMEOUT).await;

    assert_eq!(served_leaf(addr).await, leaf_der);
    // A client trusting only the test CA validates the chain and the SAN `localhost`.
    let (mut client, seen) = grpc_client(addr, verifying_client_config(&ca.der)).await;
    check_serving(&mut client).await;
    assert_eq!(seen.lock().unwrap().as_ref(), Some(&leaf_der));
    // ...and one trusting another CA does not.
    let other = test_ca();
    let err = handshake(addr, verifying_client_config(&other.der)).await;
    assert!(err.is_err(), "untrusted certificate must be rejected");
}

#[tokio::test]
async fn rotated_secret_is_picked_up_and_garbage_is_ignored() {
    let ca = test_ca();
    let (cert1, key1, der1) = leaf(&ca, "epp-1");
    let (cert2, key2, der2) = leaf(&ca, "epp-2");
    let dir = tempfile::tempdir().unwrap();
    write_secret_volume(dir.path(), "v1", &cert1, &key1);
    let tls = ServingTls::load(&cert_dir_settings(dir.path())).unwrap();
    let reloader = tls.spawn_reloader().expect("reloader with cert_dir");
    let addr = serve(&tls, DEFAULT_HANDSHAKE_TIMEOUT).await;
    assert_eq!(served_leaf(addr).await, der1);

    // An established gRPC connection keeps working across the rotation.
    let (mut client, _) = grpc_client(addr, insecure_client_config()).await;
    check_serving(&mut client).await;

    // Kubernetes-style atomic swap of the `..data` symlink.
    write_secret_volume(dir.path(), "v2", &cert2, &key2);
    wait_for_leaf(addr, &der2).await;
    assert_eq!(tls.current_chain()[0], der2);
    check_serving(&mut client).await;

    // A bad in-place edit keeps the last good certificate.
    std::fs::write(dir.path().join("..v2").join(CERT_FILE), "garbage").unwrap();
    tokio::time::sleep(FAST * 5).await;
    assert_eq!(served_leaf(addr).await, der2);
    // A key that does not belong to the certificate is refused as well.
    std::fs::write(dir.path().join("..v2").join(CERT_FILE), &cert1).unwrap();
    tokio::time::sleep(FAST * 5).await;
    assert_eq!(served_leaf(addr).await, der2);
    // Fixing the files is picked up again.
    std::fs::write(dir.path().join("..v2").join(KEY_FILE), &key1).unwrap();
    wait_for_leaf(addr, &der1).await;

    reloader.abort();
}

#[tokio::test]
async fn reloader_stops_when_tls_is_dropped() {
    let ca = test_ca();
    let (cert, key, _) = leaf(&ca, "epp");
    let dir = tempfile::tempdir().unwrap();
    write_secret_volume(dir.path(), "v1", &cert, &key);
    let tls = ServingTls::load(&cert_dir_settings(dir.path())).unwrap();
    let handle = tls.spawn_reloader().unwrap();
    drop(tls);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("reloader ends once the configuration is dropped")
        .unwrap();
}

#[test]
fn load_errors_are_clear() {
    let ca = test_ca();
    let (cert1, key1, _) = leaf(&ca, "a");
    let (_, key2, _) = leaf(&ca, "b");

    // Missing tls.key.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CERT_FILE), &cert1).unwrap();
    let err = ServingTls::load(&TlsSettings::from_dir(dir.path())).unwrap_err();
    assert!(matches!(&err, TlsError::MissingFile { path } if path.ends_with(KEY_FILE)));
    let msg = err.to_string();
    assert!(
        msg.contains("tls.key") && msg.contains("--cert-path"),
        "{msg}"
    );
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");

    // Missing directory.
    let err = ServingTls::load(&TlsSettings::from_dir(dir.path().join("nope"))).unwrap_err();
    assert!(matches!(&err, TlsError::MissingFile { path } if path.ends_with(CERT_FILE)));

    // Not a certificate.
    std::fs::write(dir.path().join(CERT_FILE), "not pem").unwrap();
    std::fs::write(dir.path().join(KEY_FILE), &key1).unwrap();
    let err = ServingTls::load(&TlsSettings::from_dir(dir.path())).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");

    // No key in tls.key.
    std::fs::write(dir.path().join(CERT_FILE), &cert1).unwrap();
    std::fs::write(dir.path().join(KEY_FILE), &cert1).unwrap();
    let err = ServingTls::load(&TlsSettings::from_dir(dir.path())).unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");

    // Key of another certificate.
    std::fs::write(dir.path().join(KEY_FILE), &key2).unwrap();
    let err = ServingTls::load(&TlsSettings::from_dir(dir.path())).unwrap_err();
    assert!(matches!(err, TlsError::InvalidKeyPair { .. }), "{err}");
    assert!(err.to_string().contains("tls.key"), "{err}");

    // The matching pair loads.
    std::fs::write(dir.path().join(KEY_FILE), &key1).unwrap();
    ServingTls::load(&TlsSettings::from_dir(dir.path())).unwrap();
}

#[tokio::test]
async fn silent_and_bad_clients_do_not_block_others() {
    let tls = ServingTls::load(&TlsSettings::default()).unwrap();
    let addr = serve(&tls, DEFAULT_HANDSHAKE_TIMEOUT).await;

    // Several clients that connect and never handshake...
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // ...one that sends a partial ClientHello...
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    // ...and one that speaks plaintext HTTP/2 to the TLS port.
    let mut plaintext = TcpStream::connect(addr).await.unwrap();
    plaintext
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();

    // A well-behaved client still gets through promptly.
    tokio::time::timeout(Duration::from_secs(5), async {
        let (mut client, _) = grpc_client(addr, insecure_client_config()).await;
        check_serving(&mut client).await;
    })
    .await
    .expect("good client served while others stall");

    // The failed handshake did not end the incoming stream either.
    let (mut client, _) = grpc_client(addr, insecure_client_config()).await;
    check_serving(&mut client).await;
    drop(silent);
}

#[tokio::test]
async fn stalled_handshake_times_out() {
    let tls = ServingTls::load(&TlsSettings::default()).unwrap();
    let addr = serve(&tls, Duration::from_millis(200)).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("server closes the stalled connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The server keeps serving.
    let (mut client, _) = grpc_client(addr, insecure_client_config()).await;
    check_serving(&mut client).await;
}

#[tokio::test]
async fn incoming_exposes_remote_address() {
    let tls = ServingTls::load(&TlsSettings::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tls_incoming(listener, tls.acceptor());
    tokio::pin!(incoming);
    let client = tokio::spawn(async move {
        let stream = handshake(addr, insecure_client_config()).await.unwrap();
        let local = stream.get_ref().0.local_addr().unwrap();
        // Keep the connection open until the server side has been inspected.
        tokio::time::sleep(Duration::from_millis(500)).await;
        local
    });
    let conn = tokio::time::timeout(Duration::from_secs(5), incoming.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let client_local = client.await.unwrap();
    assert_eq!(conn.remote_addr(), Some(client_local));
    use tonic::transport::server::Connected as _;
    assert_eq!(conn.connect_info().remote_addr(), Some(client_local));
    assert_eq!(conn.connect_info().local_addr(), Some(addr));
    assert_eq!(conn.get_ref().get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}
