//! The intake against loopback ZMQ publishers (the zeromq crate's PUB and ROUTER).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use epp_kvintake::{IntakeSettings, spawn};
use zeromq::{RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

const A: [u32; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const B: [u32; 8] = [9, 10, 11, 12, 13, 14, 15, 16];

fn fast() -> IntakeSettings {
    IntakeSettings {
        reconnect_backoff: Duration::from_millis(20),
        ..IntakeSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_reads_its_rank_port() {
    let (mut pubs, kv_port) = publishers(2).await;
    let (ds, ids) = datastore(2);
    let index = index();
    let intake = spawn(subscription(&index, kv_port, None), ds.clone(), fast());
    warm_up(&mut pubs[0], 0, &index, ids[0], &ds).await;
    warm_up(&mut pubs[1], 1, &index, ids[1], &ds).await;
    publish(&mut pubs[0], 1, &batch(vec![stored(&A, 100)], 0)).await;
    publish(&mut pubs[1], 1, &batch(vec![stored(&B, 200)], 1)).await;
    wait_until("both batches are applied", || {
        score(&index, &ds, ids[0], &A, true) == Some(1.0)
            && score(&index, &ds, ids[1], &B, true) == Some(1.0)
    })
    .await;
    assert_eq!(score(&index, &ds, ids[0], &B, true), Some(0.0));
    assert_eq!(score(&index, &ds, ids[1], &A, true), Some(0.0));
    assert_eq!(intake.stats().endpoints, 2);
    assert_eq!(intake.stats().rank_mismatches, 0);
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_endpoint_is_forgotten_and_its_task_stops() {
    let (mut pubs, kv_port) = publishers(2).await;
    let (ds, ids) = datastore(2);
    let index = index();
    let intake = spawn(subscription(&index, kv_port, None), ds.clone(), fast());
    warm_up(&mut pubs[1], 1, &index, ids[1], &ds).await;
    publish(&mut pubs[1], 1, &batch(vec![stored(&B, 200)], 1)).await;
    wait_until("the batch is applied", || {
        score(&index, &ds, ids[1], &B, true) == Some(1.0)
    })
    .await;

    assert!(ds.remove_endpoint(([127, 0, 0, 1], 8001).into()));
    wait_until("the task stops", || intake.stats().endpoints == 1).await;
    assert_eq!(
        score(&index, &ds, ids[1], &B, false),
        None,
        "its view is gone"
    );
    let keys_before = index.stats(ds.clock().now()).keys;
    assert_eq!(keys_before, 0);
    // Its publisher goes on; nothing reaches the index any more.
    for seq in 2..6 {
        publish(&mut pubs[1], seq, &batch(vec![stored(&B, 200)], 1)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(score(&index, &ds, ids[1], &B, false), None);
    assert_eq!(
        index.stats(ds.clock().now()).endpoints,
        0,
        "the other endpoint never published"
    );
    intake.shutdown().await;
}

/// A ROUTER that answers replay requests from `buffer` as vLLM does.
async fn replay_server(mut router: RouterSocket, buffer: Vec<(u64, epp_kvevents::EventBatch)>) {
    while let Ok(request) = router.recv().await {
        let frames = request.into_vec();
        let [identity, _empty, start] = frames.as_slice() else {
            continue;
        };
        let start = u64::from_be_bytes(start.as_ref().try_into().expect("8-byte seq"));
        let reply = |seq: Bytes, payload: Bytes| {
            ZmqMessage::try_from(vec![identity.clone(), Bytes::new(), seq, payload])
                .expect("frames")
        };
        for (seq, batch) in buffer.iter().filter(|(s, _)| *s >= start) {
            let payload = epp_kvevents::encode_batch(batch);
            let msg = reply(
                Bytes::copy_from_slice(&seq.to_be_bytes()),
                Bytes::from(payload),
            );
            router.send(msg).await.expect("replay reply");
        }
        let end = reply(Bytes::copy_from_slice(&[0xFF; 8]), Bytes::new());
        router.send(end).await.expect("replay terminator");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_is_filled_by_replay() {
    let (mut pubs, kv_port) = publishers(1).await;
    let replay_listener = consecutive_listeners(1).remove(0);
    let replay_port = port(&replay_listener);
    let mut router = RouterSocket::new();
    router
        .bind_listener(replay_listener)
        .await
        .expect("bind ROUTER");
    let b1 = batch(vec![stored(&A, 100)], 0);
    let b2 = batch(vec![stored(&B, 200)], 0);
    let b3 = batch(vec![stored(&[21, 22, 23, 24], 300)], 0);
    let server = tokio::spawn(replay_server(
        router,
        vec![(1, b1.clone()), (2, b2.clone()), (3, b3.clone())],
    ));

    let (ds, ids) = datastore(1);
    let index = index();
    let intake = spawn(
        subscription(&index, kv_port, Some(replay_port)),
        ds.clone(),
        fast(),
    );
    warm_up(&mut pubs[0], 0, &index, ids[0], &ds).await;
    publish(&mut pubs[0], 1, &b1).await;
    publish(&mut pubs[0], 3, &b3).await; // 2 is lost on the way
    wait_until("the replay filled the gap", || {
        score(&index, &ds, ids[0], &[21, 22, 23, 24], false) == Some(1.0)
    })
    .await;
    assert_eq!(
        score(&index, &ds, ids[0], &B, true),
        Some(1.0),
        "the replayed batch applied"
    );
    let stats = index.stats(ds.clock().now());
    assert_eq!(stats.gaps, 0);
    assert!(index.is_reliable(ids[0], ds.clock().now()));
    let intake_stats = intake.stats();
    assert_eq!(intake_stats.replays_requested, 1);
    assert_eq!(intake_stats.replays_succeeded, 1);
    assert_eq!(intake_stats.replayed_batches, 1);
    intake.shutdown().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_without_replay_is_counted_and_distrusted() {
    let (mut pubs, kv_port) = publishers(1).await;
    let (ds, ids) = datastore(1);
    let index = index();
    let intake = spawn(subscription(&index, kv_port, None), ds.clone(), fast());
    warm_up(&mut pubs[0], 0, &index, ids[0], &ds).await;
    publish(&mut pubs[0], 1, &batch(vec![stored(&A, 100)], 0)).await;
    publish(&mut pubs[0], 3, &batch(vec![stored(&B, 200)], 0)).await;
    wait_until("the held batch is applied", || {
        score(&index, &ds, ids[0], &B, false) == Some(1.0)
    })
    .await;
    let stats = index.stats(ds.clock().now());
    assert_eq!(stats.gaps, 1);
    assert_eq!(stats.missed_batches, 1);
    assert!(!index.is_reliable(ids[0], ds.clock().now()));
    assert_eq!(intake.stats().replays_requested, 0);
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_within_the_window_is_reordered() {
    let (mut pubs, kv_port) = publishers(1).await;
    let (ds, ids) = datastore(1);
    let index = index();
    let settings = IntakeSettings {
        reorder_window: Duration::from_millis(500),
        ..fast()
    };
    let intake = spawn(subscription(&index, kv_port, None), ds.clone(), settings);
    warm_up(&mut pubs[0], 0, &index, ids[0], &ds).await;
    publish(&mut pubs[0], 2, &batch(vec![stored(&B, 200)], 0)).await;
    publish(&mut pubs[0], 1, &batch(vec![stored(&A, 100)], 0)).await;
    wait_until("both are applied", || {
        score(&index, &ds, ids[0], &A, true) == Some(1.0)
            && score(&index, &ds, ids[0], &B, true) == Some(1.0)
    })
    .await;
    assert_eq!(index.stats(ds.clock().now()).gaps, 0);
    assert_eq!(intake.stats().reorders_resolved, 1);
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_wrong_rank_are_counted_and_good_batches_still_apply() {
    let (mut pubs, kv_port) = publishers(1).await;
    let (ds, ids) = datastore(1);
    let index = index();
    let intake = spawn(subscription(&index, kv_port, None), ds.clone(), fast());
    warm_up(&mut pubs[0], 0, &index, ids[0], &ds).await;
    let topic = TOPIC.as_bytes().to_vec();
    let p = &mut pubs[0];
    p.send(frames_raw(vec![topic.clone(), vec![1, 2, 3], vec![0x90]]))
        .await
        .expect("send");
    p.send(frames_raw(vec![
        topic.clone(),
        1u64.to_be_bytes().to_vec(),
        vec![0xc1],
    ]))
    .await
    .expect("send");
    publish(p, 2, &batch(vec![stored(&A, 100), removed(3)], 7)).await;
    publish(p, 3, &batch(vec![stored(&B, 200)], 0)).await;
    wait_until("the good batch is applied", || {
        score(&index, &ds, ids[0], &B, false) == Some(1.0)
    })
    .await;
    assert_eq!(
        score(&index, &ds, ids[0], &A, false),
        Some(0.0),
        "the wrong rank's blocks are not there"
    );
    let dropped = index.stats(ds.clock().now()).events_dropped;
    assert_eq!(dropped.get("bad_seq"), Some(&1));
    assert_eq!(dropped.get("wrong_type"), Some(&1), "0xc1 is not a batch");
    assert_eq!(dropped.get("rank_mismatch"), Some(&2), "counted in events");
    let stats = intake.stats();
    assert_eq!(stats.decode_errors, 2);
    assert_eq!(stats.rank_mismatches, 1);
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_publisher_is_cut_and_others_flow() {
    let (mut pubs, kv_port) = publishers(2).await;
    let (ds, ids) = datastore(2);
    let index = index();
    let settings = IntakeSettings {
        max_events_per_second: 1000,
        ..fast()
    };
    let intake = spawn(subscription(&index, kv_port, None), ds.clone(), settings);
    warm_up(&mut pubs[0], 0, &index, ids[0], &ds).await;
    warm_up(&mut pubs[1], 1, &index, ids[1], &ds).await;
    let (mut flooder, mut quiet) = {
        let mut it = pubs.into_iter();
        (it.next().expect("pub 0"), it.next().expect("pub 1"))
    };
    let flood = tokio::spawn(async move {
        let big = batch((0..100).map(|_| removed(1)).collect(), 0);
        for seq in 1..=400u64 {
            publish(&mut flooder, seq, &big).await;
            if seq % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        flooder
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let sent = Instant::now();
    publish(&mut quiet, 1, &batch(vec![stored(&B, 200)], 1)).await;
    wait_until("the quiet endpoint's batch is applied", || {
        score(&index, &ds, ids[1], &B, true) == Some(1.0)
    })
    .await;
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "applied in {:?}",
        sent.elapsed()
    );
    let _flooder = flood.await.expect("flood task");
    wait_until("flood drops are counted", || intake.stats().flood_drops > 0).await;
    let dropped = index.stats(ds.clock().now()).events_dropped;
    let flood_events = dropped.get("flood").copied().unwrap_or(0);
    assert!(
        flood_events >= 100,
        "flood drops counted in events: {flood_events}"
    );
    assert_eq!(flood_events % 100, 0, "whole batches are dropped");
    assert_eq!(intake.stats().flood_drops * 100, flood_events);
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_publisher_is_a_reconnect() {
    let (mut pubs, kv_port) = publishers(1).await;
    let (ds, ids) = datastore(1);
    let index = index();
    let intake = spawn(subscription(&index, kv_port, None), ds.clone(), fast());
    warm_up(&mut pubs[0], 0, &index, ids[0], &ds).await;
    publish(&mut pubs[0], 1, &batch(vec![stored(&A, 100)], 0)).await;
    publish(
        &mut pubs[0],
        2,
        &batch(vec![stored(&[31, 32, 33, 34], 110)], 0),
    )
    .await;
    wait_until("the first run is applied", || {
        score(&index, &ds, ids[0], &[31, 32, 33, 34], true) == Some(1.0)
    })
    .await;

    // The engine restarts: same port, sequence numbers from 0 again.
    drop(pubs);
    let mut restarted = zeromq::PubSocket::new();
    let url = format!("tcp://127.0.0.1:{kv_port}");
    let mut bound = false;
    for _ in 0..100 {
        if restarted.bind(&url).await.is_ok() {
            bound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(bound, "rebind {url}");
    let b = batch(vec![stored(&B, 200)], 0);
    for _ in 0..300 {
        publish(&mut restarted, 0, &b).await;
        if score(&index, &ds, ids[0], &B, false) == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        score(&index, &ds, ids[0], &B, false),
        Some(1.0),
        "seq 0 of the new run applies"
    );
    let stats = index.stats(ds.clock().now());
    assert_eq!(stats.fallback_switches.get("reconnect"), Some(&1));
    assert!(
        !index.is_reliable(ids[0], ds.clock().now()),
        "until it has flowed for `recovery`"
    );
    assert_eq!(intake.stats().reconnects, 1);
    intake.shutdown().await;
}
