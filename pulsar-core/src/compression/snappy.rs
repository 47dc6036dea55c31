//! Snappy raw block format (a varint of the uncompressed length, then the elements), as
//! `snappy::Compress` and airlift's `SnappyRawCompressor` produce it. Not the framed stream format.

use super::{append_with, CompressOutput, CompressionError, CompressionType};

const CODEC: CompressionType = CompressionType::Snappy;

/// Reusable Snappy encoder (it owns its hash table).
#[derive(Default)]
pub(super) struct SnappyState {
    encoder: Option<snap::raw::Encoder>,
}

impl SnappyState {
    /// Appends the Snappy block for `input` to `out`.
    pub(super) fn compress<B>(&mut self, input: &[u8], out: &mut B) -> Result<(), CompressionError>
    where
        B: CompressOutput + ?Sized,
    {
        let max = snap::raw::max_compress_len(input.len());
        if max == 0 {
            return Err(CompressionError::CompressFailed {
                codec: CODEC,
                detail: format!("input of {} bytes is too large for Snappy", input.len()),
            });
        }
        let encoder = self.encoder.get_or_insert_with(snap::raw::Encoder::new);
        append_with(out, CODEC, max, |room| {
            encoder
                .compress(input, room)
                .map_err(|e| CompressionError::CompressFailed {
                    codec: CODEC,
                    detail: e.to_string(),
                })
        })
    }
}

/// The block starts with its uncompressed length: compare it with the declared one before
/// allocating anything.
pub(super) fn precheck(input: &[u8], declared: usize) -> Result<(), CompressionError> {
    match snap::raw::decompress_len(input) {
        Ok(actual) if actual == declared => Ok(()),
        Ok(actual) => Err(CompressionError::SizeMismatch {
            codec: CODEC,
            declared,
            actual,
        }),
        Err(e) => Err(corrupt(e)),
    }
}

/// Decodes the block `input` into `out`, which it must fill exactly.
pub(super) fn decompress_exact(input: &[u8], out: &mut [u8]) -> Result<(), CompressionError> {
    let declared = out.len();
    // Re-read the header here too: the decoder only needs `out` to be at least as long as it.
    precheck(input, declared)?;
    if input.is_empty() {
        // Not even a length header: a valid empty block is the single byte 0.
        return Err(CompressionError::Corrupt {
            codec: CODEC,
            detail: "empty input".into(),
        });
    }
    match snap::raw::Decoder::new().decompress(input, out) {
        Ok(n) if n == declared => Ok(()),
        Ok(actual) => Err(CompressionError::SizeMismatch {
            codec: CODEC,
            declared,
            actual,
        }),
        Err(e) => Err(corrupt(e)),
    }
}

fn corrupt(e: snap::Error) -> CompressionError {
    CompressionError::Corrupt {
        codec: CODEC,
        detail: e.to_string(),
    }
}
