//! KV-cache events over ZMQ, published as vLLM's `ZmqEventPublisher` does, with faults for
//! exercising an EPP's fallback.
//!
//! Server `i` binds a PUB socket on `tcp://<host>:(port + i)` and sends, for every engine step
//! that produced events, one message `[topic, seq (8 bytes BE), payload]`: seq 0, 1, 2, … per
//! server, the payload a msgpack `KVEventBatch` in msgspec's `array_like` layout
//! (`[ts, events, data_parallel_rank]`, `ts` in wall seconds since the epoch,
//! `data_parallel_rank = i`). With a replay port it also binds a ROUTER on `replay_port + i`
//! (protocol in `replay.rs`).
//!
//! * `config.rs`: the settings and their validation.
//! * `convert.rs`: engine events → wire events.
//! * `publisher.rs`: the engine loop's sink, the bounded channel and the publishing task.
//! * `faults.rs`: drops, swaps and delay.
//! * `replay.rs`: the replay buffer and socket.
//!
//! Where batches can be lost, and whether a replay still has them: a full channel from the
//! engine loop (seq consumed, not in the replay buffer: the publisher never saw it); the drop
//! fault (seq consumed, kept for replay, like a message lost on the network); a full delay line
//! (kept for replay).

mod config;
mod convert;
mod faults;
mod publisher;
mod replay;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use zeromq::{PubSocket, RouterSocket, Socket, ZmqMessage};

use crate::SimError;
pub(crate) use config::port_of;
pub use config::{HashForm, KvEventsConfig, MAX_BUFFER_STEPS};
use faults::{DelayLine, FaultPlan};
use publisher::{CHANNEL_CAPACITY, Publisher};
pub(crate) use publisher::{DropReason, KvEventsCounters, KvEventsSink};
use replay::{ReplayBuffer, SharedReplay};

/// The running publisher of one server.
pub(crate) struct KvEvents {
    /// Given to the engine loop.
    pub sink: KvEventsSink,
    pub counters: Arc<KvEventsCounters>,
    pub tasks: Vec<JoinHandle<()>>,
    /// The bound PUB address.
    pub address: SocketAddr,
    /// The bound ROUTER address, if replay is on.
    pub replay_address: Option<SocketAddr>,
}

/// Binds server `rank`'s sockets on `host` and starts its tasks; `None` when events are off.
/// `seed` (`--seed`) seeds the faults, mixed with the rank so servers differ.
pub(crate) async fn start(
    config: &KvEventsConfig,
    host: IpAddr,
    rank: usize,
    seed: u64,
    stop: &watch::Receiver<bool>,
) -> Result<Option<KvEvents>, SimError> {
    let Some(base) = config.port else {
        return Ok(None);
    };
    let (pub_listener, address) = listen(host, base, rank)?;
    let mut socket = PubSocket::new();
    socket
        .bind_listener(pub_listener)
        .await
        .map_err(|e| zmq_bind_error(address, e))?;
    let (replay, replay_address, replay_task) = match config.replay_port {
        None => (None, None, None),
        Some(replay_base) => {
            let (buffer, address, task) =
                start_replay(config, host, replay_base, rank, stop).await?;
            (Some(buffer), Some(address), Some(task))
        }
    };
    let counters = Arc::new(KvEventsCounters::default());
    let rng = SmallRng::seed_from_u64(seed ^ (rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let publisher = Publisher {
        socket,
        topic: Bytes::from(config.topic.clone().into_bytes()),
        replay,
        faults: FaultPlan::new(config.drop_ratio, config.reorder_ratio, rng),
        delay: DelayLine::new(config.delay),
        counters: Arc::clone(&counters),
    };
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let publish_task = tokio::spawn(publisher.run(rx, stop.clone()));
    let rank_label = i64::try_from(rank).unwrap_or(i64::MAX);
    Ok(Some(KvEvents {
        sink: KvEventsSink::new(tx, rank_label, config.hash_form, Arc::clone(&counters)),
        counters,
        tasks: [Some(publish_task), replay_task]
            .into_iter()
            .flatten()
            .collect(),
        address,
        replay_address,
    }))
}

/// Binds the replay ROUTER of server `rank` and starts serving it from a fresh buffer.
async fn start_replay(
    config: &KvEventsConfig,
    host: IpAddr,
    base: u16,
    rank: usize,
    stop: &watch::Receiver<bool>,
) -> Result<(SharedReplay, SocketAddr, JoinHandle<()>), SimError> {
    let (listener, address) = listen(host, base, rank)?;
    let mut router = RouterSocket::new();
    router
        .bind_listener(listener)
        .await
        .map_err(|e| zmq_bind_error(address, e))?;
    let buffer = Arc::new(Mutex::new(ReplayBuffer::new(config.buffer_steps)));
    let task = tokio::spawn(replay::serve(router, Arc::clone(&buffer), stop.clone()));
    Ok((buffer, address, task))
}

/// A multipart message from its frames (at least one).
pub(crate) fn frames_message<const N: usize>(frames: [Bytes; N]) -> ZmqMessage {
    let mut iter = frames.into_iter();
    let mut message = ZmqMessage::from(iter.next().unwrap_or_default());
    for frame in iter {
        message.push_back(frame);
    }
    message
}

/// Binds `host:(base + rank)` (a free port when `base` is 0).
fn listen(host: IpAddr, base: u16, rank: usize) -> Result<(TcpListener, SocketAddr), SimError> {
    let Some(port) = port_of(base, rank) else {
        return Err(SimError::PortRange {
            base_port: base,
            count: rank + 1,
        });
    };
    let address = SocketAddr::new(host, port);
    let bind_error = |source| SimError::Bind { address, source };
    let listener = TcpListener::bind(address).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

fn zmq_bind_error(address: SocketAddr, error: zeromq::ZmqError) -> SimError {
    SimError::Bind {
        address,
        source: std::io::Error::other(error.to_string()),
    }
}
