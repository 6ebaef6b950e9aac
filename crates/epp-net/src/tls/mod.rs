//! Serving certificates for the ext_proc port: self-signed or `--cert-path`, hot-reloaded.
//!
//! Upstream (`--secure-serving=true`, the default) serves the ext_proc gRPC port over TLS.
//! With `--cert-path DIR` the certificate chain and key come from `DIR/tls.crt` and
//! `DIR/tls.key`; without it a self-signed certificate is generated at start-up (ECDSA
//! P-256 rather than upstream's RSA-4096: `rcgen` on `ring` cannot generate RSA keys).
//!
//! Improvement over upstream: certificates loaded from `--cert-path` are re-read every
//! [`TlsSettings::reload_interval`] (polling the file contents, which follows the
//! `..data` symlink swap Kubernetes performs when a Secret volume is updated) and
//! swapped in atomically for new connections. A bad edit keeps the last good
//! certificate and logs a warning.

pub mod client;
mod incoming;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

pub use incoming::{
    DEFAULT_HANDSHAKE_TIMEOUT, TlsConnection, tls_incoming, tls_incoming_with_timeout,
};

/// File name of the PEM certificate chain inside `--cert-path`.
pub const CERT_FILE: &str = "tls.crt";
/// File name of the PEM private key inside `--cert-path`.
pub const KEY_FILE: &str = "tls.key";
/// Default poll interval for certificate changes under `--cert-path`.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// ALPN protocols offered on the ext_proc port (gRPC needs HTTP/2).
pub const ALPN_PROTOCOLS: &[&[u8]] = &[b"h2"];

/// Organization of the generated self-signed certificate (same as upstream).
const SELF_SIGNED_ORGANIZATION: &str = "Inference Ext";
/// Validity of the generated self-signed certificate: 10 years (same as upstream).
const SELF_SIGNED_VALIDITY: time::Duration = time::Duration::days(365 * 10);

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `--cert-path`: directory holding `tls.crt` and `tls.key`; `None` generates a
    /// self-signed certificate.
    pub cert_dir: Option<PathBuf>,
    /// How often the files under `cert_dir` are polled for changes.
    pub reload_interval: Duration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_dir: None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        }
    }
}

impl TlsSettings {
    /// Settings that load `dir/tls.crt` and `dir/tls.key` and poll them at the default interval.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            cert_dir: Some(dir.into()),
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        }
    }
}

