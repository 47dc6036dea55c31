//! A fixed workload for instruction counting: encodes or decodes 64-frame buffers of 100 B
//! SEND frames (the frames of `benches/benches/codec.rs`), so that
//!
//! ```text
//! cargo build --release -p pulsar-proto --example codec_profile
//! valgrind --tool=callgrind target/release/examples/codec_profile decode 2000
//! valgrind --tool=callgrind target/release/examples/codec_profile decode-reuse 2000
//! ```
//!
//! gives instructions per frame as the inclusive cost of `encode_frames` / `decode_frames` /
//! `decode_frames_reusing` (`FrameDecoder::decode_into` into one `Frame` kept across buffers)
//! divided by the frame count (printed). Wall time on a shared machine is too noisy for
//! small changes; instruction counts are not.

use bytes::BytesMut;
use pulsar_proto::{pb, Frame, FrameDecoder};

const FRAMES: usize = 64;
const PAYLOAD: usize = 100;

fn send(seq: u64) -> pb::CommandSend {
    pb::CommandSend {
        producer_id: 1,
        sequence_id: seq,
        num_messages: Some(1),
        ..Default::default()
    }
}

fn metadata(seq: u64) -> pb::MessageMetadata {
    pb::MessageMetadata {
        producer_name: "standalone-0-42".into(),
        sequence_id: seq,
        publish_time: 1_700_000_000_000 + seq,
        uncompressed_size: Some(PAYLOAD as u32),
        ..Default::default()
    }
}

#[inline(never)]
fn encode_frames(
    send: &pb::CommandSend,
    metadata: &pb::MessageMetadata,
    payload: &[u8],
    out: &mut BytesMut,
) {
    out.clear();
    for _ in 0..FRAMES {
        pulsar_proto::encode_send(send, metadata, payload, out);
    }
}

/// Decodes and drops every frame of `buf`, as a reader does.
#[inline(never)]
fn decode_frames(decoder: &FrameDecoder, mut buf: BytesMut) -> usize {
    let mut n = 0;
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        std::hint::black_box(&frame);
        n += 1;
    }
    n
}

/// Decodes every frame of `buf` into `frame`, reusing what the previous frame allocated.
#[inline(never)]
fn decode_frames_reusing(decoder: &FrameDecoder, mut buf: BytesMut, frame: &mut Frame) -> usize {
    let mut n = 0;
    while let Ok(true) = decoder.decode_into(&mut buf, frame) {
        std::hint::black_box(&*frame);
        n += 1;
    }
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "decode".into());
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let payload = vec![0xab_u8; PAYLOAD];
    let mut frames = 0;
    match mode.as_str() {
        "encode" => {
            let (send, metadata) = (send(7), metadata(7));
            let mut out = BytesMut::with_capacity(FRAMES * (PAYLOAD + 128));
            for _ in 0..rounds {
                encode_frames(
                    std::hint::black_box(&send),
                    std::hint::black_box(&metadata),
                    &payload,
                    &mut out,
                );
                frames += FRAMES;
            }
        }
        _ => {
            let mut wire = BytesMut::new();
            for seq in 0..FRAMES as u64 {
                pulsar_proto::encode_send(&send(seq), &metadata(seq), &payload, &mut wire);
            }
            let decoder = FrameDecoder::default();
            if mode == "decode-reuse" {
                let mut frame = Frame::empty();
                for _ in 0..rounds {
                    frames += decode_frames_reusing(&decoder, wire.clone(), &mut frame);
                }
            } else {
                for _ in 0..rounds {
                    frames += decode_frames(&decoder, wire.clone());
                }
            }
        }
    }
    println!("{mode}: {frames} frames");
}
