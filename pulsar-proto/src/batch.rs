//! Batch container: the (decompressed) payload of a batched message is a sequence of
//! `[u32 size][SingleMessageMetadata][payload of metadata.payload_size bytes]` entries.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::pb;

/// Appends one batch entry.
///
/// `meta.payload_size` must equal `payload.len()`; it is written as given.
pub fn encode_entry(meta: &pb::SingleMessageMetadata, payload: &[u8], out: &mut BytesMut) {
    debug_assert_eq!(
        usize::try_from(meta.payload_size).ok(),
        Some(payload.len()),
        "SingleMessageMetadata.payload_size must match the payload length"
    );
    let meta_len = crate::fast::single_message_metadata_len(meta);
    out.reserve(4 + meta_len + payload.len());
    out.put_u32(meta_len as u32);
    crate::fast::append_single_message_metadata(meta, meta_len, out);
    out.put_slice(payload);
}

/// Splits a batch payload into its `count` entries (`MessageMetadata.num_messages_in_batch`).
///
/// Entries borrow `payload` (no copy). The iterator yields at most `count` items and stops after
/// the first error. Bytes left after the last entry are ignored.
pub fn split(payload: Bytes, count: u32) -> BatchEntries {
    BatchEntries {
        rest: payload,
        index: 0,
        count,
        failed: false,
    }
}

/// One entry of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEntry {
    /// The entry's metadata.
    pub metadata: pb::SingleMessageMetadata,
    /// The entry's payload: a slice of the batch payload, not a copy.
    pub payload: Bytes,
}

/// Why a batch could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A size points past the end of the batch payload.
    #[error("batch entry {index}: needs {needed} bytes but only {available} remain")]
    Truncated {
        /// Index of the entry in the batch.
        index: u32,
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// The entry's `SingleMessageMetadata` is malformed.
    #[error("batch entry {index}: malformed metadata: {source}")]
    Protobuf {
        /// Index of the entry in the batch.
        index: u32,
        /// The protobuf decoder's error.
        #[source]
        source: prost::DecodeError,
    },
    /// The entry's `payload_size` is negative.
    #[error("batch entry {index}: negative payload size {size}")]
    NegativePayloadSize {
        /// Index of the entry in the batch.
        index: u32,
        /// The size found.
        size: i32,
    },
}

/// Iterator over the entries of a batch; see [`split`].
#[derive(Debug, Clone)]
pub struct BatchEntries {
    rest: Bytes,
    index: u32,
    count: u32,
    failed: bool,
}

impl BatchEntries {
    /// Bytes not yet consumed by the entries returned so far.
    pub fn remaining(&self) -> &Bytes {
        &self.rest
    }

    fn next_entry(&mut self) -> Result<BatchEntry, BatchError> {
        let index = self.index;
        let available = self.rest.len();
        let Some(size_bytes) = self.rest.get(..4) else {
            return Err(BatchError::Truncated {
                index,
                needed: 4,
                available,
            });
        };
        let meta_len = size_bytes
            .try_into()
            .map(u32::from_be_bytes)
            .unwrap_or_default() as usize;
        let meta_end = 4usize.saturating_add(meta_len);
        let Some(meta_bytes) = self.rest.get(4..meta_end) else {
            return Err(BatchError::Truncated {
                index,
                needed: meta_len,
                available: available - 4,
            });
        };
        let metadata = crate::fast::decode_single_message_metadata(meta_bytes)
            .map_err(|source| BatchError::Protobuf { index, source })?;
        let size = metadata.payload_size;
        let payload_len =
            usize::try_from(size).map_err(|_| BatchError::NegativePayloadSize { index, size })?;
        let entry_end = meta_end.saturating_add(payload_len);
        if entry_end > available {
            return Err(BatchError::Truncated {
                index,
                needed: payload_len,
                available: available - meta_end,
            });
        }
        let payload = self.rest.slice(meta_end..entry_end);
        self.rest.advance(entry_end);
        Ok(BatchEntry { metadata, payload })
    }
}

impl Iterator for BatchEntries {
    type Item = Result<BatchEntry, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.index >= self.count {
            return None;
        }
        let entry = self.next_entry();
        self.index += 1;
        if entry.is_err() {
            self.failed = true;
        }
        Some(entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.failed {
            return (0, Some(0));
        }
        let left = (self.count - self.index) as usize;
        // Every entry takes at least 4 bytes, so a short buffer bounds the count too; one more
        // item may be an error.
        (0, Some(left.min(self.rest.len() / 4 + 1)))
    }
}

impl std::iter::FusedIterator for BatchEntries {}
