//! What a payload byte costs at least: memcpy and CRC32C measured in the harness process, to
//! compare with the per-byte slope of the clients' CPU time.

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Nanoseconds per byte of the primitives, over a 1 MiB buffer (in cache) and a 64 MiB one
/// (from memory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Primitives {
    /// memcpy, 1 MiB.
    pub memcpy_ns_per_byte_cached: f64,
    /// memcpy, 64 MiB.
    pub memcpy_ns_per_byte_dram: f64,
    /// `crc32c` crate (hardware instruction where available), 1 MiB.
    pub crc32c_ns_per_byte: f64,
}

impl Primitives {
    /// One copy plus one checksum per byte (cached copy): the least a client that copies the
    /// payload once can spend.
    pub fn copy_and_crc_ns_per_byte(&self) -> f64 {
        self.memcpy_ns_per_byte_cached + self.crc32c_ns_per_byte
    }
}

/// Best of `reps` timings of `f` over `bytes` bytes, in ns per byte.
fn best_ns_per_byte(bytes: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_nanos() as f64 / bytes as f64);
    }
    best
}

/// Measures the primitives (about a second).
pub fn measure() -> Primitives {
    let small = 1 << 20;
    let src = vec![0x5au8; small];
    let mut dst = vec![0u8; small];
    let memcpy_cached = best_ns_per_byte(small, 200, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&dst);
    });
    let crc = best_ns_per_byte(small, 200, || {
        black_box(crc32c::crc32c(black_box(&src)));
    });
    let big = 64 << 20;
    let src = vec![0xa5u8; big];
    let mut dst = vec![0u8; big];
    let memcpy_dram = best_ns_per_byte(big, 5, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&dst);
    });
    Primitives {
        memcpy_ns_per_byte_cached: memcpy_cached,
        memcpy_ns_per_byte_dram: memcpy_dram,
        crc32c_ns_per_byte: crc,
    }
}
