//! Round trips, wire-format facts and hostile-input behaviour of `pulsar_core::compression`.
// Needs every codec; `compression_features.rs` covers builds without some of them.
#![cfg(all(
    feature = "lz4",
    feature = "zlib",
    feature = "zstd",
    feature = "snappy"
))]
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use pulsar_core::compression::{
    compress, decompress, CodecContext, CompressionError, CompressionType,
};

const CODECS: [CompressionType; 4] = [
    CompressionType::Lz4,
    CompressionType::Zlib,
    CompressionType::Zstd,
    CompressionType::Snappy,
];

const LIMIT: usize = 64 << 20;

fn packed(kind: CompressionType, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress(kind, input, &mut out).expect("compress");
    out
}

/// Mixed payload: compressible runs, then bytes from a simple generator.
fn sample(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|i| {
            if (i / 64) % 2 == 0 {
                b"pulsar-"[i % 7]
            } else {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }
        })
        .collect()
}

#[test]
fn protocol_numbers() {
    let expected = [
        (CompressionType::None, 0, "NONE"),
        (CompressionType::Lz4, 1, "LZ4"),
        (CompressionType::Zlib, 2, "ZLIB"),
        (CompressionType::Zstd, 3, "ZSTD"),
        (CompressionType::Snappy, 4, "SNAPPY"),
    ];
    for (kind, number, name) in expected {
        assert_eq!(kind.to_protocol(), number);
        assert_eq!(i32::from(kind), number);
        assert_eq!(CompressionType::from_protocol(number), Ok(kind));
        assert_eq!(CompressionType::try_from(number), Ok(kind));
        assert_eq!(kind.name(), name);
        assert_eq!(kind.to_string(), name);
        assert!(kind.is_available(), "{name} compiled in by default");
    }
    assert_eq!(
        CompressionType::from_protocol(5),
        Err(CompressionError::UnknownType(5))
    );
    assert_eq!(
        CompressionType::from_protocol(-1),
        Err(CompressionError::UnknownType(-1))
    );
    assert_eq!(CompressionType::default(), CompressionType::None);
}

#[test]
fn none_is_identity() {
    let data = sample(1000);
    let mut out = b"prefix".to_vec();
    compress(CompressionType::None, &data, &mut out).unwrap();
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(&out[6..], &data[..]);
    // uncompressed_size is not compared for NONE, but the limit is.
    let back = decompress(CompressionType::None, &data, 0, LIMIT).unwrap();
    assert_eq!(&back[..], &data[..]);
    assert_eq!(
        decompress(CompressionType::None, &data, data.len(), 999),
        Err(CompressionError::TooLarge {
            declared: 1000,
            limit: 999
        })
    );
}

#[test]
fn none_bytes_is_zero_copy() {
    let data = bytes::Bytes::from(sample(100));
    let mut ctx = CodecContext::new();
    let back = ctx
        .decompress_bytes(CompressionType::None, &data, 100, LIMIT)
        .unwrap();
    assert_eq!(back.as_ptr(), data.as_ptr());
    // Other codecs still decode through it.
    let z = bytes::Bytes::from(packed(CompressionType::Zstd, &data));
    let back = ctx
        .decompress_bytes(CompressionType::Zstd, &z, 100, LIMIT)
        .unwrap();
    assert_eq!(back, data);
}

#[test]
fn round_trip_sizes_every_codec() {
    let mut ctx = CodecContext::new();
    for len in [
        0usize,
        1,
        3,
        4,
        5,
        15,
        64,
        1000,
        65_535,
        65_536,
        200_000,
        1 << 20,
    ] {
        let data = sample(len);
        for kind in CODECS {
            let mut out = Vec::new();
            ctx.compress(kind, &data, &mut out).unwrap();
            let back = ctx.decompress(kind, &out, len, LIMIT).unwrap();
            assert!(back[..] == data[..], "{kind} round trip of {len} bytes");
            // Fresh state gives the same result as the reused context.
            let back = decompress(kind, &out, len, LIMIT).unwrap();
            assert!(
                back[..] == data[..],
                "{kind} fresh round trip of {len} bytes"
            );
        }
    }
}

#[test]
fn compresses_compressible_input() {
    let data = vec![b'a'; 100_000];
    for kind in CODECS {
        let out = packed(kind, &data);
        assert!(out.len() < 6_000, "{kind}: {} bytes", out.len());
    }
}

#[test]
fn appends_to_existing_output_in_both_buffer_types() {
    let data = sample(5000);
    for kind in CODECS {
        let alone = packed(kind, &data);
        let mut v = b"head".to_vec();
        compress(kind, &data, &mut v).unwrap();
        assert_eq!(&v[..4], b"head");
        assert_eq!(&v[4..], &alone[..], "{kind}: deterministic, appended");
        let mut b = BytesMut::from(&b"head"[..]);
        compress(kind, &data, &mut b).unwrap();
        assert_eq!(&b[..], &v[..], "{kind}: BytesMut same as Vec");
    }
}

