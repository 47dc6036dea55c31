//! Interoperability of `pulsar_core::compression` and `pulsar_core::routing` with the reference
//! implementations the Java and C++ clients rely on, checked without a broker through Python:
//!
//! * ZLIB: Python's `zlib` (the system zlib). Both a finished stream (`zlib.compress`, as the C++
//!   client writes) and a Java-style stream (sync flush, never finished, as Java's `Deflater` with
//!   `SYNC_FLUSH` writes) must decode here; ours must decode there.
//! * LZ4: the `lz4` package (the reference liblz4), raw blocks (`store_size=False`).
//! * ZSTD: the `zstandard` package (the reference libzstd), level 3 frames.
//! * SNAPPY: Google's libsnappy (`libsnappy.so.1`, the library the C++ client links) through
//!   `ctypes`, raw format. (The `python-snappy` package is not used: its raw codec is the Rust
//!   `snap` crate via cramjam, the very library under test, so it would prove nothing.)
//! * Key routing: Python re-implementations of Java's `String.hashCode()`, of the Murmur3 variant
//!   (x86_32, seed 0, sign bit masked) and of the C++ client's `boost::hash` (64-bit Boost
//!   `hash_range`), over keys generated here.
//!
//! Needs the test interpreter ([`pulsar_tests::support::python_interpreter`], the project's
//! virtual environment `scripts/test` builds) with the PyPI packages `lz4` and `zstandard`, and the
//! Debian package `libsnappy1v5`; the test fails (it does not skip) when any is missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pulsar_core::compression::{compress, decompress, CompressionType};
use pulsar_core::routing::{partition_for_key, HashingScheme};
use pulsar_tests::support::python_command;

const PY_CODECS: &str = r#"
import ctypes, sys, zlib
from pathlib import Path

import lz4.block
import zstandard

work = Path(sys.argv[1])
cases = int(sys.argv[2])

snappy = ctypes.CDLL("libsnappy.so.1")
snappy.snappy_max_compressed_length.restype = ctypes.c_size_t
snappy.snappy_max_compressed_length.argtypes = [ctypes.c_size_t]
snappy.snappy_compress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                   ctypes.POINTER(ctypes.c_size_t)]
snappy.snappy_uncompress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                     ctypes.POINTER(ctypes.c_size_t)]

def snappy_compress(data):
    out_len = ctypes.c_size_t(snappy.snappy_max_compressed_length(len(data)))
    out = ctypes.create_string_buffer(out_len.value)
    assert snappy.snappy_compress(data, len(data), out, ctypes.byref(out_len)) == 0
    return out.raw[:out_len.value]

def snappy_uncompress(data, size):
    out_len = ctypes.c_size_t(size)
    out = ctypes.create_string_buffer(max(size, 1))
    rc = snappy.snappy_uncompress(data, len(data), out, ctypes.byref(out_len))
    if rc != 0:
        raise ValueError("snappy_uncompress status %d" % rc)
    return out.raw[:out_len.value]

def java_style_zlib(data):
    c = zlib.compressobj()
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)

compressors = {
    "LZ4": lambda d: lz4.block.compress(d, store_size=False),
    "ZLIB": zlib.compress,
    "ZLIBJAVA": java_style_zlib,
    "ZSTD": lambda d: zstandard.ZstdCompressor(level=3).compress(d),
    "SNAPPY": snappy_compress,
}
decompressors = {
    "LZ4": lambda d, n: lz4.block.decompress(d, uncompressed_size=n),
    "ZLIB": lambda d, n: zlib.decompress(d),
    "ZSTD": lambda d, n: zstandard.ZstdDecompressor().decompress(d, max_output_size=max(n, 1)),
    "SNAPPY": snappy_uncompress,
}

failures = []
checked = 0
for i in range(cases):
    raw = (work / ("raw_%d.bin" % i)).read_bytes()
    for name, dec in decompressors.items():
        ours = (work / ("ours_%s_%d.bin" % (name, i))).read_bytes()
        try:
            back = dec(ours, len(raw))
        except Exception as e:
            failures.append("%s case %d: reference decoder failed: %r" % (name, i, e))
            continue
        checked += 1
        if back != raw:
            failures.append("%s case %d: reference decoded %d bytes, differing" % (name, i, len(back)))
    for name, comp in compressors.items():
        (work / ("ref_%s_%d.bin" % (name, i))).write_bytes(comp(raw))

