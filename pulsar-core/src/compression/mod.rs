//! Payload compression, byte-compatible with the Java and C++ Pulsar clients.
//!
//! A producer compresses the payload of a message (or of a whole batch) and records the codec in
//! `MessageMetadata.compression` and the original length in `MessageMetadata.uncompressed_size`; a
//! consumer reverses it. The wire formats are the ones the reference clients use:
//!
//! | codec  | protocol value | format on the wire                                              |
//! |--------|----------------|-----------------------------------------------------------------|
//! | NONE   | 0              | the payload as is                                               |
//! | LZ4    | 1              | one raw LZ4 *block* (no frame header, no length prefix)          |
//! | ZLIB   | 2              | a zlib stream (RFC 1950 header + deflate); the Java client never finishes the stream (it ends with a sync flush and has no Adler-32 trailer), which is accepted |
//! | ZSTD   | 3              | a standard zstd frame (level 3 when compressing)                 |
//! | SNAPPY | 4              | one raw Snappy *block* (varint length + elements), not the framed stream format |
//!
//! Decompression never trusts the peer: the declared `uncompressed_size` is checked against a caller
//! limit before anything is allocated, the output buffer is exactly that size, and a payload that is
//! corrupt, decodes to fewer bytes, or would decode to more bytes fails with a typed
//! [`CompressionError`] instead of panicking or growing a buffer.
//!
//! Each codec sits behind a cargo feature of the same name (`lz4`, `zlib`, `zstd`, `snappy`, all on by
//! default); a codec that was compiled out fails with [`CompressionError::Unsupported`].
//!
//! The free functions [`compress`] and [`decompress`] build fresh codec state on every call; a
//! long-lived [`CodecContext`] reuses it (zstd contexts, zlib streams, the Snappy hash table), which is
//! what a producer or consumer hot path should use.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

#[cfg(feature = "lz4")]
mod lz4;
#[cfg(feature = "snappy")]
mod snappy;
#[cfg(feature = "zlib")]
mod zlib;
#[cfg(feature = "zstd")]
mod zstd;

/// A compression codec, as carried in `MessageMetadata.compression`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompressionType {
    /// No compression (protocol value 0).
    #[default]
    None,
    /// LZ4 raw block format (protocol value 1).
    Lz4,
    /// zlib stream: deflate with the zlib header (protocol value 2).
    Zlib,
    /// Zstandard frame (protocol value 3).
    Zstd,
    /// Snappy raw block format (protocol value 4).
    Snappy,
}

impl CompressionType {
    /// Every codec, in protocol order.
    pub const ALL: [CompressionType; 5] = [
        CompressionType::None,
        CompressionType::Lz4,
        CompressionType::Zlib,
        CompressionType::Zstd,
        CompressionType::Snappy,
    ];

    /// The value of this codec in the protocol's `CompressionType` enum.
    pub const fn to_protocol(self) -> i32 {
        match self {
            CompressionType::None => 0,
            CompressionType::Lz4 => 1,
            CompressionType::Zlib => 2,
            CompressionType::Zstd => 3,
            CompressionType::Snappy => 4,
        }
    }

    /// The codec for a protocol `CompressionType` value, or
    /// [`CompressionError::UnknownType`] for a value this client does not know.
    pub const fn from_protocol(value: i32) -> Result<Self, CompressionError> {
        match value {
            0 => Ok(CompressionType::None),
            1 => Ok(CompressionType::Lz4),
            2 => Ok(CompressionType::Zlib),
            3 => Ok(CompressionType::Zstd),
            4 => Ok(CompressionType::Snappy),
            other => Err(CompressionError::UnknownType(other)),
        }
    }

    /// The protocol's name for this codec (`"NONE"`, `"LZ4"`, `"ZLIB"`, `"ZSTD"`, `"SNAPPY"`).
    pub const fn name(self) -> &'static str {
        match self {
            CompressionType::None => "NONE",
            CompressionType::Lz4 => "LZ4",
            CompressionType::Zlib => "ZLIB",
            CompressionType::Zstd => "ZSTD",
            CompressionType::Snappy => "SNAPPY",
        }
    }

    /// Whether this codec was compiled in (its cargo feature is enabled). `None` always is.
    pub const fn is_available(self) -> bool {
        match self {
            CompressionType::None => true,
            CompressionType::Lz4 => cfg!(feature = "lz4"),
            CompressionType::Zlib => cfg!(feature = "zlib"),
            CompressionType::Zstd => cfg!(feature = "zstd"),
            CompressionType::Snappy => cfg!(feature = "snappy"),
        }
    }
}

impl std::fmt::Display for CompressionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<i32> for CompressionType {
    type Error = CompressionError;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        CompressionType::from_protocol(value)
    }
}

impl From<CompressionType> for i32 {
    fn from(kind: CompressionType) -> i32 {
        kind.to_protocol()
    }
}

