//! One entry of a producer's ordered pending queue: a message, a batch or a chunk, with what is
//! needed to (re)send it and to complete it.

use std::time::Instant;

use bytes::Bytes;
use pulsar_proto::pb;

use crate::handle::SendId;
use crate::write_buf::WriteBuf;

/// The application messages an entry completes.
#[derive(Debug)]
pub(super) enum Sends {
    /// A chunk before the last one of its message.
    None,
    /// One message (or the last chunk of one).
    One(SendId),
    /// A batch.
    Many(Vec<SendId>),
}

impl Sends {
    pub(super) fn len(&self) -> usize {
        match self {
            Sends::None => 0,
            Sends::One(_) => 1,
            Sends::Many(v) => v.len(),
        }
    }

    pub(super) fn first(&self) -> Option<SendId> {
        match self {
            Sends::None => None,
            Sends::One(s) => Some(*s),
            Sends::Many(v) => v.first().copied(),
        }
    }
}

/// A pending entry (written once the producer is registered, again after every reconnection).
#[derive(Debug)]
pub(super) struct Op {
    /// `CommandSend.sequence_id` (the first message's, for a batch; the message's, for a chunk).
    pub(super) seq: u64,
    /// The highest sequence id inside (a batch), else `seq`.
    pub(super) highest: u64,
    /// Messages in the batch (`None`: not a batch).
    pub(super) batch_size: Option<i32>,
    /// `CommandSend.is_chunk`.
    pub(super) is_chunk: bool,
    /// The metadata, with an empty `producer_name` (the producer's name is swapped in when
    /// writing, so no copy of it is kept per entry). Boxed: an entry is moved into the pending
    /// queue and out of it again, and with 1,000 one-message batches per millisecond (1,000
    /// producers on one connection) copying 450 bytes of metadata each time was the largest
    /// cost; the queue's entries stay at a few cache lines.
    pub(super) metadata: Box<pb::MessageMetadata>,
    /// The payload as sent (compressed; a slice of the message for a chunk).
    pub(super) payload: Bytes,
    pub(super) sends: Sends,
    /// Uncompressed payload bytes held for the application (memory accounting).
    pub(super) bytes: usize,
    /// When the oldest message inside was accepted (send timeout).
    pub(super) created: Instant,
    /// Written to a connection at least once (a resend after a reconnection is not counted
    /// again in the producer's statistics).
    pub(super) written: bool,
}

impl Op {
    /// Appends the SEND frame for this entry (a large payload by reference, see [`WriteBuf`]).
    pub(super) fn encode(&mut self, producer_id: u64, name: &mut String, out: &mut WriteBuf) {
        let send = pb::CommandSend {
            producer_id,
            sequence_id: self.seq,
            num_messages: self.batch_size,
            highest_sequence_id: (self.highest > self.seq).then_some(self.highest),
            is_chunk: self.is_chunk.then_some(true),
            txnid_least_bits: self.metadata.txnid_least_bits,
            txnid_most_bits: self.metadata.txnid_most_bits,
            ..Default::default()
        };
        std::mem::swap(&mut self.metadata.producer_name, name);
        out.put_send(&send, &self.metadata, &self.payload);
        std::mem::swap(&mut self.metadata.producer_name, name);
    }
}
