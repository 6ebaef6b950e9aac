//! Hand-built msgpack with the `rmp` encoder functions, independent of this crate's encoder.
#![allow(dead_code)]

use rmp::encode as enc;

#[derive(Default)]
pub struct Mp(pub Vec<u8>);

impl Mp {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn arr(mut self, n: u32) -> Self {
        enc::write_array_len(&mut self.0, n).expect("vec");
        self
    }
    pub fn map(mut self, n: u32) -> Self {
        enc::write_map_len(&mut self.0, n).expect("vec");
        self
    }
    pub fn s(mut self, v: &str) -> Self {
        enc::write_str(&mut self.0, v).expect("vec");
        self
    }
    pub fn u(mut self, v: u64) -> Self {
        enc::write_uint(&mut self.0, v).expect("vec");
        self
    }
    /// Always the 9-byte uint64 form.
    pub fn u64(mut self, v: u64) -> Self {
        enc::write_u64(&mut self.0, v).expect("vec");
        self
    }
    pub fn i(mut self, v: i64) -> Self {
        enc::write_sint(&mut self.0, v).expect("vec");
        self
    }
    pub fn f(mut self, v: f64) -> Self {
        enc::write_f64(&mut self.0, v).expect("vec");
        self
    }
    pub fn f32(mut self, v: f32) -> Self {
        enc::write_f32(&mut self.0, v).expect("vec");
        self
    }
    pub fn nil(mut self) -> Self {
        enc::write_nil(&mut self.0).expect("vec");
        self
    }
    pub fn bin(mut self, v: &[u8]) -> Self {
        enc::write_bin(&mut self.0, v).expect("vec");
        self
    }
    pub fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    pub fn ints(mut self, v: &[u64]) -> Self {
        self = self.arr(v.len() as u32);
        for &x in v {
            self = self.u(x);
        }
        self
    }
    pub fn done(self) -> Vec<u8> {
        self.0
    }
}

/// `[ts, [events...], dp]` with the events' bytes given.
pub fn batch3(events: &[Vec<u8>], dp: Option<i64>) -> Vec<u8> {
    let mut m = Mp::new().arr(3).f(1.5).arr(events.len() as u32);
    for e in events {
        m = m.raw(e);
    }
    match dp {
        Some(d) => m.i(d).done(),
        None => m.nil().done(),
    }
}

/// `["BlockStored", [hashes], parent, [tokens], block_size, lora_id=nil, medium="GPU"]`.
pub fn stored_gpu(hashes: &[u64], parent: Option<u64>, tokens: &[u64], block_size: u64) -> Vec<u8> {
    let m = Mp::new().arr(7).s("BlockStored").ints(hashes);
    let m = match parent {
        Some(p) => m.u(p),
        None => m.nil(),
    };
    m.ints(tokens).u(block_size).nil().s("GPU").done()
}