/// Why a payload could not be compressed or decompressed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompressionError {
    /// The protocol value names no codec this client knows.
    #[error("unknown compression type {0}")]
    UnknownType(i32),
    /// The codec exists but its cargo feature was not enabled in this build.
    #[error("compression codec {0} is not compiled into this build")]
    Unsupported(CompressionType),
    /// The declared uncompressed size is larger than the caller's limit; nothing was allocated.
    #[error("declared uncompressed size {declared} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The size the peer declared.
        declared: usize,
        /// The caller's limit.
        limit: usize,
    },
    /// The payload is not valid data for the codec.
    #[error("corrupt {codec} payload: {detail}")]
    Corrupt {
        /// The codec that rejected the payload.
        codec: CompressionType,
        /// The codec library's description of the problem.
        detail: String,
    },
    /// The payload decodes (or says it decodes) to a different length than the declared one.
    #[error("{codec} payload holds {actual} bytes but {declared} were declared")]
    SizeMismatch {
        /// The codec of the payload.
        codec: CompressionType,
        /// The size declared in the message metadata.
        declared: usize,
        /// The size found in, or decoded from, the payload.
        actual: usize,
    },
    /// The payload would decode to more bytes than declared; decoding stopped at the declared size.
    #[error("{codec} payload decodes to more than the {declared} bytes declared")]
    ExceedsDeclaredSize {
        /// The codec of the payload.
        codec: CompressionType,
        /// The size declared in the message metadata.
        declared: usize,
    },
    /// The codec failed to compress the input (for example an input too large for the format).
    #[error("{codec} compression failed: {detail}")]
    CompressFailed {
        /// The codec that failed.
        codec: CompressionType,
        /// The codec library's description of the problem.
        detail: String,
    },
}

/// A growable byte buffer that compressed output can be appended to: `Vec<u8>` or `BytesMut`.
///
/// This trait is sealed; it only exists so [`compress`] accepts either buffer type.
pub trait CompressOutput: sealed::Sealed {
    /// Current length in bytes.
    fn out_len(&self) -> usize;
    /// Grows (zero-filled) or shrinks to `len` bytes.
    fn out_resize(&mut self, len: usize);
    /// The initialised bytes as a mutable slice.
    fn out_slice_mut(&mut self) -> &mut [u8];
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for Vec<u8> {}
    impl Sealed for bytes::BytesMut {}
}

impl CompressOutput for Vec<u8> {
    fn out_len(&self) -> usize {
        self.len()
    }
    fn out_resize(&mut self, len: usize) {
        self.resize(len, 0);
    }
    fn out_slice_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl CompressOutput for BytesMut {
    fn out_len(&self) -> usize {
        self.len()
    }
    fn out_resize(&mut self, len: usize) {
        self.resize(len, 0);
    }
    fn out_slice_mut(&mut self) -> &mut [u8] {
        self.as_mut()
    }
}

/// Appends to `out` up to `max` bytes produced by `write`, which gets `max` zero-filled bytes of
/// room and returns how many of them it used. On error `out` is left as it was.
pub(crate) fn append_with<B, F>(
    out: &mut B,
    codec: CompressionType,
    max: usize,
    write: F,
) -> Result<(), CompressionError>
where
    B: CompressOutput + ?Sized,
    F: FnOnce(&mut [u8]) -> Result<usize, CompressionError>,
{
    let start = out.out_len();
    let end = start
        .checked_add(max)
        .ok_or_else(|| CompressionError::CompressFailed {
            codec,
            detail: "output would exceed the address space".into(),
        })?;
    out.out_resize(end);
    let result = match out.out_slice_mut().get_mut(start..) {
        Some(room) => write(room),
        None => Ok(0),
    };
    match result {
        Ok(n) if n <= max => {
            out.out_resize(start + n);
            Ok(())
        }
        Ok(_) => {
            out.out_resize(start);
            Err(CompressionError::CompressFailed {
                codec,
                detail: "codec reported more output than it had room for".into(),
            })
        }
        Err(e) => {
            out.out_resize(start);
            Err(e)
        }
    }
}

/// Reusable codec state: zstd contexts, zlib streams and the Snappy encoder's hash table are kept
/// between calls instead of being rebuilt for every payload.
///
/// One context serves every codec; it is cheap to create (state is built lazily on first use of a
/// codec) and is meant to live as long as a producer or a consumer.
#[derive(Default)]
pub struct CodecContext {
    #[cfg(feature = "zlib")]
    zlib: zlib::ZlibState,
    #[cfg(feature = "zstd")]
    zstd: zstd::ZstdState,
    #[cfg(feature = "snappy")]
    snappy: snappy::SnappyState,
}

impl std::fmt::Debug for CodecContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodecContext").finish_non_exhaustive()
    }
}

