//! Encoding batches as vLLM's publisher does, for the simulator's publisher and for tests.
//!
//! msgspec writes each integer in its smallest msgpack form, floats as float64, `None` as nil,
//! and with `omit_defaults` leaves out trailing fields that still hold their default; this
//! encoder does the same, so its output for a batch vLLM could have sent is vLLM's bytes.

use crate::event::{BlockHash, BlockRemoved, BlockStored, EventBatch, KvEvent, Medium};

/// Which of vLLM's encodings to produce (see [`crate::wire`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// msgspec `array_like=True` throughout: vLLM before PR #42892.
    #[default]
    Positional,
    /// A positional batch of named (map) events, as vLLM 0.26 and SGLang were seen to send.
    NamedEvents,
    /// Maps at both levels: msgspec's default for a struct without `array_like`.
    Named,
}

/// The msgpack payload of one batch, positional (the form the contract describes).
pub fn encode_batch(batch: &EventBatch) -> Vec<u8> {
    encode_batch_with(batch, Layout::Positional)
}

/// The msgpack payload of one batch in the given layout.
pub fn encode_batch_with(batch: &EventBatch, layout: Layout) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64 + 16 * batch.events.len()));
    let named_events = layout != Layout::Positional;
    let dp = batch.data_parallel_rank;
    if layout == Layout::Named {
        w.map_len(2 + usize::from(dp.is_some()));
        w.str("ts");
        w.f64(batch.ts);
        w.str("events");
    } else {
        w.array_len(2 + usize::from(dp.is_some()));
        w.f64(batch.ts);
    }
    w.array_len(batch.events.len());
    for event in &batch.events {
        match event {
            KvEvent::BlockStored(e) => stored(&mut w, e, named_events),
            KvEvent::BlockRemoved(e) => removed(&mut w, e, named_events),
            KvEvent::AllBlocksCleared => tag_only(&mut w, "AllBlocksCleared", named_events),
            KvEvent::Unknown { tag } => tag_only(&mut w, tag, named_events),
        }
    }
    if let Some(rank) = dp {
        if layout == Layout::Named {
            w.str("data_parallel_rank");
        }
        w.i64(rank);
    }
    w.0
}

/// The three frames `[topic, seq (8 bytes big-endian), payload]` of the PUB socket.
pub fn encode_message(topic: &[u8], seq: u64, batch: &EventBatch) -> [Vec<u8>; 3] {
    [
        topic.to_vec(),
        seq.to_be_bytes().to_vec(),
        encode_batch(batch),
    ]
}

/// Writes a struct's fields as positional values or `name: value` map entries.
struct Fields<'w> {
    w: &'w mut Writer,
    named: bool,
}

impl Fields<'_> {
    fn begin<'w>(w: &'w mut Writer, named: bool, tag: &str, fields: usize) -> Fields<'w> {
        if named {
            w.map_len(1 + fields);
            w.str("type");
        } else {
            w.array_len(1 + fields);
        }
        w.str(tag);
        Fields { w, named }
    }

    fn name(&mut self, name: &str) -> &mut Writer {
        if self.named {
            self.w.str(name);
        }
        self.w
    }
}

fn stored(w: &mut Writer, e: &BlockStored, named: bool) {
    // Positional: lora_name only when a later field needs its slot or it is set; extra_keys
    // (always nil here) only to reach group_idx. Named: lora_name always, as vLLM does.
    let with_name = named || e.lora_name.is_some() || e.group_idx.is_some();
    let fields = 6
        + usize::from(with_name)
        + if e.group_idx.is_some() {
            1 + usize::from(!named)
        } else {
            0
        };
    let mut f = Fields::begin(w, named, "BlockStored", fields);
    f.name("block_hashes").hashes(&e.block_hashes);
    f.name("parent_block_hash")
        .opt_hash(e.parent_block_hash.as_ref());
    let w = f.name("token_ids");
    w.array_len(e.token_ids.len());
    for &token in &e.token_ids {
        w.u64(u64::from(token));
    }
    f.name("block_size").u64(u64::from(e.block_size));
    f.name("lora_id").opt_i64(e.lora_id);
    f.name("medium").opt_medium(e.medium.as_ref());
    if with_name {
        f.name("lora_name").opt_str(e.lora_name.as_deref());
    }
    if let Some(group) = e.group_idx {
        if !named {
            f.w.nil(); // extra_keys
        }
        f.name("group_idx").i64(group);
    }
}