print("checked %d" % checked)
for f in failures:
    print("FAIL " + f)
sys.exit(1 if failures else 0)
"#;

const PY_ROUTING: &str = r#"
import struct, sys

def java_hash(s):
    h = 0
    for (u,) in struct.iter_unpack("<H", s.encode("utf-16-le")):
        h = (31 * h + u) & 0xFFFFFFFF
    return h

def rotl(x, r):
    return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF

def murmur3_32(data):
    c1, c2, h, n = 0xCC9E2D51, 0x1B873593, 0, len(data) // 4
    for i in range(n):
        k = struct.unpack_from("<I", data, 4 * i)[0]
        k = rotl((k * c1) & 0xFFFFFFFF, 15)
        h ^= (k * c2) & 0xFFFFFFFF
        h = (rotl(h, 13) * 5 + 0xE6546B64) & 0xFFFFFFFF
    k = 0
    for i, b in enumerate(data[4 * n:]):
        k ^= b << (8 * i)
    k = rotl((k * c1) & 0xFFFFFFFF, 15)
    h ^= (k * c2) & 0xFFFFFFFF
    h ^= len(data) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h

M64 = (1 << 64) - 1

def mulx(x, y):
    r = (x & M64) * (y & M64)
    return (r & M64) ^ (r >> 64)

def boost_hash(data):
    q, k = 0x9E3779B97F4A7C15, 0xDF442D22CE4859B9
    n, p = len(data), 0
    w = mulx(q, k)
    h = w ^ n
    while n - p >= 8:
        w = (w + q) & M64
        h ^= mulx((struct.unpack_from("<Q", data, p)[0] + w) & M64, k)
        p += 8
    rest = n - p
    v = 0
    if rest >= 4:
        lo = struct.unpack_from("<I", data, p)[0]
        hi = struct.unpack_from("<I", data, p + rest - 4)[0]
        v = (hi << ((rest - 4) * 8)) | lo
    elif rest >= 1:
        x1, x2 = (rest - 1) & 2, rest >> 1
        v = (data[p + x1] << (x1 * 8)) | (data[p + x2] << (x2 * 8)) | data[p]
    w = (w + q) & M64
    h ^= mulx((v + w) & M64, k)
    return mulx((h + w) & M64, k)

counts = [int(x) for x in sys.argv[2].split(",")]
keys = open(sys.argv[1], encoding="utf-8").read().split("\n")[:-1]
for i, key in enumerate(keys):
    j = java_hash(key) & 0x7FFFFFFF
    m = murmur3_32(key.encode("utf-8")) & 0x7FFFFFFF
    b = boost_hash(key.encode("utf-8")) & 0x7FFFFFFF
    for n in counts:
        print("%d %d %d %d %d" % (i, n, j % n, m % n, b % n))
"#;

fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pulsar-interop-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("create work dir");
    dir
}

fn run_python(script: &str, dir: &Path, args: &[&str]) -> String {
    let path = dir.join("script.py");
    std::fs::write(&path, script).expect("write script");
    let out = python_command()
        .arg(&path)
        .args(args)
        .output()
        .expect("the test interpreter (PULSAR_TEST_PYTHON, .venv or python3) must run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Payloads of several shapes: empty, tiny, text-like, incompressible, long runs, > 64 KiB.
fn payloads() -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    };
    let text: Vec<u8> = (0..50_000)
        .flat_map(|i: u32| format!("message {i} with key k-{} ", i % 97).into_bytes())
        .take(300_000)
        .collect();
    let mut mixed = Vec::new();
    for i in 0..200 {
        if i % 2 == 0 {
            mixed.extend_from_slice(&noise(700));
        } else {
            mixed.extend(std::iter::repeat_n(b'z', 900));
        }
    }
    vec![
        Vec::new(),
        b"x".to_vec(),
        b"hello pulsar".to_vec(),
        noise(1000),
        vec![0u8; 70_000],
        text,
        mixed,
    ]
}

