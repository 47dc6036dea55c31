//! Protobuf wire primitives for the hand-written codecs: a reader that gives up (returns `None`)
//! on anything it does not understand, and a writer over a slice sized in advance.

/// Key of a field: `(number << 3) | wire_type`.
pub(crate) const fn key(field: u64, wire_type: u64) -> u64 {
    (field << 3) | wire_type
}

/// Wire type of varint fields.
pub(crate) const VARINT: u64 = 0;
/// Wire type of length-delimited fields (strings, bytes, messages).
pub(crate) const LEN: u64 = 2;

/// Reads protobuf fields from a byte slice. Every method returns `None` when the input is not
/// what the fast path expects (truncated, overlong varint, invalid UTF-8); callers then let
/// prost decode the whole message, so its verdict (value or error) is the one reported.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    #[inline(always)]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Whether every byte has been read.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A varint, with prost's limits: at most 10 bytes, the tenth at most 1.
    #[inline(always)]
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let (&first, rest) = self.buf.split_first()?;
        if first < 0x80 {
            self.buf = rest;
            return Some(u64::from(first));
        }
        let (value, len) = varint_tail(self.buf)?;
        self.buf = self.buf.get(len..)?;
        Some(value)
    }

    /// A length-delimited field's content.
    #[inline(always)]
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Some(head)
    }

    /// A string field (valid UTF-8 only).
    #[inline(always)]
    pub(crate) fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(String::from)
    }

    /// A string field (valid UTF-8 only) written into `field`, which is either empty or holds
    /// an earlier value of the same field. On the field's first occurrence (`field` without
    /// capacity) `field` takes `previous` (a valid string, typically the previous frame's
    /// value); bytes equal to the value held need no UTF-8 check and no copy.
    #[inline(always)]
    pub(crate) fn string_into(&mut self, field: &mut String, previous: &mut String) -> Option<()> {
        let bytes = self.bytes()?;
        if field.capacity() == 0 {
            std::mem::swap(field, previous);
        }
        if field.as_bytes() != bytes {
            let text = std::str::from_utf8(bytes).ok()?;
            if field.capacity() < text.len() {
                *field = String::from(text);
            } else {
                field.clear();
                field.push_str(text);
            }
        }
        Some(())
    }

    /// A `bytes` field, copied out as prost does when decoding from a slice.
    #[inline(always)]
    pub(crate) fn owned_bytes(&mut self) -> Option<bytes::Bytes> {
        self.bytes().map(bytes::Bytes::copy_from_slice)
    }

    /// A nested message's content, as a reader of its own.
    #[inline(always)]
    pub(crate) fn message(&mut self) -> Option<Reader<'a>> {
        self.bytes().map(Reader::new)
    }
}

/// Decodes a varint of two bytes or more at the start of `buf`: its value and length.
#[inline(never)]
fn varint_tail(buf: &[u8]) -> Option<(u64, usize)> {
    match buf.first_chunk::<10>() {
        // Ten bytes readable: no bounds checks in the loop.
        Some(chunk) => varint_bytes(chunk.iter()),
        None => varint_bytes(buf.iter().take(10)),
    }
}

