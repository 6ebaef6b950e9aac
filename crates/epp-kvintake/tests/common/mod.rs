//! Loopback fixtures: publishers on consecutive ephemeral ports, a datastore, batch builders.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use epp_core::datastore::{Datastore, EndpointId, EndpointSpec};
use epp_core::prefix::precise::router_seed;
use epp_core::prefix::{PreciseIndex, PreciseIndexConfig};
use epp_core::scheduling::plugins::precise_prefix_cache_scorer::KvEventsSubscription;
use epp_kvevents::{BlockHash, BlockRemoved, BlockStored, EventBatch, KvEvent, encode_message};
use zeromq::{PubSocket, Socket, SocketSend, ZmqMessage};

pub const BLOCK: usize = 4;
pub const TOPIC: &str = "kv@test";

/// `n` TCP listeners on consecutive loopback ports (retried until the OS gives a free run).
pub fn consecutive_listeners(n: u16) -> Vec<TcpListener> {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let base = first.local_addr().expect("local addr").port();
        let mut all = vec![first];
        for i in 1..n {
            let Some(port) = base.checked_add(i) else {
                break;
            };
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => all.push(l),
                Err(_) => break,
            }
        }
        if all.len() == usize::from(n) {
            return all;
        }
    }
    panic!("no run of {n} free consecutive ports");
}

pub fn port(l: &TcpListener) -> u16 {
    l.local_addr().expect("local addr").port()
}

/// A PUB socket on each listener, and the first port.
pub async fn publishers(n: u16) -> (Vec<PubSocket>, u16) {
    let listeners = consecutive_listeners(n);
    let base = port(&listeners[0]);
    let mut out = Vec::new();
    for l in listeners {
        let mut s = PubSocket::new();
        s.bind_listener(l).await.expect("bind PUB");
        out.push(s);
    }
    (out, base)
}

pub fn index() -> Arc<PreciseIndex> {
    Arc::new(PreciseIndex::new(PreciseIndexConfig {
        block_size: BLOCK,
        ..PreciseIndexConfig::default()
    }))
}

pub fn subscription(
    index: &Arc<PreciseIndex>,
    port: u16,
    replay: Option<u16>,
) -> KvEventsSubscription {
    KvEventsSubscription {
        plugin: Arc::from("precise"),
        index: Arc::clone(index),
        port,
        replay_port: replay,
        topic: TOPIC.to_owned(),
    }
}

/// A datastore holding `127.0.0.1:8000 + i` for each of `n`; their ids in port order.
pub fn datastore(n: u16) -> (Arc<Datastore>, Vec<EndpointId>) {
    let ds = Arc::new(Datastore::new(64));
    let ids = (0..n)
        .map(|i| {
            let addr: SocketAddr = ([127, 0, 0, 1], 8000 + i).into();
            ds.upsert_endpoint(EndpointSpec::from_address(addr))
                .expect("add endpoint")
                .id()
        })
        .collect();
    (ds, ids)
}

pub fn batch(events: Vec<KvEvent>, rank: i64) -> EventBatch {
    EventBatch {
        ts: 1.0,
        events,
        data_parallel_rank: Some(rank),
    }
}

/// One `BlockStored` of whole blocks from the start of a sequence; engine hashes `hash0..`.
pub fn stored(tokens: &[u32], hash0: u64) -> KvEvent {
    let blocks = tokens.len() / BLOCK;
    KvEvent::BlockStored(BlockStored {
        block_hashes: (0..blocks as u64)
            .map(|i| BlockHash::Int(hash0 + i))
            .collect(),
        parent_block_hash: None,
        token_ids: tokens.to_vec(),
        block_size: BLOCK as u32,
        lora_id: None,
        medium: None,
        lora_name: None,
        group_idx: None,
    })
}

pub fn removed(hashes: u64) -> KvEvent {
    KvEvent::BlockRemoved(BlockRemoved {
        block_hashes: (0..hashes).map(|h| BlockHash::Int(1_000_000 + h)).collect(),
        medium: None,
        group_idx: None,
    })
}

pub fn frames(message: [Vec<u8>; 3]) -> ZmqMessage {
    frames_raw(message.into_iter().collect())
}

pub fn frames_raw(parts: Vec<Vec<u8>>) -> ZmqMessage {
    ZmqMessage::try_from(parts.into_iter().map(Bytes::from).collect::<Vec<_>>())
        .expect("non-empty message")
}

pub async fn publish(socket: &mut PubSocket, seq: u64, batch: &EventBatch) {
    socket
        .send(frames(encode_message(TOPIC.as_bytes(), seq, batch)))
        .await
        .expect("publish");
}

/// Publishes empty seq-0 batches until the endpoint's view is trusted (the subscription is
/// up: PUB drops what it sends before a subscriber joins).
pub async fn warm_up(
    socket: &mut PubSocket,
    rank: i64,
    index: &PreciseIndex,
    id: EndpointId,
    ds: &Datastore,
) {
    let empty = batch(Vec::new(), rank);
    for _ in 0..400 {
        publish(socket, 0, &empty).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        if index.is_reliable(id, ds.clock().now()) {
            return;
        }
    }
    panic!("the intake never received the warm-up batches");
}

/// Polls `cond` every 5 ms for up to 3 s.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The endpoint's score for `tokens` (`respect_trust` false: the blocks, whatever the trust).
pub fn score(
    index: &PreciseIndex,
    ds: &Datastore,
    id: EndpointId,
    tokens: &[u32],
    respect_trust: bool,
) -> Option<f64> {
    let mut keys = Vec::new();
    epp_kvevents::block_keys(router_seed(None), tokens, BLOCK, &mut keys);
    let mut out = Vec::new();
    index.score(&keys, &[id], ds.clock().now(), respect_trust, &mut out);
    out[0]
}
