//! Codec micro-benchmarks: this project's `pulsar-proto` side by side with pulsar-rs
//! (`pulsar` 6.x, `pulsar::message::Codec`) in the same run.
//!
//! * `frame_encode/<size>` and `frame_decode/<size>` (`pulsar-proto` = `FrameDecoder::decode`,
//!   `pulsar-proto-reuse` = `FrameDecoder::decode_into` reusing one `Frame`): a SEND frame (CommandSend + a typical
//!   MessageMetadata) with a payload of 100 B, 1 KiB, 64 KiB or 1 MiB. Each iteration handles a
//!   buffer of several frames (64 for the small sizes) so per-buffer costs are amortised as on a
//!   connection; criterion's throughput line gives frames per second, and the time per
//!   iteration divided by the frame count gives ns per frame.
//! * `batch_encode/<n>` and `batch_split/<n>`: a batch container of n × 100 B messages.
//!   pulsar-rs keeps its batch routines crate-private, so its side is a model of the same steps
//!   it takes (owned `Vec` per entry, entries written to a fresh `Vec`, each entry's payload
//!   copied out when splitting), built on its public generated types.
//!
//! pulsar-rs's side is built only with the benches crate's `pulsar-rs` feature (its build needs
//! `protoc`; `scripts/bench` turns the feature on); without it this bench measures `pulsar-proto`
//! alone.

#![allow(clippy::unwrap_used, missing_docs)]

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pulsar_proto::{batch, pb, Frame, FrameDecoder};

const SIZES: &[(&str, usize)] = &[
    ("100B", 100),
    ("1KiB", 1024),
    ("64KiB", 64 * 1024),
    ("1MiB", 1024 * 1024),
];

/// Frames per iteration: 64, fewer for big payloads to keep buffers near 4 MiB.
fn frames_for(size: usize) -> usize {
    (4 * 1024 * 1024 / size).clamp(1, 64)
}

fn ours_send(seq: u64) -> pb::CommandSend {
    pb::CommandSend {
        producer_id: 1,
        sequence_id: seq,
        num_messages: Some(1),
        ..Default::default()
    }
}

fn ours_metadata(seq: u64) -> pb::MessageMetadata {
    pb::MessageMetadata {
        producer_name: "standalone-0-42".into(),
        sequence_id: seq,
        publish_time: 1_700_000_000_000 + seq,
        uncompressed_size: Some(100),
        ..Default::default()
    }
}

fn frame_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_encode");
    for &(name, size) in SIZES {
        let frames = frames_for(size);
        let payload = vec![0xab_u8; size];
        group.throughput(Throughput::Elements(frames as u64));

        let send = ours_send(7);
        let metadata = ours_metadata(7);
        let mut out = BytesMut::with_capacity(frames * (size + 128));
        group.bench_function(format!("pulsar-proto/{name}"), |b| {
            b.iter(|| {
                out.clear();
                for _ in 0..frames {
                    pulsar_proto::encode_send(
                        black_box(&send),
                        black_box(&metadata),
                        black_box(&payload),
                        &mut out,
                    );
                }
                black_box(out.len())
            })
        });

        #[cfg(feature = "pulsar-rs")]
        pulsar_rs::frame_encode(&mut group, name, frames, &payload);
    }
    group.finish();
}

