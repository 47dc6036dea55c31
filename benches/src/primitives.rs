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
    /// CPU time of the sending thread (mostly the kernel copying into the socket) per byte
    /// written to a loopback TCP connection in 64 KiB writes; 0 when it could not be measured.
    #[serde(default)]
    pub tcp_send_ns_per_byte: f64,
}

impl Primitives {
    /// One copy plus one checksum per byte (cached copy): the least a client that copies the
    /// payload once can spend.
    pub fn copy_and_crc_ns_per_byte(&self) -> f64 {
        self.memcpy_ns_per_byte_cached + self.crc32c_ns_per_byte
    }

    /// One copy, one checksum and the socket write: what sending a payload byte costs at least.
    pub fn floor_ns_per_byte(&self) -> f64 {
        self.copy_and_crc_ns_per_byte() + self.tcp_send_ns_per_byte
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

fn thread_cpu_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Sender-thread CPU per byte over a loopback TCP connection (a reader thread drains it).
fn tcp_send_ns_per_byte() -> Option<f64> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    let addr = listener.local_addr().ok()?;
    let reader = std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut buf = vec![0u8; 256 * 1024];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut w = std::net::TcpStream::connect(addr).ok()?;
    let chunk = vec![0x3cu8; 64 * 1024];
    let total = 256usize << 20;
    let cpu0 = thread_cpu_s();
    let mut sent = 0;
    while sent < total {
        w.write_all(&chunk).ok()?;
        sent += chunk.len();
    }
    let cpu = thread_cpu_s() - cpu0;
    drop(w);
    let _ = reader.join();
    Some(cpu * 1e9 / total as f64)
}

/// Measures the primitives (a few seconds).
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
        tcp_send_ns_per_byte: tcp_send_ns_per_byte().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_add_up() {
        let p = Primitives {
            memcpy_ns_per_byte_cached: 0.02,
            memcpy_ns_per_byte_dram: 0.1,
            crc32c_ns_per_byte: 0.03,
            tcp_send_ns_per_byte: 0.2,
        };
        assert!((p.copy_and_crc_ns_per_byte() - 0.05).abs() < 1e-12);
        assert!((p.floor_ns_per_byte() - 0.25).abs() < 1e-12);
    }
}
