//! End-to-end encryption per entry: pulsar-crypto's `Encryptor::encrypt` and
//! `Decryptor::decrypt` (data key cached, as for every entry after the first under a data key)
//! next to AWS-LC's bare AES-256-GCM on the same bytes in the same run, for 100 B and 64 KiB.
//!
//! * `aes_gcm_seal` / `aes_gcm_open`: copy the payload into a new buffer and seal it (or open
//!   it) under one fixed key and nonce: the cipher's own cost, with the copy every API that
//!   returns new bytes makes.
//! * `encrypt`: a fresh random IV, the sealed copy, and the metadata (`encryption_keys` with the
//!   wrapped data key, `encryption_param`).
//! * `decrypt`: the IV check, the cached data key's lookup by its wrapped bytes, the opened copy.
//! * `new_data_key`: an encryption that draws a new data key and wraps it with RSA-2048
//!   (rotation interval zero; the key file read and parsed as well): what one rotation (or the
//!   first entry) costs.
//!
//! Run: `cargo bench -p pulsar-benches --bench crypto -- --noplot`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use pulsar_core::proto::pb;
use pulsar_crypto::{Decryptor, Encryptor, MessageDecryptor, MessageEncryptor, PemKeyReader};

fn reader() -> Arc<PemKeyReader> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/keys");
    Arc::new(PemKeyReader::files(
        Some(dir.join("rsa-a.public.pem")),
        Some(dir.join("rsa-a.private.pem")),
    ))
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[9u8; 32]).unwrap());
    let enc = Encryptor::new(["rsa-a"], reader());
    let dec = Decryptor::new(reader());
    let mut g = c.benchmark_group("crypto");
    for size in [100usize, 64 * 1024] {
        let payload = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("aes_gcm_seal", size), &payload, |b, p| {
            b.iter(|| {
                let mut out = Vec::with_capacity(p.len() + 16);
                out.extend_from_slice(p);
                let nonce = Nonce::assume_unique_for_key([1u8; 12]);
                key.seal_in_place_append_tag(nonce, Aad::empty(), &mut out)
                    .unwrap();
                black_box(out)
            });
        });
        g.bench_with_input(BenchmarkId::new("encrypt", size), &payload, |b, p| {
            b.iter(|| {
                let mut metadata = pb::MessageMetadata::default();
                black_box(enc.encrypt(now, &mut metadata, p).unwrap());
                black_box(metadata)
            });
        });
        let mut sealed = payload.clone();
        let nonce = Nonce::assume_unique_for_key([1u8; 12]);
        key.seal_in_place_append_tag(nonce, Aad::empty(), &mut sealed)
            .unwrap();
        g.bench_with_input(BenchmarkId::new("aes_gcm_open", size), &sealed, |b, s| {
            b.iter(|| {
                let mut buf = s.to_vec();
                let nonce = Nonce::assume_unique_for_key([1u8; 12]);
                let n = key
                    .open_in_place(nonce, Aad::empty(), &mut buf)
                    .unwrap()
                    .len();
                buf.truncate(n);
                black_box(buf)
            });
        });
        let mut metadata = pb::MessageMetadata::default();
        let ours = enc.encrypt(now, &mut metadata, &payload).unwrap();
        dec.decrypt(now, &metadata, &ours).unwrap();
        g.bench_with_input(BenchmarkId::new("decrypt", size), &ours, |b, s| {
            b.iter(|| black_box(dec.decrypt(now, &metadata, s).unwrap()));
        });
    }
    g.throughput(Throughput::Elements(1));
    let rotating = Encryptor::new(["rsa-a"], reader()).with_rotation(Duration::ZERO);
    g.bench_function("new_data_key", |b| {
        b.iter(|| {
            let mut metadata = pb::MessageMetadata::default();
            black_box(rotating.encrypt(now, &mut metadata, b"x").unwrap())
        });
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
