//! A zero-copy msgpack cursor over a byte slice: just the value kinds vLLM's events use, plus an
//! iterative skip for anything else.
//!
//! Every length prefix is checked against the bytes that remain before anything is sized from it
//! (each element of an array takes at least one byte, each map entry two), so a claimed length
//! can never make the caller allocate more than the input could fill. Errors name the field being
//! read; the caller passes it in as a `&'static str`.

use crate::error::DecodeError;

/// An integer as msgpack carried it: unsigned (any positive encoding) or signed (negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Int {
    Unsigned(u64),
    Signed(i64),
}

/// The first byte of a value, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Nil,
    Bool,
    Int,
    Float,
    Str,
    Bin,
    Array,
    Map,
    Ext,
    /// 0xc1, never valid.
    Reserved,
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.buf.len());
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn truncated(field: &'static str) -> DecodeError {
        DecodeError::Malformed {
            field,
            detail: "truncated",
        }
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(Self::truncated(field))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let end = end.ok_or(Self::truncated(field))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn be<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn len8(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        Ok(usize::from(self.byte(field)?))
    }

    fn len16(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        Ok(usize::from(u16::from_be_bytes(self.be(field)?)))
    }

    fn len32(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        usize::try_from(u32::from_be_bytes(self.be(field)?))
            .map_err(|_| DecodeError::TooLarge { what: field })
    }

    /// The kind of the next value, without consuming it.
    pub(crate) fn peek_kind(&self, field: &'static str) -> Result<Kind, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(Self::truncated(field))?;
        Ok(kind_of(b))
    }

    /// Consumes a nil if one is next; `true` when it did.
    pub(crate) fn eat_nil(&mut self) -> bool {
        if self.buf.get(self.pos) == Some(&0xc0) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// An array header; the length is at most the bytes that remain.
    pub(crate) fn array_len(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<usize, DecodeError> {
        let b = self.byte(field)?;
        let n = match b {
            0x90..=0x9f => usize::from(b & 0x0f),
            0xdc => self.len16(field)?,
            0xdd => self.len32(field)?,
            _ => {
                self.pos -= 1;
                return Err(DecodeError::WrongType { field, expected });
            }
        };
        if n > self.remaining() {
            return Err(Self::truncated(field));
        }
        Ok(n)
    }

    /// A map header; the entry count is at most half the bytes that remain.
    pub(crate) fn map_len(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<usize, DecodeError> {
        let b = self.byte(field)?;
        let n = match b {
            0x80..=0x8f => usize::from(b & 0x0f),
            0xde => self.len16(field)?,
            0xdf => self.len32(field)?,
            _ => {
                self.pos -= 1;
                return Err(DecodeError::WrongType { field, expected });
            }
        };
        if n > self.remaining() / 2 {
            return Err(Self::truncated(field));
        }
        Ok(n)
    }

    /// Any msgpack integer.
    #[inline]
    pub(crate) fn int(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<Int, DecodeError> {
        let b = self.byte(field)?;
        let value = match b {
            0x00..=0x7f => Int::Unsigned(u64::from(b)),
            0xe0..=0xff => Int::Signed(i64::from(b as i8)),
            0xcc => Int::Unsigned(u64::from(self.byte(field)?)),
            0xcd => Int::Unsigned(u64::from(u16::from_be_bytes(self.be(field)?))),
            0xce => Int::Unsigned(u64::from(u32::from_be_bytes(self.be(field)?))),
            0xcf => Int::Unsigned(u64::from_be_bytes(self.be(field)?)),
            0xd0 => Int::Signed(i64::from(i8::from_be_bytes(self.be(field)?))),
            0xd1 => Int::Signed(i64::from(i16::from_be_bytes(self.be(field)?))),
            0xd2 => Int::Signed(i64::from(i32::from_be_bytes(self.be(field)?))),
            0xd3 => Int::Signed(i64::from_be_bytes(self.be(field)?)),
            _ => {
                self.pos -= 1;
                return Err(DecodeError::WrongType { field, expected });
            }
        };
        Ok(value)
    }

    /// Appends `n` unsigned integers that fit `u32` (token ids) to `out`, on a local cursor
    /// (the hot loop of intake). Stops at the first value that is not one, or at the end of the
    /// input, and returns `false` with the reader on that value.
    #[inline]
    pub(crate) fn u32s(&mut self, n: usize, out: &mut Vec<u32>) -> bool {
        let buf = self.buf;
        let mut pos = self.pos;
        let mut ok = true;
        for _ in 0..n {
            let Some(rest) = buf.get(pos..pos.saturating_add(5).min(buf.len())) else {
                ok = false;
                break;
            };
            let (value, used) = match rest {
                [b @ 0x00..=0x7f, ..] => (u32::from(*b), 1),
                [0xcc, b, ..] => (u32::from(*b), 2),
                [0xcd, b0, b1, ..] => (u32::from(u16::from_be_bytes([*b0, *b1])), 3),
                [0xce, b0, b1, b2, b3] => (u32::from_be_bytes([*b0, *b1, *b2, *b3]), 5),
                _ => {
                    ok = false;
                    break;
                }
            };
            out.push(value);
            pos += used;
        }
        self.pos = pos;
        ok
    }

    /// A float (32 or 64 bit) or an integer, as `f64`.
    pub(crate) fn number(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<f64, DecodeError> {
        match self.peek_kind(field)? {
            Kind::Float => {
                let b = self.byte(field)?;
                if b == 0xca {
                    Ok(f64::from(f32::from_be_bytes(self.be(field)?)))
                } else {
                    Ok(f64::from_be_bytes(self.be(field)?))
                }
            }
            Kind::Int => match self.int(field, expected)? {
                Int::Unsigned(v) => Ok(v as f64),
                Int::Signed(v) => Ok(v as f64),
            },
            _ => Err(DecodeError::WrongType { field, expected }),
        }
    }

    /// A UTF-8 string, borrowed from the input.
    pub(crate) fn str(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<&'a str, DecodeError> {
        let b = self.byte(field)?;
        let n = match b {
            0xa0..=0xbf => usize::from(b & 0x1f),
            0xd9 => self.len8(field)?,
            0xda => self.len16(field)?,
            0xdb => self.len32(field)?,
            _ => {
                self.pos -= 1;
                return Err(DecodeError::WrongType { field, expected });
            }
        };
        let bytes = self.take(n, field)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::Malformed {
            field,
            detail: "invalid UTF-8",
        })
    }

    /// A bin value, borrowed from the input.
    pub(crate) fn bin(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let b = self.byte(field)?;
        let n = match b {
            0xc4 => self.len8(field)?,
            0xc5 => self.len16(field)?,
            0xc6 => self.len32(field)?,
            _ => {
                self.pos -= 1;
                return Err(DecodeError::WrongType { field, expected });
            }
        };
        self.take(n, field)
    }

    /// Skips one value of any kind, nested or not, without recursion: a count of values still
    /// to skip grows by an array's length (twice a map's) and shrinks by one per value read.
    pub(crate) fn skip(&mut self, field: &'static str) -> Result<(), DecodeError> {
        let mut pending: usize = 1;
        while pending > 0 {
            pending -= 1;
            let b = self.byte(field)?;
            let (children, payload) = match b {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
                0x80..=0x8f => (2 * usize::from(b & 0x0f), 0),
                0x90..=0x9f => (usize::from(b & 0x0f), 0),
                0xa0..=0xbf => (0, usize::from(b & 0x1f)),
                0xc1 => {
                    return Err(DecodeError::Malformed {
                        field,
                        detail: "reserved byte 0xc1",
                    });
                }
                0xc4 | 0xd9 => (0, self.len8(field)?),
                0xc5 | 0xda => (0, self.len16(field)?),
                0xc6 | 0xdb => (0, self.len32(field)?),
                0xc7 => (0, self.len8(field)? + 1),
                0xc8 => (0, self.len16(field)? + 1),
                0xc9 => (0, self.len32(field)?.saturating_add(1)),
                0xca => (0, 4),
                0xcb => (0, 8),
                0xcc | 0xd0 => (0, 1),
                0xcd | 0xd1 => (0, 2),
                0xce | 0xd2 => (0, 4),
                0xcf | 0xd3 => (0, 8),
                0xd4 => (0, 2),
                0xd5 => (0, 3),
                0xd6 => (0, 5),
                0xd7 => (0, 9),
                0xd8 => (0, 17),
                0xdc => (self.len16(field)?, 0),
                0xdd => (self.len32(field)?, 0),
                0xde => (self.len16(field)?.saturating_mul(2), 0),
                0xdf => (self.len32(field)?.saturating_mul(2), 0),
            };
            self.take(payload, field)?;
            pending = pending.saturating_add(children);
            // Every pending value needs at least one more byte.
            if pending > self.remaining() {
                return Err(Self::truncated(field));
            }
        }
        Ok(())
    }
}

fn kind_of(b: u8) -> Kind {
    match b {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => Kind::Int,
        0x80..=0x8f | 0xde | 0xdf => Kind::Map,
        0x90..=0x9f | 0xdc | 0xdd => Kind::Array,
        0xa0..=0xbf | 0xd9..=0xdb => Kind::Str,
        0xc0 => Kind::Nil,
        0xc1 => Kind::Reserved,
        0xc2 | 0xc3 => Kind::Bool,
        0xc4..=0xc6 => Kind::Bin,
        0xc7..=0xc9 | 0xd4..=0xd8 => Kind::Ext,
        0xca | 0xcb => Kind::Float,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_handles_nesting_and_rejects_overclaimed_lengths() {
        // [[1, {"a": nil}], "xy"] followed by 7
        let bytes = [
            0x92, 0x92, 0x01, 0x81, 0xa1, b'a', 0xc0, 0xa2, b'x', b'y', 0x07,
        ];
        let mut r = Reader::new(&bytes);
        r.skip("v").expect("well-formed");
        assert_eq!(r.int("v", "int").expect("int"), Int::Unsigned(7));
        // An array claiming 2^32-1 elements in a 5-byte input.
        let mut r = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.skip("v").map_err(|e| e.reason()), Err("malformed"));
        let mut r = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            r.array_len("v", "array").map_err(|e| e.reason()),
            Err("malformed")
        );
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut bytes = vec![0x91; 1_000_000];
        bytes.push(0xc0);
        let mut r = Reader::new(&bytes);
        r.skip("v").expect("deep but well-formed");
        assert_eq!(r.remaining(), 0);
    }
}
