//! Encoding an unbatched message into the ops of the pending queue: compression, encryption, then
//! one entry or its chunks (each at most the broker's maximum frame, metadata included; each
//! chunk encrypted on its own).

use super::Part;
use super::CHUNK_HEADROOM;
use crate::compression::CompressionType;
use crate::crypto::ProducerCryptoFailureAction;
use crate::error::SendError;
use crate::handle::SendId;
use crate::producer::pending::Op;
use crate::producer::pending::Sends;
use crate::shared::Shared;
use bytes::Bytes;
use bytes::BytesMut;
use prost::Message as _;
use pulsar_proto::pb;
use std::time::Instant;

/// An unbatched message on its way into the pending queue.
#[derive(Debug)]
pub(super) struct Unbatched {
    pub(super) send: SendId,
    /// Its sequence id (the first chunk's and every other chunk's too).
    pub(super) seq: u64,
    pub(super) metadata: Box<pb::MessageMetadata>,
    /// The payload, not compressed yet.
    pub(super) payload: Bytes,
    /// Uncompressed payload bytes held for the application (memory accounting).
    pub(super) size: usize,
    /// When the application handed it over (send timeout).
    pub(super) at: Instant,
}

impl Part {
    /// Queues one unbatched message: one entry, or its chunks.
    pub(super) fn single_ops(
        &mut self,
        sh: &mut Shared,
        mut msg: Unbatched,
    ) -> Result<(), SendError> {
        msg.payload = self.compress(&mut msg.metadata, std::mem::take(&mut msg.payload))?;
        // encrypted whole; a message that must be chunked is encrypted chunk by chunk instead
        let plain = (self.cfg.chunking && self.cfg.encryption.is_some())
            .then(|| (msg.metadata.clone(), msg.payload.clone()));
        msg.payload = self.encrypt(msg.at, &mut msg.metadata, std::mem::take(&mut msg.payload))?;
        let max = self.max_message_size(sh);
        // producer_name is swapped in when writing: count it now (tag + length + bytes).
        let name = self.name.as_deref().map_or(0, str::len);
        let name_len = name + 1 + prost::encoding::encoded_len_varint(name as u64);
        let frame = msg.metadata.encoded_len() + name_len + msg.payload.len();
        // Chunks stay a little under the broker's limit: the bookie wraps each entry in its own
        // header, and a bookie whose frame limit equals the broker's maximum message size (5 MiB
        // in a default standalone) refuses an entry of exactly that size (then the broker retries
        // forever).
        let limit = self
            .cfg
            .chunk_max_size
            .unwrap_or(max)
            .min(max.saturating_sub(CHUNK_HEADROOM));
        if self.cfg.chunking && frame > limit {
            let mut extra = 0;
            if let Some((metadata, payload)) = plain {
                // what encryption adds to each chunk: the keys and IV, and the tag
                extra = (msg.metadata.encoded_len() + msg.payload.len())
                    .saturating_sub(metadata.encoded_len() + payload.len());
                (msg.metadata, msg.payload) = (metadata, payload);
            }
            return self.chunk_ops(sh, msg, limit, name_len + extra);
        }
        if frame > max {
            return Err(SendError::MessageTooBig { size: frame, max });
        }
        self.push_op(
            sh,
            Op {
                seq: msg.seq,
                highest: msg.seq,
                batch_size: None,
                is_chunk: false,
                metadata: msg.metadata,
                payload: msg.payload,
                sends: Sends::One(msg.send),
                bytes: msg.size,
                created: msg.at,
                written: false,
            },
        );
        Ok(())
    }

    /// Splits a (compressed) message into chunks of at most `limit` bytes of frame (metadata +
    /// payload), each encrypted on its own when the producer encrypts (as the Java client does);
    /// `extra` is what the producer's name (and the encryption) adds to each frame.
    fn chunk_ops(
        &mut self,
        sh: &mut Shared,
        msg: Unbatched,
        limit: usize,
        extra: usize,
    ) -> Result<(), SendError> {
        let Unbatched {
            send,
            seq,
            mut metadata,
            payload,
            size,
            at,
        } = msg;
        let total = payload.len();
        metadata.uuid = Some(format!(
            "{}-{}",
            self.name.as_deref().unwrap_or_default(),
            seq
        ));
        metadata.total_chunk_msg_size = Some(i32::try_from(total).unwrap_or(i32::MAX));
        // Upper bound of the chunk fields' size.
        metadata.num_chunks_from_msg = Some(i32::MAX);
        metadata.chunk_id = Some(i32::MAX);
        let overhead = metadata.encoded_len() + extra;
        let chunk = limit.saturating_sub(overhead);
        if chunk == 0 || i32::try_from(total).is_err() {
            return Err(SendError::MessageTooBig {
                size: total + overhead,
                max: limit,
            });
        }
        let count = total.div_ceil(chunk).max(1);
        let count_i32 = i32::try_from(count).unwrap_or(i32::MAX);
        metadata.num_chunks_from_msg = Some(count_i32);
        let mut ops = Vec::with_capacity(count);
        for i in 0..count {
            let start = i * chunk;
            let end = (start + chunk).min(total);
            let last = i + 1 == count;
            let mut m = metadata.clone();
            m.chunk_id = Some(i32::try_from(i).unwrap_or(i32::MAX));
            let payload = self.encrypt(at, &mut m, payload.slice(start..end))?;
            ops.push(Op {
                seq,
                highest: seq,
                batch_size: None,
                is_chunk: true,
                metadata: m,
                payload,
                sends: if last { Sends::One(send) } else { Sends::None },
                bytes: if last { size } else { 0 },
                created: at,
                written: false,
            });
        }
        for op in ops {
            self.push_op(sh, op);
        }
        Ok(())
    }

    /// Encrypts a (compressed) payload when the producer has an encryptor, which records the
    /// wrapped data keys and the IV in the metadata. When it cannot, the send fails, or under
    /// [`ProducerCryptoFailureAction::Send`] the payload goes unencrypted.
    pub(super) fn encrypt(
        &mut self,
        now: Instant,
        metadata: &mut pb::MessageMetadata,
        payload: Bytes,
    ) -> Result<Bytes, SendError> {
        let Some(encryptor) = self.cfg.encryption.as_ref() else {
            return Ok(payload);
        };
        match encryptor.encrypt(now, metadata, &payload) {
            Ok(sealed) => Ok(Bytes::from(sealed)),
            Err(_) if self.cfg.crypto_failure_action == ProducerCryptoFailureAction::Send => {
                // nothing of a failed encryption stays in the metadata
                metadata.encryption_keys.clear();
                metadata.encryption_param = None;
                metadata.encryption_algo = None;
                Ok(payload)
            }
            Err(e) => Err(SendError::Encryption(e)),
        }
    }

    /// Compresses a payload, recording the codec and original size in the metadata.
    pub(super) fn compress(
        &mut self,
        metadata: &mut pb::MessageMetadata,
        payload: Bytes,
    ) -> Result<Bytes, SendError> {
        let kind = self.cfg.compression;
        if kind == CompressionType::None {
            return Ok(payload);
        }
        let mut out = BytesMut::with_capacity(payload.len() / 2 + 64);
        self.codec
            .get_or_insert_with(Box::default)
            .compress(kind, &payload, &mut out)
            .map_err(SendError::Compression)?;
        metadata.compression = Some(kind.to_protocol());
        metadata.uncompressed_size = Some(u32::try_from(payload.len()).unwrap_or(u32::MAX));
        Ok(out.freeze())
    }
}
