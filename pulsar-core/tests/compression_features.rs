//! Each codec sits behind its cargo feature: compiled in, it works; left out, it fails with
//! `CompressionError::Unsupported` (never silently passing data through).
//! Run with e.g. `cargo test -p pulsar-core --no-default-features --features zstd`.

use pulsar_core::compression::{compress, decompress, CompressionError, CompressionType};

/// Which codec features this test binary was built with.
const FEATURES: [(CompressionType, bool); 4] = [
    (CompressionType::Lz4, cfg!(feature = "lz4")),
    (CompressionType::Zlib, cfg!(feature = "zlib")),
    (CompressionType::Zstd, cfg!(feature = "zstd")),
    (CompressionType::Snappy, cfg!(feature = "snappy")),
];

fn enabled(kind: CompressionType) -> bool {
    FEATURES
        .iter()
        .find(|(k, _)| *k == kind)
        .is_none_or(|&(_, on)| on)
}

#[test]
fn codecs_follow_their_features() {
    let data = b"the same bytes, again and again: the same bytes, again and again".repeat(20);
    for kind in CompressionType::ALL {
        assert_eq!(kind.is_available(), enabled(kind), "{kind}");
        let mut out = b"keep".to_vec();
        let packed = compress(kind, &data, &mut out);
        if enabled(kind) {
            assert_eq!(packed, Ok(()), "{kind}");
            let back = decompress(kind, &out[4..], data.len(), data.len()).expect("decompress");
            assert_eq!(&back[..], &data[..], "{kind}");
        } else {
            assert_eq!(packed, Err(CompressionError::Unsupported(kind)));
            assert_eq!(out, b"keep", "{kind}: output untouched");
            assert_eq!(
                decompress(kind, &data, data.len(), data.len()),
                Err(CompressionError::Unsupported(kind))
            );
        }
    }
}
