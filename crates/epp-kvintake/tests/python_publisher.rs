//! Interoperability with a real publisher: pyzmq's PUB socket and msgspec structs that
//! mirror vLLM's (`tests/python/kv_publisher.py` at the repository root).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use epp_kvintake::{IntakeSettings, spawn};
use epp_testkit::python::{kv_python, require_kv_python};
use tokio::process::Command;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/python/kv_publisher.py"
);

async fn python_blocks_are_scored(layout: &str) {
    require_kv_python();
    let kv_port = port(&consecutive_listeners(1).remove(0)); // freed on drop; Python binds it
    let (ds, ids) = datastore(1);
    let index = index();
    let settings = IntakeSettings {
        // Python binds after the intake starts: retry the first connection often.
        reconnect_backoff: Duration::from_millis(20),
        connect_timeout: Duration::from_millis(200),
        ..IntakeSettings::default()
    };
    let intake = spawn(subscription(&index, kv_port, None), ds.clone(), settings);
    let tokens: Vec<u32> = (1..=12).collect();
    let token_arg = tokens
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut child = Command::new(kv_python())
        .arg(SCRIPT)
        .args(["--endpoint", &format!("tcp://127.0.0.1:{kv_port}")])
        .args(["--topic", TOPIC, "--tokens", &token_arg, "--layout", layout])
        .args([
            "--block-size",
            &BLOCK.to_string(),
            "--rank",
            "0",
            "--interval",
            "0.01",
        ])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python publisher");
    wait_until("the Python publisher's blocks are scored", || {
        score(&index, &ds, ids[0], &tokens, true) == Some(1.0)
    })
    .await;
    let stats = index.stats(ds.clock().now());
    assert_eq!(stats.events_dropped.get("unknown_tag"), None);
    assert_eq!(intake.stats().decode_errors, 0);
    assert_eq!(intake.stats().rank_mismatches, 0);
    child.kill().await.expect("stop the publisher");
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_positional_publisher() {
    python_blocks_are_scored("array").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_named_publisher() {
    python_blocks_are_scored("map").await;
}
