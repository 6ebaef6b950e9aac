//! Descriptor exhaustion: when `accept` fails with EMFILE every listener backs off and
//! logs once instead of spinning, and serves again once descriptors are free.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use epp_testkit::procfs::cpu_ticks_of;

use super::RunningBinary;

/// Descriptors the EPP may hold: enough to start, few enough to run out quickly.
const FD_LIMIT: u32 = 64;

fn flood(address: SocketAddr, connections: usize) -> Vec<TcpStream> {
    (0..connections)
        .filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok())
        .collect()
}

#[tokio::test]
async fn every_listener_backs_off_when_descriptors_run_out_and_recovers() {
    let mut epp = RunningBinary::start_with_fd_limit(&["--secure-serving=false"], Some(FD_LIMIT));
    epp.wait_serving().await;
    let pid = epp.child.id();

    // The metrics port takes connections until the EPP is out of descriptors; then a few
    // more wait in every listen backlog, so each listener meets EMFILE.
    let mut held = flood(epp.metrics, FD_LIMIT as usize + 8);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for address in [epp.ext_proc, epp.health, epp.metrics] {
        held.extend(flood(address, 4));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks_of(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks_of(pid) - before;
    // A listener retrying at once burns a whole core: ~200 ticks in 2 s.
    assert!(
        used < 40,
        "the EPP used {used} ticks of CPU in 2 s while out of descriptors"
    );

    // Free the descriptors: the EPP closes its ends of the flood and serves again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    epp.wait_serving().await;
    assert!(Instant::now() < deadline);
    epp_net::tls::install_crypto_provider();
    let page = reqwest::get(format!("http://{}/metrics", epp.metrics))
        .await
        .expect("metrics port serves again")
        .text()
        .await
        .expect("page");
    assert!(page.contains("inference_extension_info{"), "{page}");

    let (code, logs) = epp.terminate().await;
    assert_eq!(code, Some(0), "{logs}");
    for listener in ["grpc-port", "grpc-health-port", "metrics-port"] {
        let failing = logs
            .lines()
            .filter(|l| l.contains("cannot accept connections") && l.contains(listener))
            .count();
        // Once per outage: a descriptor freed for a moment may end one and start another,
        // but never a line per attempt.
        assert!(
            (1..=5).contains(&failing),
            "{listener}: {failing} 'cannot accept' lines\n{logs}"
        );
        assert!(
            logs.lines()
                .any(|l| l.contains("accepting connections again") && l.contains(listener)),
            "{listener} did not log its recovery\n{logs}"
        );
    }
}