// ---- wire formats -------------------------------------------------------------------------

#[test]
fn lz4_is_a_raw_block() {
    let out = packed(CompressionType::Lz4, b"hello hello hello hello");
    assert_ne!(&out[..4], &[0x04, 0x22, 0x4d, 0x18], "no LZ4 frame magic");
    // A literal-only block written by hand: token 0x50 (5 literals, no match) + "hello".
    let back = decompress(CompressionType::Lz4, b"\x50hello", 5, LIMIT).unwrap();
    assert_eq!(&back[..], b"hello");
    // Literals, then a match of offset 1 and length 4+4 ("aaaa..."), then the closing literals.
    let block = [0x14, b'a', 0x01, 0x00, 0x50, b'b', b'b', b'b', b'b', b'b'];
    let back = decompress(CompressionType::Lz4, &block, 14, LIMIT).unwrap();
    assert_eq!(&back[..], b"aaaaaaaaabbbbb");
}

#[test]
fn snappy_is_a_raw_block() {
    let data = b"hello hello hello hello";
    let out = packed(CompressionType::Snappy, data);
    // Raw format: starts with the varint length; the framed format starts with 0xff "sNaPpY".
    assert_eq!(out[0] as usize, data.len());
    assert!(!out.starts_with(&[0xff, 0x06, 0x00, 0x00]));
    // By hand: length 5, literal tag ((5-1) << 2), "hello".
    let back = decompress(CompressionType::Snappy, b"\x05\x10hello", 5, LIMIT).unwrap();
    assert_eq!(&back[..], b"hello");
    // Empty payload is the single byte 0.
    assert_eq!(packed(CompressionType::Snappy, b""), vec![0]);
    assert!(decompress(CompressionType::Snappy, &[0], 0, LIMIT)
        .unwrap()
        .is_empty());
}

#[test]
fn zlib_is_a_zlib_stream_and_accepts_unfinished_java_streams() {
    let data = sample(3000);
    let out = packed(CompressionType::Zlib, &data);
    assert_eq!(&out[..2], &[0x78, 0x9c], "zlib header, default level");
    // As Java's Deflater with SYNC_FLUSH and no finish(): header, a non-final stored block
    // holding "hello", then the empty stored block of the sync flush; no Adler-32 trailer.
    let java_style = [
        0x78, 0x9c, // header
        0x00, 0x05, 0x00, 0xfa, 0xff, b'h', b'e', b'l', b'l', b'o', // stored, not final
        0x00, 0x00, 0x00, 0xff, 0xff, // sync flush marker
    ];
    let back = decompress(CompressionType::Zlib, &java_style, 5, LIMIT).unwrap();
    assert_eq!(&back[..], b"hello");
    // Same data, declared one byte short or long.
    assert_eq!(
        decompress(CompressionType::Zlib, &java_style, 4, LIMIT),
        Err(CompressionError::ExceedsDeclaredSize {
            codec: CompressionType::Zlib,
            declared: 4
        })
    );
    assert_eq!(
        decompress(CompressionType::Zlib, &java_style, 6, LIMIT),
        Err(CompressionError::SizeMismatch {
            codec: CompressionType::Zlib,
            declared: 6,
            actual: 5
        })
    );
    // Raw deflate without the zlib header is not accepted.
    assert!(matches!(
        decompress(CompressionType::Zlib, &java_style[2..], 5, LIMIT),
        Err(CompressionError::Corrupt { .. })
    ));
}