fn frame_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_decode");
    for &(name, size) in SIZES {
        let frames = frames_for(size);
        let payload = vec![0xab_u8; size];
        group.throughput(Throughput::Elements(frames as u64));

        let mut wire = BytesMut::new();
        for seq in 0..frames as u64 {
            pulsar_proto::encode_send(&ours_send(seq), &ours_metadata(seq), &payload, &mut wire);
        }
        let decoder = FrameDecoder::default();
        group.bench_function(format!("pulsar-proto/{name}"), |b| {
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    let mut n = 0;
                    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                        black_box(&frame);
                        n += 1;
                    }
                    assert_eq!(n, frames);
                },
                BatchSize::LargeInput,
            )
        });
        // `decode_into` into one frame kept across frames (and iterations), as a connection's
        // read loop keeps it: the previous frame's boxes and strings are reused.
        let mut frame = Frame::empty();
        group.bench_function(format!("pulsar-proto-reuse/{name}"), |b| {
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    let mut n = 0;
                    while decoder.decode_into(&mut buf, &mut frame).unwrap() {
                        black_box(&frame);
                        n += 1;
                    }
                    assert_eq!(n, frames);
                },
                BatchSize::LargeInput,
            )
        });
        #[cfg(feature = "pulsar-rs")]
        pulsar_rs::frame_decode(&mut group, name, frames, &wire, &payload);
    }
    group.finish();
}

const BATCH_COUNTS: &[usize] = &[1, 10, 100, 1000];
const BATCH_PAYLOAD: usize = 100;

fn ours_entry_metadata(i: usize) -> pb::SingleMessageMetadata {
    pb::SingleMessageMetadata {
        payload_size: BATCH_PAYLOAD as i32,
        sequence_id: Some(i as u64),
        ..Default::default()
    }
}

fn batch_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_encode");
    let payload = vec![0xcd_u8; BATCH_PAYLOAD];
    for &n in BATCH_COUNTS {
        group.throughput(Throughput::Elements(n as u64));
        let metas: Vec<_> = (0..n).map(ours_entry_metadata).collect();
        let mut out = BytesMut::with_capacity(n * (BATCH_PAYLOAD + 16));
        group.bench_function(format!("pulsar-proto/{n}"), |b| {
            b.iter(|| {
                out.clear();
                for meta in &metas {
                    batch::encode_entry(black_box(meta), black_box(&payload), &mut out);
                }
                black_box(out.len())
            })
        });

        #[cfg(feature = "pulsar-rs")]
        pulsar_rs::batch_encode(&mut group, n, &payload);
    }
    group.finish();
}

fn batch_split(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_split");
    let payload = vec![0xcd_u8; BATCH_PAYLOAD];
    for &n in BATCH_COUNTS {
        group.throughput(Throughput::Elements(n as u64));
        let mut buf = BytesMut::new();
        for i in 0..n {
            batch::encode_entry(&ours_entry_metadata(i), &payload, &mut buf);
        }
        let bytes: Bytes = buf.freeze();

        group.bench_function(format!("pulsar-proto/{n}"), |b| {
            b.iter(|| {
                let mut count = 0;
                for entry in batch::split(black_box(bytes.clone()), n as u32) {
                    black_box(entry.unwrap());
                    count += 1;
                }
                assert_eq!(count, n);
            })
        });

        #[cfg(feature = "pulsar-rs")]
        pulsar_rs::batch_split(&mut group, n, &bytes);
    }
    group.finish();
}

/// pulsar-rs's side of each group (with the `pulsar-rs` feature only).
#[cfg(feature = "pulsar-rs")]
mod pulsar_rs {
    use bytes::{BufMut, BytesMut};
    use criterion::measurement::WallTime;
    use criterion::{black_box, BatchSize, BenchmarkGroup};
    use prost::Message as _;
    use pulsar::message::proto as rs;
    use tokio_util::codec::{Decoder as _, Encoder as _};

    use super::BATCH_PAYLOAD;