impl CodecContext {
    /// A context with no codec state built yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compresses `input` with `kind`, appending the result to `out` (existing bytes are kept).
    ///
    /// `CompressionType::None` appends `input` unchanged. On error `out` is left as it was.
    pub fn compress<B>(
        &mut self,
        kind: CompressionType,
        input: &[u8],
        out: &mut B,
    ) -> Result<(), CompressionError>
    where
        B: CompressOutput + ?Sized,
    {
        match kind {
            CompressionType::None => append_with(out, kind, input.len(), |dst| {
                dst.copy_from_slice(input);
                Ok(input.len())
            }),
            #[cfg(feature = "lz4")]
            CompressionType::Lz4 => lz4::compress(input, out),
            #[cfg(feature = "zlib")]
            CompressionType::Zlib => self.zlib.compress(input, out),
            #[cfg(feature = "zstd")]
            CompressionType::Zstd => self.zstd.compress(input, out),
            #[cfg(feature = "snappy")]
            CompressionType::Snappy => self.snappy.compress(input, out),
            #[allow(unreachable_patterns)]
            other => Err(CompressionError::Unsupported(other)),
        }
    }

    /// Decompresses `input`, which must decode to exactly `uncompressed_size` bytes (the value of
    /// `MessageMetadata.uncompressed_size`).
    ///
    /// `uncompressed_size` is checked against `limit` before anything is allocated
    /// ([`CompressionError::TooLarge`]). The output is allocated once, at exactly
    /// `uncompressed_size` bytes; corrupt input, a shorter result, or input that would produce more
    /// bytes yields a typed error.
    ///
    /// For `CompressionType::None` the payload is returned as is (copied) and `uncompressed_size`
    /// is not compared with it, as the reference clients do not compare it either; only `limit` is
    /// enforced, against the payload length. See [`CodecContext::decompress_bytes`] for a zero-copy
    /// variant.
    pub fn decompress(
        &mut self,
        kind: CompressionType,
        input: &[u8],
        uncompressed_size: usize,
        limit: usize,
    ) -> Result<Bytes, CompressionError> {
        if kind == CompressionType::None {
            check_limit(input.len(), limit)?;
            return Ok(Bytes::copy_from_slice(input));
        }
        if !kind.is_available() {
            return Err(CompressionError::Unsupported(kind));
        }
        check_limit(uncompressed_size, limit)?;
        // A codec-specific cheap look at the header may reject the payload before allocating.
        self.precheck(kind, input, uncompressed_size)?;
        let mut out = vec![0u8; uncompressed_size];
        self.decompress_exact(kind, input, &mut out)?;
        Ok(Bytes::from(out))
    }

    /// Like [`CodecContext::decompress`], but for `CompressionType::None` returns `input` itself
    /// (a reference-counted clone, no copy).
    pub fn decompress_bytes(
        &mut self,
        kind: CompressionType,
        input: &Bytes,
        uncompressed_size: usize,
        limit: usize,
    ) -> Result<Bytes, CompressionError> {
        if kind == CompressionType::None {
            check_limit(input.len(), limit)?;
            return Ok(input.clone());
        }
        self.decompress(kind, input, uncompressed_size, limit)
    }

    /// Header checks that need no output buffer.
    #[allow(unused_variables)]
    fn precheck(
        &mut self,
        kind: CompressionType,
        input: &[u8],
        declared: usize,
    ) -> Result<(), CompressionError> {
        match kind {
            #[cfg(feature = "snappy")]
            CompressionType::Snappy => snappy::precheck(input, declared),
            #[cfg(feature = "zstd")]
            CompressionType::Zstd => zstd::precheck(input, declared),
            _ => Ok(()),
        }
    }

    /// Decodes `input` into `out`, which must end up exactly full.
    #[allow(unused_variables)]
    fn decompress_exact(
        &mut self,
        kind: CompressionType,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(), CompressionError> {
        match kind {
            #[cfg(feature = "lz4")]
            CompressionType::Lz4 => lz4::decompress_exact(input, out),
            #[cfg(feature = "zlib")]
            CompressionType::Zlib => self.zlib.decompress_exact(input, out),
            #[cfg(feature = "zstd")]
            CompressionType::Zstd => self.zstd.decompress_exact(input, out),
            #[cfg(feature = "snappy")]
            CompressionType::Snappy => snappy::decompress_exact(input, out),
            other => Err(CompressionError::Unsupported(other)),
        }
    }
}

fn check_limit(declared: usize, limit: usize) -> Result<(), CompressionError> {
    if declared > limit {
        Err(CompressionError::TooLarge { declared, limit })
    } else {
        Ok(())
    }
}

/// Compresses `input` with `kind`, appending the result to `out`.
///
/// Builds fresh codec state for this one call; prefer a long-lived [`CodecContext`] on hot paths.
pub fn compress<B>(kind: CompressionType, input: &[u8], out: &mut B) -> Result<(), CompressionError>
where
    B: CompressOutput + ?Sized,
{
    CodecContext::new().compress(kind, input, out)
}

/// Decompresses `input`, which must decode to exactly `uncompressed_size` bytes, refusing any
/// `uncompressed_size` above `limit` before allocating. See [`CodecContext::decompress`].
///
/// Builds fresh codec state for this one call; prefer a long-lived [`CodecContext`] on hot paths.
pub fn decompress(
    kind: CompressionType,
    input: &[u8],
    uncompressed_size: usize,
    limit: usize,
) -> Result<Bytes, CompressionError> {
    CodecContext::new().decompress(kind, input, uncompressed_size, limit)
}