fn removed(w: &mut Writer, e: &BlockRemoved, named: bool) {
    let fields = 2 + usize::from(e.group_idx.is_some());
    let mut f = Fields::begin(w, named, "BlockRemoved", fields);
    f.name("block_hashes").hashes(&e.block_hashes);
    f.name("medium").opt_medium(e.medium.as_ref());
    if let Some(group) = e.group_idx {
        f.name("group_idx").i64(group);
    }
}

fn tag_only(w: &mut Writer, tag: &str, named: bool) {
    Fields::begin(w, named, tag, 0);
}

/// An infallible msgpack writer into a `Vec<u8>`, smallest encodings first.
struct Writer(Vec<u8>);

impl Writer {
    fn nil(&mut self) {
        self.0.push(0xc0);
    }

    fn u64(&mut self, v: u64) {
        if v < 0x80 {
            self.0.push(v as u8);
        } else if v <= u64::from(u8::MAX) {
            self.0.extend_from_slice(&[0xcc, v as u8]);
        } else if v <= u64::from(u16::MAX) {
            self.0.push(0xcd);
            self.0.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= u64::from(u32::MAX) {
            self.0.push(0xce);
            self.0.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            self.0.push(0xcf);
            self.0.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn i64(&mut self, v: i64) {
        if v >= 0 {
            self.u64(v as u64);
        } else if v >= -32 {
            self.0.push(v as i8 as u8);
        } else if v >= i64::from(i8::MIN) {
            self.0.extend_from_slice(&[0xd0, v as i8 as u8]);
        } else if v >= i64::from(i16::MIN) {
            self.0.push(0xd1);
            self.0.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= i64::from(i32::MIN) {
            self.0.push(0xd2);
            self.0.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            self.0.push(0xd3);
            self.0.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn f64(&mut self, v: f64) {
        self.0.push(0xcb);
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn header(&mut self, len: usize, fix: Option<u8>, m8: Option<u8>, m16: u8, m32: u8) {
        match (fix, m8) {
            (Some(fix), _) if len < 16 || (fix == 0xa0 && len < 32) => self.0.push(fix | len as u8),
            (_, Some(m8)) if len <= usize::from(u8::MAX) => {
                self.0.extend_from_slice(&[m8, len as u8])
            }
            _ if len <= usize::from(u16::MAX) => {
                self.0.push(m16);
                self.0.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                self.0.push(m32);
                self.0.extend_from_slice(&(len as u32).to_be_bytes());
            }
        }
    }

    fn array_len(&mut self, len: usize) {
        self.header(len, Some(0x90), None, 0xdc, 0xdd);
    }

    fn map_len(&mut self, len: usize) {
        self.header(len, Some(0x80), None, 0xde, 0xdf);
    }

    fn str(&mut self, s: &str) {
        self.header(s.len(), Some(0xa0), Some(0xd9), 0xda, 0xdb);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn bin(&mut self, b: &[u8]) {
        self.header(b.len(), None, Some(0xc4), 0xc5, 0xc6);
        self.0.extend_from_slice(b);
    }

    fn hash(&mut self, h: &BlockHash) {
        match h {
            BlockHash::Int(v) => self.u64(*v),
            BlockHash::Bytes(b) => self.bin(b.as_bytes()),
        }
    }

    fn hashes(&mut self, hashes: &[BlockHash]) {
        self.array_len(hashes.len());
        for h in hashes {
            self.hash(h);
        }
    }

    fn opt_hash(&mut self, h: Option<&BlockHash>) {
        match h {
            Some(h) => self.hash(h),
            None => self.nil(),
        }
    }

    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.i64(v),
            None => self.nil(),
        }
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.nil(),
        }
    }

    fn opt_medium(&mut self, m: Option<&Medium>) {
        self.opt_str(m.map(Medium::as_str));
    }
}