#[inline(always)]
fn varint_bytes<'a>(bytes: impl Iterator<Item = &'a u8>) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.enumerate() {
        if i == 9 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Bytes a varint takes.
#[inline(always)]
pub(crate) const fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits, at least 1.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes of slack a [`Writer`]'s buffer should have past the end of what is written, so that
/// varints and fixed-width values are stored as whole chunks (the bytes past the end are
/// scratch, overwritten or cut off afterwards).
pub(crate) const SLACK: usize = 16;

/// Writes into a slice sized in advance from the `*_len` functions, plus [`SLACK`] bytes.
/// Writes that do not fit are dropped (the lengths are computed from the same fields; debug
/// builds assert that they agree).
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    #[inline(always)]
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    #[inline(always)]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The next `N` bytes of the buffer, if that many remain.
    #[inline(always)]
    fn chunk<const N: usize>(&mut self) -> Option<&mut [u8; N]> {
        self.buf.get_mut(self.pos..)?.first_chunk_mut::<N>()
    }

    /// One byte.
    #[inline(always)]
    pub(crate) fn u8(&mut self, byte: u8) {
        if let Some(slot) = self.buf.get_mut(self.pos) {
            *slot = byte;
        }
        self.pos += 1;
    }

    /// Raw bytes.
    #[inline(always)]
    pub(crate) fn slice(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        if let Some(slot) = self.buf.get_mut(self.pos..end) {
            slot.copy_from_slice(bytes);
        }
        self.pos = end;
    }

    /// Fixed bytes.
    #[inline(always)]
    pub(crate) fn array<const N: usize>(&mut self, bytes: [u8; N]) {
        match self.chunk::<N>() {
            Some(chunk) => {
                *chunk = bytes;
                self.pos += N;
            }
            None => self.slice(&bytes),
        }
    }

    /// A message encoded by prost, `len` bytes long (its `encoded_len`).
    #[inline(always)]
    pub(crate) fn prost(&mut self, message: &impl prost::Message, len: usize) {
        let end = self.pos + len;
        if let Some(mut slot) = self.buf.get_mut(self.pos..end) {
            message.encode_raw(&mut slot);
            debug_assert!(slot.is_empty(), "encoded length disagrees with the bytes");
        }
        self.pos = end;
    }

    /// A big-endian `u32`.
    #[inline(always)]
    pub(crate) fn u32_be(&mut self, value: u32) {
        self.array(value.to_be_bytes());
    }

    /// A big-endian `u16`.
    #[inline(always)]
    pub(crate) fn u16_be(&mut self, value: u16) {
        self.array(value.to_be_bytes());
    }

    /// A varint.
    #[inline(always)]
    pub(crate) fn varint(&mut self, value: u64) {
        if value < 0x80 {
            self.u8(value as u8);
            return;
        }
        let mut bytes = [0u8; 10];
        let mut rest = value;
        let mut n = 0;
        for byte in bytes.iter_mut() {
            n += 1;
            if rest < 0x80 {
                *byte = rest as u8;
                break;
            }
            *byte = (rest as u8) | 0x80;
            rest >>= 7;
        }
        match self.chunk::<10>() {
            Some(chunk) => {
                *chunk = bytes;
                self.pos += n;
            }
            None => self.slice(bytes.get(..n).unwrap_or_default()),
        }
    }

    /// A field key (any number).
    #[inline(always)]
    pub(crate) fn key(&mut self, key: u64) {
        self.varint(key);
    }

    /// A varint field.
    #[inline(always)]
    pub(crate) fn varint_field(&mut self, key: u64, value: u64) {
        self.key(key);
        self.varint(value);
    }

    /// A length-delimited field.
    #[inline(always)]
    pub(crate) fn bytes_field(&mut self, key: u64, bytes: &[u8]) {
        self.key(key);
        self.varint(bytes.len() as u64);
        self.slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_matches_prost() {
        for shift in 0..64 {
            for value in [
                1u64 << shift,
                (1u64 << shift) - 1,
                (1u64 << shift) + 1,
                0,
                u64::MAX,
            ] {
                assert_eq!(
                    varint_len(value),
                    prost::encoding::encoded_len_varint(value),
                    "{value}"
                );
            }
        }
    }

    #[test]
    fn varints_read_as_prost_reads_them() {
        let cases: &[&[u8]] = &[
            &[0x00],
            &[0x7f],
            &[0x80, 0x01],
            &[0x80, 0x00],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0x01,
            ],
            &[0x80],
            &[],
        ];
        for case in cases {
            let ours = Reader::new(case).varint();
            let theirs = prost::encoding::decode_varint(&mut &case[..]).ok();
            assert_eq!(ours, theirs, "{case:?}");
        }
    }
}
