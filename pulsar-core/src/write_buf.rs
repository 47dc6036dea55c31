//! A connection's outgoing bytes: frames encoded into one buffer, and large payloads handed out
//! by reference between them rather than copied into it.
//!
//! A `SEND` frame whose payload is at least [`BORROWED_PAYLOAD`] bytes is written as its head
//! (everything up to the payload, checksum included) into the buffer; the buffer so far and then
//! the payload (a clone of the pending entry's `Bytes`, which stays for a resend) become chunks of
//! their own, and [`Client::poll_transmit`](crate::Client::poll_transmit) hands them out in order.
//! A runtime writes consecutive chunks with one vectored write, so a large payload reaches the
//! socket without the copy into the write buffer.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use pulsar_proto::{encode_send, encode_send_head, pb};

/// Payloads from this size on are referenced instead of copied into the write buffer. Below it
/// the copy costs less than the extra chunk (a reference count, one more slice in the vectored
/// write).
pub(crate) const BORROWED_PAYLOAD: usize = 8 * 1024;

/// See the [module documentation](self).
#[derive(Debug, Default)]
pub(crate) struct WriteBuf {
    /// Chunks to hand out before `buf`, in order.
    chunks: VecDeque<Bytes>,
    /// The frames encoded after the last chunk.
    buf: BytesMut,
}

impl WriteBuf {
    /// The buffer to append whole frames to.
    pub(crate) fn buf(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Nothing to write.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.buf.is_empty()
    }

    /// Appends a `SEND` frame; a large `payload` is referenced, not copied.
    pub(crate) fn put_send(
        &mut self,
        send: &pb::CommandSend,
        metadata: &pb::MessageMetadata,
        payload: &Bytes,
    ) {
        if payload.len() < BORROWED_PAYLOAD {
            encode_send(send, metadata, payload, &mut self.buf);
            return;
        }
        encode_send_head(send, metadata, payload, &mut self.buf);
        self.chunks.push_back(self.buf.split().freeze());
        self.chunks.push_back(payload.clone());
    }

    /// The next chunk to write, in order.
    pub(crate) fn take(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Some(chunk);
        }
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(seq: u64) -> pb::CommandSend {
        pb::CommandSend {
            producer_id: 1,
            sequence_id: seq,
            ..Default::default()
        }
    }

    fn metadata(seq: u64) -> pb::MessageMetadata {
        pb::MessageMetadata {
            producer_name: "p".into(),
            sequence_id: seq,
            publish_time: 1,
            ..Default::default()
        }
    }

    /// Everything handed out, concatenated, and the number of chunks.
    fn drain(w: &mut WriteBuf) -> (Vec<u8>, usize) {
        let mut all = Vec::new();
        let mut n = 0;
        while let Some(chunk) = w.take() {
            assert!(!chunk.is_empty());
            all.extend_from_slice(&chunk);
            n += 1;
        }
        assert!(w.is_empty());
        (all, n)
    }

    #[test]
    fn a_large_payload_is_referenced_and_the_bytes_are_those_of_the_copied_frames() {
        let small = Bytes::from(vec![1u8; 100]);
        let large = Bytes::from(vec![2u8; BORROWED_PAYLOAD]);
        let mut w = WriteBuf::default();
        let mut expected = BytesMut::new();
        w.put_send(&send(1), &metadata(1), &small);
        encode_send(&send(1), &metadata(1), &small, &mut expected);
        w.put_send(&send(2), &metadata(2), &large);
        encode_send(&send(2), &metadata(2), &large, &mut expected);
        w.put_send(&send(3), &metadata(3), &small);
        encode_send(&send(3), &metadata(3), &small, &mut expected);

        // [frame 1 + head 2] [payload 2, the same allocation] [frame 3]
        assert_eq!(w.chunks.len(), 2);
        assert_eq!(w.chunks.get(1).map(|c| c.as_ptr()), Some(large.as_ptr()));
        let (all, chunks) = drain(&mut w);
        assert_eq!(chunks, 3);
        assert_eq!(all, expected.as_ref());
        assert_eq!(w.take(), None);
    }

    #[test]
    fn a_payload_below_the_threshold_is_copied_into_one_chunk() {
        let payload = Bytes::from(vec![3u8; BORROWED_PAYLOAD - 1]);
        let mut w = WriteBuf::default();
        w.put_send(&send(1), &metadata(1), &payload);
        w.put_send(&send(2), &metadata(2), &payload);
        let (_, chunks) = drain(&mut w);
        assert_eq!(chunks, 1);
    }
}
