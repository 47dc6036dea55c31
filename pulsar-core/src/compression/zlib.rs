//! zlib streams (RFC 1950: a two-byte header, deflate data, an Adler-32 trailer).
//!
//! Compression writes a complete stream at the default level, as zlib's `compress()` in the C++
//! client does. Decompression also accepts the Java client's output, which is produced with
//! `Deflater.SYNC_FLUSH` and never finished: the deflate data ends on a sync-flush marker with no
//! final block and no trailer. A payload is therefore accepted once exactly the declared number of
//! bytes has been decoded and the rest of the input decodes to nothing more.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{CompressOutput, CompressionError, CompressionType};

const CODEC: CompressionType = CompressionType::Zlib;

/// Reusable deflate and inflate streams, built on first use and reset between payloads.
#[derive(Default)]
pub(super) struct ZlibState {
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
}

/// zlib's `compressBound`: enough for one pass in practice; the loop below grows if not.
fn bound(len: usize) -> usize {
    len.saturating_add(len >> 12)
        .saturating_add(len >> 14)
        .saturating_add(len >> 25)
        .saturating_add(13)
}

impl ZlibState {
    /// Appends a complete zlib stream holding `input` to `out`.
    pub(super) fn compress<B>(&mut self, input: &[u8], out: &mut B) -> Result<(), CompressionError>
    where
        B: CompressOutput + ?Sized,
    {
        let c = match &mut self.compressor {
            Some(c) => {
                c.reset();
                c
            }
            slot => slot.insert(Compress::new(Compression::default(), true)),
        };
        let start = out.out_len();
        let (base_in, base_out) = (c.total_in(), c.total_out());
        let mut room = bound(input.len());
        let result = loop {
            let consumed = to_usize(c.total_in() - base_in);
            let produced = to_usize(c.total_out() - base_out);
            out.out_resize(start.saturating_add(room));
            let src = input.get(consumed..).unwrap_or_default();
            let dst = out
                .out_slice_mut()
                .get_mut(start.saturating_add(produced)..)
                .unwrap_or_default();
            let dst_room = dst.len();
            match c.compress(src, dst, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break Ok(to_usize(c.total_out() - base_out)),
                Ok(_) => {
                    let stalled = to_usize(c.total_in() - base_in) == consumed
                        && to_usize(c.total_out() - base_out) == produced;
                    if stalled && dst_room > 0 {
                        break Err(CompressionError::CompressFailed {
                            codec: CODEC,
                            detail: "deflate made no progress".into(),
                        });
                    }
                    room = room.saturating_add((room / 2).max(64));
                }
                Err(e) => {
                    break Err(CompressionError::CompressFailed {
                        codec: CODEC,
                        detail: e.to_string(),
                    })
                }
            }
        };
        match result {
            Ok(n) => {
                out.out_resize(start.saturating_add(n));
                Ok(())
            }
            Err(e) => {
                out.out_resize(start);
                Err(e)
            }
        }
    }

    /// Inflates `input` into `out`, which it must fill exactly.
    pub(super) fn decompress_exact(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(), CompressionError> {
        let d = match &mut self.decompressor {
            Some(d) => {
                d.reset(true);
                d
            }
            slot => slot.insert(Decompress::new(true)),
        };
        let declared = out.len();
        let (base_in, base_out) = (d.total_in(), d.total_out());
        loop {
            let consumed = to_usize(d.total_in() - base_in);
            let produced = to_usize(d.total_out() - base_out);
            let src = input.get(consumed..).unwrap_or_default();
            if produced == declared {
                return ensure_nothing_more(d, src, declared);
            }
            let dst = out.get_mut(produced..).unwrap_or_default();
            let status = d
                .decompress(src, dst, FlushDecompress::None)
                .map_err(|e| corrupt(e.to_string()))?;
            let now_produced = to_usize(d.total_out() - base_out);
            match status {
                Status::StreamEnd if now_produced == declared => return Ok(()),
                Status::StreamEnd => {
                    return Err(CompressionError::SizeMismatch {
                        codec: CODEC,
                        declared,
                        actual: now_produced,
                    })
                }
                Status::Ok | Status::BufError => {
                    let stalled =
                        to_usize(d.total_in() - base_in) == consumed && now_produced == produced;
                    if stalled {
                        // Input exhausted (or unusable) before the declared size was reached.
                        return Err(CompressionError::SizeMismatch {
                            codec: CODEC,
                            declared,
                            actual: now_produced,
                        });
                    }
                }
            }
        }
    }
}

/// All declared bytes are out: the remaining input may still hold the end of the stream (or, from
/// the Java client, an empty sync-flush block), but must not decode to any further byte.
fn ensure_nothing_more(
    d: &mut Decompress,
    mut src: &[u8],
    declared: usize,
) -> Result<(), CompressionError> {
    let mut probe = [0u8; 1];
    loop {
        let before_in = d.total_in();
        let before_out = d.total_out();
        let status = d
            .decompress(src, &mut probe, FlushDecompress::None)
            .map_err(|e| corrupt(e.to_string()))?;
        if d.total_out() != before_out {
            return Err(CompressionError::ExceedsDeclaredSize {
                codec: CODEC,
                declared,
            });
        }
        let used = to_usize(d.total_in() - before_in);
        if status == Status::StreamEnd || used == 0 {
            return Ok(());
        }
        src = src.get(used..).unwrap_or_default();
    }
}

fn corrupt(detail: String) -> CompressionError {
    CompressionError::Corrupt {
        codec: CODEC,
        detail,
    }
}

/// Stream counters only ever count bytes of slices we passed in, so they fit a `usize`.
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
