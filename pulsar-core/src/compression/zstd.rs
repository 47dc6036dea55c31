//! Zstandard frames (compression level 3, as the Java and C++ clients use).

use super::{append_with, CompressOutput, CompressionError, CompressionType};

const CODEC: CompressionType = CompressionType::Zstd;

/// The level the reference clients compress at.
const LEVEL: i32 = 3;

/// Reusable zstd compression and decompression contexts, built on first use.
#[derive(Default)]
pub(super) struct ZstdState {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl ZstdState {
    /// Appends one zstd frame holding `input` to `out`.
    pub(super) fn compress<B>(&mut self, input: &[u8], out: &mut B) -> Result<(), CompressionError>
    where
        B: CompressOutput + ?Sized,
    {
        let compressor = match &mut self.compressor {
            Some(c) => c,
            slot => slot.insert(zstd::bulk::Compressor::new(LEVEL).map_err(compress_failed)?),
        };
        let max = zstd::zstd_safe::compress_bound(input.len());
        append_with(out, CODEC, max, |room| {
            compressor
                .compress_to_buffer(input, room)
                .map_err(compress_failed)
        })
    }

    /// Decodes `input` into `out`, which it must fill exactly.
    pub(super) fn decompress_exact(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(), CompressionError> {
        let declared = out.len();
        let decompressor = match &mut self.decompressor {
            Some(d) => d,
            slot => slot.insert(zstd::bulk::Decompressor::new().map_err(corrupt)?),
        };
        // Single-shot decoding writes straight into `out`: no window buffer sized by the frame
        // header is allocated, so a frame cannot make us allocate more than `declared`.
        match decompressor.decompress_to_buffer(input, out) {
            Ok(n) if n == declared => Ok(()),
            Ok(actual) => Err(CompressionError::SizeMismatch {
                codec: CODEC,
                declared,
                actual,
            }),
            Err(e) => Err(corrupt(e)),
        }
    }
}

/// A single frame that records its content size must record the declared one; checked before
/// the output is allocated.
pub(super) fn precheck(input: &[u8], declared: usize) -> Result<(), CompressionError> {
    let single_frame = matches!(
        zstd::zstd_safe::find_frame_compressed_size(input),
        Ok(len) if len == input.len()
    );
    if !single_frame {
        // Several frames, or garbage: the decoder decides.
        return Ok(());
    }
    match zstd::zstd_safe::get_frame_content_size(input) {
        Ok(Some(size)) if size != declared as u64 => Err(CompressionError::SizeMismatch {
            codec: CODEC,
            declared,
            actual: usize::try_from(size).unwrap_or(usize::MAX),
        }),
        _ => Ok(()),
    }
}

fn corrupt(e: std::io::Error) -> CompressionError {
    CompressionError::Corrupt {
        codec: CODEC,
        detail: e.to_string(),
    }
}

fn compress_failed(e: std::io::Error) -> CompressionError {
    CompressionError::CompressFailed {
        codec: CODEC,
        detail: e.to_string(),
    }
}
