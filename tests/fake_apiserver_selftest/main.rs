//! Self-test of the fake API server: raw HTTP (the wire format) and real kube-rs clients
//! (`Api`, `kube::runtime::watcher`) against it.

mod kube_api;
mod kube_watch;
mod raw;
mod raw_writes;
mod shapes;

use std::future::Future;
use std::time::Duration;

/// The bound on every await in these tests.
pub const T: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than `T`.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(T, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {T:?}: {what}"))
}
