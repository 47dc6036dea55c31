//! LZ4 raw block format, as `LZ4_compress_default` / `LZ4_decompress_*` and airlift's
//! `Lz4RawCompressor` produce and read it: no frame, no length prefix.

use super::{append_with, CompressOutput, CompressionError, CompressionType};

const CODEC: CompressionType = CompressionType::Lz4;

/// Appends the LZ4 block for `input` to `out`.
pub(super) fn compress<B>(input: &[u8], out: &mut B) -> Result<(), CompressionError>
where
    B: CompressOutput + ?Sized,
{
    let max = lz4_flex::block::get_maximum_output_size(input.len());
    append_with(out, CODEC, max, |room| {
        lz4_flex::block::compress_into(input, room).map_err(|e| CompressionError::CompressFailed {
            codec: CODEC,
            detail: e.to_string(),
        })
    })
}

/// Decodes the block `input` into `out`, which it must fill exactly.
pub(super) fn decompress_exact(input: &[u8], out: &mut [u8]) -> Result<(), CompressionError> {
    use lz4_flex::block::DecompressError;
    let declared = out.len();
    match lz4_flex::block::decompress_into(input, out) {
        Ok(n) if n == declared => Ok(()),
        Ok(actual) => Err(CompressionError::SizeMismatch {
            codec: CODEC,
            declared,
            actual,
        }),
        Err(DecompressError::OutputTooSmall { .. }) => Err(CompressionError::ExceedsDeclaredSize {
            codec: CODEC,
            declared,
        }),
        Err(e) => Err(CompressionError::Corrupt {
            codec: CODEC,
            detail: e.to_string(),
        }),
    }
}