/// Why the serving certificate could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `tls.crt` or `tls.key` does not exist.
    #[error(
        "TLS file {path} does not exist: --cert-path must name a directory containing \
         tls.crt and tls.key (e.g. a mounted kubernetes.io/tls Secret); fix --cert-path or \
         omit it to serve a self-signed certificate"
    )]
    MissingFile {
        /// The missing file.
        path: PathBuf,
    },
    /// A certificate or key file exists but could not be read.
    #[error("cannot read TLS file {path}: {source}; make it readable by this process")]
    Read {
        /// The unreadable file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file is not well-formed PEM.
    #[error(
        "TLS file {path} is not valid PEM: {source}; it must hold PEM blocks as written by openssl or cert-manager"
    )]
    InvalidPem {
        /// The malformed file.
        path: PathBuf,
        /// The parse error.
        source: io::Error,
    },
    /// `tls.crt` contains no certificate.
    #[error(
        "TLS file {path} contains no PEM CERTIFICATE block; it must hold the serving \
         certificate chain, leaf first"
    )]
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
    },
    /// `tls.key` contains no private key.
    #[error(
        "TLS file {path} contains no PEM private key; it must hold one PKCS#8 \
         (PRIVATE KEY), PKCS#1 (RSA PRIVATE KEY) or SEC1 (EC PRIVATE KEY) block"
    )]
    NoPrivateKey {
        /// The key file.
        path: PathBuf,
    },
    /// The key is unsupported or does not belong to the certificate.
    #[error(
        "private key {key} cannot serve certificate {cert}: {source}; tls.key must be the \
         key of the first certificate in tls.crt (RSA, ECDSA P-256/P-384 or Ed25519)"
    )]
    InvalidKeyPair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls rejected.
        source: rustls::Error,
    },
    /// Generating the self-signed certificate failed.
    #[error(
        "generating the self-signed serving certificate failed: {0}; pass --cert-path with \
         a certificate instead"
    )]
    SelfSigned(#[source] rcgen::Error),
    /// The in-memory self-signed key could not be loaded by rustls.
    #[error(
        "loading the generated self-signed certificate failed: {0}; pass --cert-path with a certificate instead"
    )]
    SelfSignedKey(#[source] rustls::Error),
    /// rustls refused the server configuration.
    #[error("building the TLS server configuration failed: {0}")]
    Config(#[source] rustls::Error),
}

/// Certificate resolver that always returns the current certificate, swappable at runtime.
struct SwappableCert {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for SwappableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwappableCert").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// TLS configuration of the ext_proc port: a rustls server config whose certificate can
/// be swapped while serving.
#[derive(Clone)]
pub struct ServingTls {
    config: Arc<rustls::ServerConfig>,
    cert: Arc<SwappableCert>,
    provider: Arc<CryptoProvider>,
    settings: TlsSettings,
    /// PEM contents (tls.crt, tls.key) that `load` read from `cert_dir`.
    loaded_pem: Option<Arc<(Vec<u8>, Vec<u8>)>>,
}

impl fmt::Debug for ServingTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingTls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ServingTls {
    /// Builds the serving TLS configuration: loads `cert_dir/tls.crt` + `cert_dir/tls.key`,
    /// or generates a self-signed ECDSA P-256 certificate (`O=Inference Ext`, 10 years)
    /// when `cert_dir` is `None`. Reads files synchronously: call it at start-up.
    ///
    /// Fails with a message naming the file and the fix when a file is missing, is not
    /// PEM, or the key does not match the certificate.
    pub fn load(settings: &TlsSettings) -> Result<ServingTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (certified, loaded_pem) = match &settings.cert_dir {
            Some(dir) => {
                let (cert_path, key_path) = cert_paths(dir);
                let cert_pem = read_file(&cert_path)?;
                let key_pem = read_file(&key_path)?;
                let certified = parse_pair(&cert_path, &cert_pem, &key_path, &key_pem, &provider)?;
                (certified, Some(Arc::new((cert_pem, key_pem))))
            }
            None => (self_signed(&provider)?, None),
        };
        let cert = Arc::new(SwappableCert {
            current: ArcSwap::from_pointee(certified),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(cert.clone());
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Ok(ServingTls {
            config: Arc::new(config),
            cert,
            provider,
            settings: settings.clone(),
            loaded_pem,
        })
    }

    /// Starts polling `cert_dir` for certificate changes (every `reload_interval`).
    ///
    /// Returns `None` for a self-signed certificate. The task stops by itself once every
    /// clone of this `ServingTls` and every acceptor built from it is dropped; abort the
    /// handle to stop it earlier. Must be called inside a Tokio runtime.
    pub fn spawn_reloader(&self) -> Option<tokio::task::JoinHandle<()>> {
        let dir = self.settings.cert_dir.clone()?;
        let reloader = Reloader {
            cert: Arc::downgrade(&self.cert),
            provider: self.provider.clone(),
            dir,
            interval: self.settings.reload_interval,
            loaded_pem: self.loaded_pem.as_deref().cloned(),
        };
        Some(tokio::spawn(reloader.run()))
    }

    /// An acceptor for TLS handshakes on the ext_proc port (ALPN `h2`).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// The certificate chain currently served (leaf first).
    pub fn current_chain(&self) -> Vec<CertificateDer<'static>> {
        self.cert.current.load().cert.clone()
    }

    /// Whether the certificate was generated at start-up (no `--cert-path`).
    pub fn is_self_signed(&self) -> bool {
        self.settings.cert_dir.is_none()
    }
}

/// Paths of `tls.crt` and `tls.key` inside `dir`.
fn cert_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(CERT_FILE), dir.join(KEY_FILE))
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| read_error(path, e))
}

