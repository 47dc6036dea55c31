//! End-to-end encryption per entry: pulsar-crypto's `Encryptor::encrypt` and
//! `Decryptor::decrypt` (data key cached, as for every entry after the first under a data key)
//! next to AWS-LC's bare AES-256-GCM on the same bytes in the same run, for 100 B and 64 KiB.
//!
//! * `aes_gcm_seal`: copy the payload into a new buffer (room for the tag) and seal it in place
//!   under one fixed key and nonce (the key set up once, as the client's data key is);
//!   `aes_gcm_open`: open the sealed bytes straight into a new buffer of the plaintext's size.
//!   The cipher's own cost, with the new buffer every API that returns new bytes needs.
//! * `encrypt`: the entry's IV, the sealed copy, and the metadata (`encryption_keys` with the
//!   wrapped data key, `encryption_param`), whose drop is timed too.
//! * `decrypt`: the IV check, the cached data key's lookup by its wrapped bytes, the opened copy.
//! * `new_data_key`: an encryption that draws a new data key and wraps it with RSA-2048
//!   (rotation interval zero; the key file read and parsed as well): what one rotation (or the
//!   first entry) costs.
//!
//! All four per-entry operations run in the same harness (`iter_batched_ref`): the output, and
//! the entry's empty metadata that the producer builds with or without encryption, are made
//! and dropped outside the timing.
//!
//! Run: `cargo bench -p pulsar-benches --bench crypto -- --noplot`. Instruction counts (for a
//! loaded machine): `PULSAR_CRYPTO_COUNT="encrypt 100 10000" valgrind --tool=callgrind
//! target/release/deps/crypto-*` against the same with `0`, see `count_mode`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use criterion::{black_box, criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};
use pulsar_core::proto::pb;
use pulsar_crypto::{Decryptor, Encryptor, MessageDecryptor, MessageEncryptor, PemKeyReader};

fn reader() -> Arc<PemKeyReader> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/keys");
    Arc::new(PemKeyReader::files(
        Some(dir.join("rsa-a.public.pem")),
        Some(dir.join("rsa-a.private.pem")),
    ))
}

/// The operations measured, one entry's worth each; `Op::run` is what criterion times and what
/// the callgrind mode counts.
#[derive(Clone, Copy, PartialEq)]
enum Op {
    Seal,
    Encrypt,
    Open,
    Decrypt,
}

struct Setup {
    now: Instant,
    key: LessSafeKey,
    enc: Encryptor,
    dec: Decryptor,
    payload: Vec<u8>,
    /// `payload` sealed by `key` under the fixed nonce.
    sealed: Vec<u8>,
    /// `payload` encrypted by `enc`, and its metadata.
    ours: Vec<u8>,
    metadata: pb::MessageMetadata,
}

impl Setup {
    fn new(size: usize) -> Setup {
        let now = Instant::now();
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[9u8; 32]).unwrap());
        let enc = Encryptor::new(["rsa-a"], reader());
        let dec = Decryptor::new(reader());
        let payload = vec![0x5au8; size];
        let mut sealed = payload.clone();
        let nonce = Nonce::assume_unique_for_key([1u8; 12]);
        key.seal_in_place_append_tag(nonce, Aad::empty(), &mut sealed)
            .unwrap();
        let mut metadata = pb::MessageMetadata::default();
        let ours = enc.encrypt(now, &mut metadata, &payload).unwrap();
        // the data key unwrapped and cached, as for every entry after the first under it
        dec.decrypt(now, &metadata, &ours).unwrap();
        Setup {
            now,
            key,
            enc,
            dec,
            payload,
            sealed,
            ours,
            metadata,
        }
    }

    /// One operation. `metadata` is an entry's fresh (empty) metadata, which the producer builds
    /// with or without encryption; the encryption fields are dropped here (timed), the empty
    /// metadata and the output by the caller.
    fn run(&self, op: Op, metadata: &mut pb::MessageMetadata) -> Vec<u8> {
        match op {
            Op::Seal => {
                let mut out = Vec::with_capacity(self.payload.len() + 16);
                out.extend_from_slice(&self.payload);
                let nonce = Nonce::assume_unique_for_key([1u8; 12]);
                self.key
                    .seal_in_place_append_tag(nonce, Aad::empty(), &mut out)
                    .unwrap();
                out
            }
            Op::Encrypt => {
                let out = self.enc.encrypt(self.now, metadata, &self.payload).unwrap();
                black_box(&*metadata);
                metadata.encryption_keys = Vec::new();
                metadata.encryption_param = None;
                out
            }
            Op::Open => {
                let (ciphertext, tag) = self.sealed.split_at(self.sealed.len() - 16);
                let mut out = vec![0u8; ciphertext.len()];
                let nonce = Nonce::assume_unique_for_key([1u8; 12]);
                self.key
                    .open_separate_gather(nonce, Aad::empty(), ciphertext, tag, &mut out)
                    .unwrap();
                out
            }
            Op::Decrypt => self
                .dec
                .decrypt(self.now, &self.metadata, &self.ours)
                .unwrap(),
        }
    }
}

const OPS: [(Op, &str); 4] = [
    (Op::Seal, "aes_gcm_seal"),
    (Op::Encrypt, "encrypt"),
    (Op::Open, "aes_gcm_open"),
    (Op::Decrypt, "decrypt"),
];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("crypto");
    for size in [100usize, 64 * 1024] {
        let s = Setup::new(size);
        g.throughput(Throughput::Bytes(size as u64));
        for (op, name) in OPS {
            // the same harness for the cipher and the client: the output, and the empty
            // metadata, are dropped outside the timing
            g.bench_with_input(BenchmarkId::new(name, size), &s, |b, s| {
                b.iter_batched_ref(
                    pb::MessageMetadata::default,
                    |m| s.run(op, m),
                    BatchSize::SmallInput,
                );
            });
        }
    }
    g.throughput(Throughput::Elements(1));
    let now = Instant::now();
    let rotating = Encryptor::new(["rsa-a"], reader()).with_rotation(Duration::ZERO);
    g.bench_function("new_data_key", |b| {
        b.iter(|| {
            let mut metadata = pb::MessageMetadata::default();
            black_box(rotating.encrypt(now, &mut metadata, b"x").unwrap())
        });
    });
    g.finish();
}

/// `PULSAR_CRYPTO_COUNT="<op> <size> <n>"`: runs `op` (`aes_gcm_seal`, `encrypt`,
/// `aes_gcm_open`, `decrypt`) `n` times on `size` bytes and exits, for instruction counts under
/// callgrind: per operation, (count with n) - (count with 0), divided by n.
fn count_mode() -> bool {
    let Ok(spec) = std::env::var("PULSAR_CRYPTO_COUNT") else {
        return false;
    };
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let [name, size, n] = parts[..] else {
        panic!("PULSAR_CRYPTO_COUNT: <op> <size> <n>");
    };
    let op = OPS.iter().find(|(_, id)| *id == name).unwrap().0;
    let s = Setup::new(size.parse().unwrap());
    let n: usize = n.parse().unwrap();
    let mut metadata = pb::MessageMetadata::default();
    for _ in 0..n {
        // as under criterion: a fresh metadata and the output dropped by the caller
        black_box(s.run(op, &mut metadata));
    }
    black_box(metadata);
    true
}

criterion_group!(benches, bench);

fn main() {
    if count_mode() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