    fn message(seq: u64, payload: &[u8]) -> pulsar::message::Message {
        pulsar::message::Message {
            command: rs::BaseCommand {
                r#type: rs::base_command::Type::Send as i32,
                send: Some(rs::CommandSend {
                    producer_id: 1,
                    sequence_id: seq,
                    num_messages: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            },
            payload: Some(pulsar::message::Payload {
                metadata: rs::MessageMetadata {
                    producer_name: "standalone-0-42".into(),
                    sequence_id: seq,
                    publish_time: 1_700_000_000_000 + seq,
                    uncompressed_size: Some(100),
                    ..Default::default()
                },
                data: payload.to_vec(),
            }),
        }
    }

    fn entry_metadata(i: usize) -> rs::SingleMessageMetadata {
        rs::SingleMessageMetadata {
            payload_size: BATCH_PAYLOAD as i32,
            sequence_id: Some(i as u64),
            ..Default::default()
        }
    }

    /// `frame_encode/pulsar-rs/<name>`: `frames` SEND frames of `payload` per iteration.
    pub fn frame_encode(
        group: &mut BenchmarkGroup<'_, WallTime>,
        name: &str,
        frames: usize,
        payload: &[u8],
    ) {
        let mut codec = pulsar::message::Codec;
        let message = message(7, payload);
        let mut out = BytesMut::with_capacity(frames * (payload.len() + 128));
        group.bench_function(format!("pulsar-rs/{name}"), |b| {
            b.iter_batched(
                // The codec takes messages by value: clones are made outside the timing.
                || vec![message.clone(); frames],
                |messages| {
                    out.clear();
                    for message in messages {
                        codec.encode(message, &mut out).unwrap();
                    }
                    black_box(out.len())
                },
                BatchSize::LargeInput,
            )
        });
    }

    /// `frame_decode/pulsar-rs/<name>`: the same `wire` bytes `pulsar-proto` decodes.
    pub fn frame_decode(
        group: &mut BenchmarkGroup<'_, WallTime>,
        name: &str,
        frames: usize,
        wire: &BytesMut,
        payload: &[u8],
    ) {
        // Both codecs read the same bytes.
        let mut check = wire.clone();
        let mut codec = pulsar::message::Codec;
        let first = codec.decode(&mut check).unwrap().unwrap();
        assert_eq!(first.payload.unwrap().data, payload);

        group.bench_function(format!("pulsar-rs/{name}"), |b| {
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    let mut n = 0;
                    while let Some(message) = codec.decode(&mut buf).unwrap() {
                        black_box(&message);
                        n += 1;
                    }
                    assert_eq!(n, frames);
                },
                BatchSize::LargeInput,
            )
        });
    }

    /// `batch_encode/pulsar-rs-model/<n>`: each queued entry owns a Vec copy of its payload, and
    /// the batch is serialised into a fresh Vec.
    pub fn batch_encode(group: &mut BenchmarkGroup<'_, WallTime>, n: usize, payload: &[u8]) {
        let metas: Vec<_> = (0..n).map(entry_metadata).collect();
        group.bench_function(format!("pulsar-rs-model/{n}"), |b| {
            b.iter(|| {
                let entries: Vec<(rs::SingleMessageMetadata, Vec<u8>)> = metas
                    .iter()
                    .map(|meta| (meta.clone(), black_box(payload).to_vec()))
                    .collect();
                let mut out = Vec::new();
                for (meta, data) in &entries {
                    out.put_u32(meta.encoded_len() as u32);
                    meta.encode(&mut out).unwrap();
                    out.put_slice(data);
                }
                black_box(out.len())
            })
        });
    }

    /// `batch_split/pulsar-rs-model/<n>`: entries decoded into a Vec, each payload copied into
    /// its own Vec.
    pub fn batch_split(group: &mut BenchmarkGroup<'_, WallTime>, n: usize, bytes: &[u8]) {
        group.bench_function(format!("pulsar-rs-model/{n}"), |b| {
            b.iter(|| {
                let mut rest: &[u8] = black_box(bytes);
                let mut entries = Vec::new();
                for _ in 0..n {
                    let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                    let meta = rs::SingleMessageMetadata::decode(&rest[4..4 + size]).unwrap();
                    let end = 4 + size + meta.payload_size as usize;
                    entries.push((meta, rest[4 + size..end].to_vec()));
                    rest = &rest[end..];
                }
                black_box(entries)
            })
        });
    }
}

criterion_group!(
    benches,
    frame_encode,
    frame_decode,
    batch_encode,
    batch_split
);
criterion_main!(benches);