#[test]
fn zstd_is_a_standard_frame() {
    let out = packed(CompressionType::Zstd, &sample(1000));
    assert_eq!(&out[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
}

// ---- hostile input ------------------------------------------------------------------------

#[test]
fn declared_size_over_limit_is_refused_for_every_codec() {
    let data = sample(4096);
    for kind in CODECS {
        let out = packed(kind, &data);
        assert_eq!(
            decompress(kind, &out, data.len(), data.len() - 1),
            Err(CompressionError::TooLarge {
                declared: data.len(),
                limit: data.len() - 1
            }),
            "{kind}"
        );
        assert_eq!(
            decompress(kind, &out, usize::MAX, LIMIT),
            Err(CompressionError::TooLarge {
                declared: usize::MAX,
                limit: LIMIT
            }),
            "{kind}"
        );
        // Exactly at the limit is fine.
        assert!(decompress(kind, &out, data.len(), data.len()).is_ok());
    }
}

#[test]
fn lying_uncompressed_size_is_a_typed_error() {
    let data = sample(10_000);
    for kind in CODECS {
        let out = packed(kind, &data);
        for declared in [0, 1, data.len() - 1, data.len() + 1, data.len() * 2] {
            let err = decompress(kind, &out, declared, LIMIT).unwrap_err();
            match err {
                CompressionError::SizeMismatch {
                    codec,
                    declared: d,
                    actual,
                } => {
                    assert_eq!(codec, kind);
                    assert_eq!(d, declared);
                    assert_ne!(actual, declared);
                }
                CompressionError::ExceedsDeclaredSize { codec, declared: d } => {
                    assert_eq!(codec, kind);
                    assert_eq!(d, declared);
                    assert!(
                        declared < data.len(),
                        "{kind}: only when declared too small"
                    );
                }
                // zstd without a recorded size, lz4 mid-sequence: the decoder refuses.
                CompressionError::Corrupt { codec, .. } => {
                    assert_eq!(codec, kind);
                    assert!(declared < data.len(), "{kind}: {declared}");
                }
                other => panic!("{kind} declared {declared}: unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn header_sizes_are_checked_exactly() {
    let data = sample(10_000);
    // Snappy and zstd carry the size in their header: any mismatch reports the real size.
    for kind in [CompressionType::Snappy, CompressionType::Zstd] {
        let out = packed(kind, &data);
        for declared in [0, 9_999, 10_001] {
            assert_eq!(
                decompress(kind, &out, declared, LIMIT),
                Err(CompressionError::SizeMismatch {
                    codec: kind,
                    declared,
                    actual: 10_000
                })
            );
        }
    }
    // LZ4 too long: reports what it decoded.
    let out = packed(CompressionType::Lz4, &data);
    assert_eq!(
        decompress(CompressionType::Lz4, &out, 10_001, LIMIT),
        Err(CompressionError::SizeMismatch {
            codec: CompressionType::Lz4,
            declared: 10_001,
            actual: 10_000
        })
    );
}

#[test]
fn truncated_payloads_fail() {
    let data = sample(20_000);
    for kind in CODECS {
        let out = packed(kind, &data);
        // A zlib stream cut inside its 4-byte Adler-32 trailer, or its last deflate byte (the
        // end-of-block code), still yields every declared byte and is accepted: the Java client's
        // streams have neither a final block nor a trailer (the C++ client accepts both too). So
        // for zlib the last cut goes into the compressed data proper.
        let tail = if kind == CompressionType::Zlib { 16 } else { 1 };
        for cut in [0, 1, out.len() / 3, out.len() / 2, out.len() - tail] {
            let r = decompress(kind, &out[..cut], data.len(), LIMIT);
            assert!(r.is_err(), "{kind} cut at {cut} of {}", out.len());
        }
    }
}

#[test]
fn corrupted_payloads_never_yield_wrong_data() {
    let data = sample(20_000);
    for kind in CODECS {
        let out = packed(kind, &data);
        for pos in (0..out.len()).step_by(97) {
            let mut bad = out.clone();
            bad[pos] ^= 0x5a;
            // zlib (Adler-32), zstd (block structure) and friends may or may not notice a flipped
            // byte; what must hold is: no panic, and success only with exactly the declared size.
            if let Ok(back) = decompress(kind, &bad, data.len(), LIMIT) {
                assert_eq!(back.len(), data.len(), "{kind} flip at {pos}");
            }
        }
    }
}

#[test]
fn garbage_is_rejected() {
    let garbage = [0xffu8; 64];
    for kind in CODECS {
        assert!(decompress(kind, &garbage, 1000, LIMIT).is_err(), "{kind}");
        assert!(decompress(kind, &[], 10, LIMIT).is_err(), "{kind} empty");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn round_trip_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..20_000), pick in 0usize..4) {
        let kind = CODECS[pick];
        let out = packed(kind, &data);
        let back = decompress(kind, &out, data.len(), data.len()).unwrap();
        prop_assert_eq!(&back[..], &data[..]);
    }

    #[test]
    fn round_trip_compressible(seed in proptest::collection::vec(0u8..4, 1..64), reps in 1usize..2000, pick in 0usize..4) {
        let kind = CODECS[pick];
        let data: Vec<u8> = seed.iter().copied().cycle().take(seed.len() * reps).collect();
        let mut ctx = CodecContext::new();
        let mut out = BytesMut::new();
        ctx.compress(kind, &data, &mut out).unwrap();
        let back = ctx.decompress(kind, &out, data.len(), LIMIT).unwrap();
        prop_assert_eq!(&back[..], &data[..]);
    }

    #[test]
    fn arbitrary_input_never_panics(
        input in proptest::collection::vec(any::<u8>(), 0..512),
        declared in 0usize..100_000,
        pick in 0usize..4,
    ) {
        let kind = CODECS[pick];
        if let Ok(back) = decompress(kind, &input, declared, LIMIT) {
            prop_assert_eq!(back.len(), declared);
        }
    }

    #[test]
    fn mutated_payload_never_panics(
        data in proptest::collection::vec(any::<u8>(), 1..4000),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        pick in 0usize..4,
    ) {
        let kind = CODECS[pick];
        let mut out = packed(kind, &data);
        for (idx, mask) in flips {
            let i = idx.index(out.len());
            out[i] ^= mask;
        }
        if let Ok(back) = decompress(kind, &out, data.len(), LIMIT) {
            prop_assert_eq!(back.len(), data.len());
        }
    }
}
