//! The decoded form of vLLM's `KVEventBatch` and its events (`vllm/distributed/kv_events.py`).

use xxhash_rust::xxh64::xxh64;

/// The longest bytes block hash accepted (vLLM's are 32: a SHA-256 digest).
pub const MAX_HASH_BYTES: usize = 64;

/// vLLM's `ExternalBlockHash`: a 64-bit integer (older versions; negative values keep their bit
/// pattern) or a byte string (newer versions), stored inline so decoding allocates nothing per
/// hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockHash {
    Int(u64),
    Bytes(HashBytes),
}

/// Up to [`MAX_HASH_BYTES`] bytes inline; the unused tail is always zero, so the derived
/// equality and hashing are exact.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashBytes {
    len: u8,
    buf: [u8; MAX_HASH_BYTES],
}

impl HashBytes {
    /// `None` when longer than [`MAX_HASH_BYTES`].
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_HASH_BYTES {
            return None;
        }
        let mut buf = [0u8; MAX_HASH_BYTES];
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(Self {
            len: bytes.len() as u8,
            buf,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl BlockHash {
    /// `None` when the bytes are longer than [`MAX_HASH_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        HashBytes::new(bytes).map(Self::Bytes)
    }

    /// A cheap 64-bit key for maps: the integer itself, or xxh64 of the bytes. One engine sends
    /// one form, so the two never need to agree.
    pub fn digest(&self) -> u64 {
        match self {
            Self::Int(v) => *v,
            Self::Bytes(b) => xxh64(b.as_bytes(), 0),
        }
    }
}

impl std::fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(v) => write!(f, "Int({v:#018x})"),
            Self::Bytes(b) => {
                write!(f, "Bytes(")?;
                for byte in b.as_bytes() {
                    write!(f, "{byte:02x}")?;
                }
                write!(f, ")")
            }
        }
    }
}

impl std::fmt::Debug for HashBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        BlockHash::Bytes(*self).fmt(f)
    }
}

/// Where the blocks live (`medium`): the GPU, the CPU offload tier, or another tier by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Medium {
    Gpu,
    Cpu,
    Other(String),
}

impl Medium {
    pub fn parse(s: &str) -> Self {
        match s {
            "GPU" => Self::Gpu,
            "CPU" => Self::Cpu,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Gpu => "GPU",
            Self::Cpu => "CPU",
            Self::Other(s) => s,
        }
    }
}

/// Blocks entered the prefix cache. `token_ids` holds the tokens of every block in
/// `block_hashes`, concatenated, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockStored {
    pub block_hashes: Vec<BlockHash>,
    /// The block before the first one; `None` at the start of a sequence.
    pub parent_block_hash: Option<BlockHash>,
    pub token_ids: Vec<u32>,
    pub block_size: u32,
    pub lora_id: Option<i64>,
    /// `None` from versions before the field existed.
    pub medium: Option<Medium>,
    /// The adapter name (newer versions; what vLLM now hashes instead of `lora_id`).
    pub lora_name: Option<String>,
    /// The KV-cache group of hybrid models (newer versions).
    pub group_idx: Option<i64>,
}

/// Blocks left the cache (evicted, or moved off this medium).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRemoved {
    pub block_hashes: Vec<BlockHash>,
    pub medium: Option<Medium>,
    pub group_idx: Option<i64>,
}

/// One event of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    BlockStored(BlockStored),
    BlockRemoved(BlockRemoved),
    /// The whole cache was reset (some versions also send it after losing events internally).
    AllBlocksCleared,
    /// A tag this decoder does not know: counted by the caller, skipped.
    Unknown {
        tag: String,
    },
}

/// vLLM's `KVEventBatch`: what one ZMQ payload carries.
#[derive(Clone, Debug, PartialEq)]
pub struct EventBatch {
    /// Seconds since the epoch, from the engine's clock.
    pub ts: f64,
    pub events: Vec<KvEvent>,
    /// `None` from versions that sent a two-element batch.
    pub data_parallel_rank: Option<i64>,
}
