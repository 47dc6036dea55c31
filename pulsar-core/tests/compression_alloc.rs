//! Decompression must not allocate what a peer merely claims: with the process capped at a small
//! amount of heap, hostile `uncompressed_size` values must fail with typed errors instead of
//! attempting (and here: aborting on) a huge allocation.
//!
//! One test function only, so nothing else allocates concurrently.

// Needs every codec; `compression_features.rs` covers builds without some of them.
#![cfg(all(
    feature = "lz4",
    feature = "zlib",
    feature = "zstd",
    feature = "snappy"
))]

use pulsar_core::compression::{compress, decompress, CompressionError, CompressionType};

#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

const GIB: usize = 1 << 30;

#[test]
fn hostile_sizes_allocate_nothing_large() {
    let data = vec![7u8; 100_000];
    let mut packed = Vec::new();
    for kind in [
        CompressionType::Lz4,
        CompressionType::Zlib,
        CompressionType::Zstd,
        CompressionType::Snappy,
    ] {
        packed.push((kind, {
            let mut out = Vec::new();
            compress(kind, &data, &mut out).expect("compress");
            out
        }));
    }
    // Warm codec-internal state (zstd contexts) before the cap goes on.
    for (kind, out) in &packed {
        assert!(decompress(*kind, out, data.len(), data.len()).is_ok());
    }

    let headroom = 32 << 20;
    ALLOC
        .set_limit(ALLOC.allocated() + headroom)
        .expect("set limit");
    // The cap is real: a 1 GiB reservation fails now.
    assert!(Vec::<u8>::new().try_reserve_exact(GIB).is_err());

    // 1. Over the limit: refused before any allocation, whatever the codec.
    for (kind, out) in &packed {
        assert_eq!(
            decompress(*kind, out, 4 * GIB, 16 << 20),
            Err(CompressionError::TooLarge {
                declared: 4 * GIB,
                limit: 16 << 20
            }),
            "{kind}"
        );
    }
    // 2. A generous limit, but the payload's own header disagrees: refused before allocating.
    for (kind, out) in &packed {
        if matches!(kind, CompressionType::Snappy | CompressionType::Zstd) {
            assert_eq!(
                decompress(*kind, out, 4 * GIB, usize::MAX),
                Err(CompressionError::SizeMismatch {
                    codec: *kind,
                    declared: 4 * GIB,
                    actual: data.len()
                }),
                "{kind}"
            );
        }
    }
    // 3. A snappy header claiming 4 GiB - 1 bytes in a 6-byte payload, with a limit that allows
    //    it: refused by the declared/header comparison when they differ...
    let lying_snappy = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    assert!(decompress(CompressionType::Snappy, &lying_snappy, 100, usize::MAX).is_err());
    // ...and within the limit when they agree, the limit is what protects: 16 MiB limit.
    assert_eq!(
        decompress(
            CompressionType::Snappy,
            &lying_snappy,
            0xffff_ffff,
            16 << 20
        ),
        Err(CompressionError::TooLarge {
            declared: 0xffff_ffff,
            limit: 16 << 20
        })
    );
    ALLOC.set_limit(usize::MAX).expect("lift limit");
}