fn read_error(path: &Path, source: io::Error) -> TlsError {
    if source.kind() == io::ErrorKind::NotFound {
        TlsError::MissingFile {
            path: path.to_path_buf(),
        }
    } else {
        TlsError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Parses a PEM chain + key and checks that they belong together.
fn parse_pair(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::InvalidPem {
            path: cert_path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|source| TlsError::InvalidPem {
            path: key_path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: key_path.to_path_buf(),
        })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::InvalidKeyPair {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    })
}

/// Generates the start-up self-signed certificate.
///
/// Upstream generates RSA-4096; `rcgen` on `ring` cannot generate RSA keys, so this is an
/// **ECDSA P-256** key instead (also much faster to create). Everything else matches
/// upstream: subject `O=Inference Ext`, valid for 10 years from now, extended key usage
/// `serverAuth`, not a CA, no subject alternative names, no client authentication.
fn self_signed(provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(TlsError::SelfSigned)?;
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, SELF_SIGNED_ORGANIZATION);
    params.distinguished_name = name;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + SELF_SIGNED_VALIDITY;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let mut serial = [0u8; 16];
    if provider.secure_random.fill(&mut serial).is_ok() {
        serial[0] &= 0x7f; // keep the DER integer positive
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    }
    let cert = params
        .self_signed(&key_pair)
        .map_err(TlsError::SelfSigned)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    CertifiedKey::from_der(vec![cert.der().clone()], key, provider).map_err(TlsError::SelfSignedKey)
}

/// What the reloader remembers about a failing poll, to warn once per bad state.
#[derive(PartialEq, Eq)]
enum FailureKey {
    /// The files were read but did not parse/match: their contents.
    Content(Vec<u8>, Vec<u8>),
    /// The files could not be read: the error message.
    Read(String),
}

struct Failure {
    key: FailureKey,
    polls: u32,
    warned: bool,
}

/// Background poller of `--cert-path`.
struct Reloader {
    cert: Weak<SwappableCert>,
    provider: Arc<CryptoProvider>,
    dir: PathBuf,
    interval: Duration,
    /// The contents being served when the reloader started.
    loaded_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl Reloader {
    async fn run(self) {
        let (cert_path, key_path) = cert_paths(&self.dir);
        // What is being served: the contents read at `load` time.
        let mut active = self.loaded_pem.clone();
        let mut failure: Option<Failure> = None;
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick completes at once
        loop {
            ticker.tick().await;
            let Some(cert) = self.cert.upgrade() else {
                tracing::debug!(dir = %self.dir.display(), "TLS configuration dropped, certificate reloader stops");
                return;
            };
            let read = match (
                tokio::fs::read(&cert_path).await,
                tokio::fs::read(&key_path).await,
            ) {
                (Ok(c), Ok(k)) => Ok((c, k)),
                (Err(e), _) => Err(read_error(&cert_path, e)),
                (_, Err(e)) => Err(read_error(&key_path, e)),
            };
            let (key, error) = match read {
                Ok(pair) => {
                    if active.as_ref() == Some(&pair) {
                        failure = None;
                        continue;
                    }
                    match parse_pair(&cert_path, &pair.0, &key_path, &pair.1, &self.provider) {
                        Ok(certified) => {
                            cert.current.store(Arc::new(certified));
                            tracing::info!(
                                dir = %self.dir.display(),
                                "Reloaded the ext_proc serving certificate"
                            );
                            active = Some(pair);
                            failure = None;
                            continue;
                        }
                        Err(e) => (FailureKey::Content(pair.0, pair.1), e),
                    }
                }
                Err(e) => (FailureKey::Read(e.to_string()), e),
            };
            // A Secret update may be observed half-way (new tls.crt, old tls.key): only
            // warn when the same failure is seen on two consecutive polls, and only once.
            let entry = match failure.take() {
                Some(f) if f.key == key => Failure {
                    polls: f.polls + 1,
                    ..f
                },
                _ => Failure {
                    key,
                    polls: 1,
                    warned: false,
                },
            };
            let entry = if entry.polls >= 2 && !entry.warned {
                tracing::warn!(
                    dir = %self.dir.display(),
                    error = %error,
                    "Cannot reload the ext_proc serving certificate, keeping the previous one"
                );
                Failure {
                    warned: true,
                    ..entry
                }
            } else {
                entry
            };
            failure = Some(entry);
        }
    }
}

/// Makes ring the process's default rustls crypto provider (reqwest is built without a
/// bundled one). Idempotent: later calls, or a provider installed elsewhere, are fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