const CODECS: [(CompressionType, &str); 4] = [
    (CompressionType::Lz4, "LZ4"),
    (CompressionType::Zlib, "ZLIB"),
    (CompressionType::Zstd, "ZSTD"),
    (CompressionType::Snappy, "SNAPPY"),
];

#[test]
fn codecs_interoperate_with_reference_libraries() {
    let dir = work_dir("codecs");
    let cases = payloads();
    for (i, raw) in cases.iter().enumerate() {
        std::fs::write(dir.join(format!("raw_{i}.bin")), raw).expect("write raw");
        for (kind, name) in CODECS {
            let mut out = Vec::new();
            compress(kind, raw, &mut out).expect("compress");
            std::fs::write(dir.join(format!("ours_{name}_{i}.bin")), &out).expect("write ours");
        }
    }

    // Ours -> reference decoders (checked in Python), and reference encoders -> files.
    let report = run_python(
        PY_CODECS,
        &dir,
        &[&dir.to_string_lossy(), &cases.len().to_string()],
    );
    assert_eq!(
        report.trim(),
        format!("checked {}", cases.len() * CODECS.len()),
        "every payload of ours decoded by every reference library"
    );

    // Reference encoders -> ours.
    let mut checked = 0;
    for (i, raw) in cases.iter().enumerate() {
        for (kind, name) in CODECS
            .iter()
            .copied()
            .chain([(CompressionType::Zlib, "ZLIBJAVA")])
        {
            let theirs =
                std::fs::read(dir.join(format!("ref_{name}_{i}.bin"))).expect("reference output");
            let back = decompress(kind, &theirs, raw.len(), raw.len()).unwrap_or_else(|e| {
                panic!("{name} case {i} ({} bytes): {e}", raw.len());
            });
            assert!(back[..] == raw[..], "{name} case {i}: wrong bytes");
            checked += 1;
        }
    }
    assert_eq!(checked, cases.len() * 5);
    std::fs::remove_dir_all(&dir).ok();
}

/// Keys of many shapes: ASCII, empty, long, Latin-1, CJK, astral (surrogate pairs in UTF-16).
fn keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..500).map(|i| format!("key-{i}")).collect();
    keys.push(String::new());
    keys.push("keykeykey2".into());
    keys.push("x".repeat(1000));
    let alphabet: Vec<char> = "aZ09-_/:é日本語Ωж😀🚀\u{7f}\u{80}\u{ffff}\u{10000}\u{10ffff}"
        .chars()
        .collect();
    let mut x: u32 = 12345;
    for len in 1..300 {
        let mut s = String::new();
        for _ in 0..(len % 37) + 1 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            s.push(alphabet[(x as usize) % alphabet.len()]);
        }
        keys.push(s);
    }
    keys
}

#[test]
fn key_routing_matches_python_reimplementations() {
    let dir = work_dir("routing");
    let keys = keys();
    let mut file = String::new();
    for k in &keys {
        assert!(!k.contains('\n'));
        writeln!(file, "{k}").expect("write key");
    }
    let key_path = dir.join("keys.txt");
    std::fs::write(&key_path, file).expect("write keys");
    let counts = [1u32, 2, 3, 7, 16, 100, 1000];
    let counts_arg = counts
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let out = run_python(
        PY_ROUTING,
        &dir,
        &[&key_path.to_string_lossy(), &counts_arg],
    );

    let mut lines = 0;
    for line in out.lines() {
        let f: Vec<u32> = line
            .split(' ')
            .map(|v| v.parse().expect("number"))
            .collect();
        let (i, n, java, murmur, boost) = (f[0] as usize, f[1], f[2], f[3], f[4]);
        let key = &keys[i];
        assert_eq!(
            partition_for_key(key, n, HashingScheme::JavaStringHash),
            java,
            "JavaStringHash {key:?} over {n}"
        );
        assert_eq!(
            partition_for_key(key, n, HashingScheme::Murmur3_32),
            murmur,
            "Murmur3_32 {key:?} over {n}"
        );
        assert_eq!(
            partition_for_key(key, n, HashingScheme::BoostHash),
            boost,
            "BoostHash {key:?} over {n}"
        );
        lines += 1;
    }
    assert_eq!(lines, keys.len() * counts.len());
    std::fs::remove_dir_all(&dir).ok();
}
