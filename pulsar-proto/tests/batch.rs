//! Batch container: layout and every error.

#![allow(clippy::unwrap_used)] // tests unwrap to fail loudly

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use pulsar_proto::batch::{self, BatchError};
use pulsar_proto::pb;

fn meta(payload_size: i32) -> pb::SingleMessageMetadata {
    pb::SingleMessageMetadata {
        payload_size,
        partition_key: Some("key".into()),
        properties: vec![pb::KeyValue {
            key: "a".into(),
            value: "b".into(),
        }],
        ..Default::default()
    }
}

fn two_entries() -> BytesMut {
    let mut out = BytesMut::new();
    batch::encode_entry(&meta(5), b"first", &mut out);
    batch::encode_entry(&meta(6), b"second", &mut out);
    out
}

#[test]
fn layout_is_size_metadata_payload() {
    let mut out = BytesMut::new();
    batch::encode_entry(&meta(3), b"abc", &mut out);
    let encoded = meta(3).encode_to_vec();
    let mut expected = Vec::new();
    expected.put_u32(encoded.len() as u32);
    expected.extend_from_slice(&encoded);
    expected.extend_from_slice(b"abc");
    assert_eq!(&out[..], &expected[..]);
}

#[test]
fn splits_entries_and_ignores_trailing_bytes() {
    let mut data = two_entries();
    data.put_slice(b"trailing");
    let mut entries = batch::split(data.freeze(), 2);
    let first = entries.next().unwrap().unwrap();
    assert_eq!(first.metadata, meta(5));
    assert_eq!(&first.payload[..], b"first");
    let second = entries.next().unwrap().unwrap();
    assert_eq!(&second.payload[..], b"second");
    assert!(entries.next().is_none());
    assert_eq!(&entries.remaining()[..], b"trailing");
}

#[test]
fn count_limits_the_entries() {
    let data = two_entries().freeze();
    assert_eq!(batch::split(data.clone(), 1).count(), 1);
    assert_eq!(batch::split(data, 0).count(), 0);
}

#[test]
fn count_larger_than_the_entries_ends_with_truncated() {
    let data = two_entries().freeze();
    let results: Vec<_> = batch::split(data, 5).collect();
    assert_eq!(results.len(), 3, "two entries, one error, then stop");
    assert!(results[0].is_ok() && results[1].is_ok());
    assert_eq!(
        results[2],
        Err(BatchError::Truncated {
            index: 2,
            needed: 4,
            available: 0
        })
    );
}

#[test]
fn metadata_size_past_the_end() {
    let mut data = BytesMut::new();
    data.put_u32(100);
    data.put_slice(&[0x18, 0x01]);
    let results: Vec<_> = batch::split(data.freeze(), 1).collect();
    assert_eq!(
        results,
        vec![Err(BatchError::Truncated {
            index: 0,
            needed: 100,
            available: 2
        })]
    );
}

#[test]
fn payload_past_the_end() {
    let mut data = BytesMut::new();
    batch::encode_entry(&meta(4), b"abcd", &mut data);
    data.truncate(data.len() - 1);
    let results: Vec<_> = batch::split(data.freeze(), 1).collect();
    assert_eq!(
        results,
        vec![Err(BatchError::Truncated {
            index: 0,
            needed: 4,
            available: 3
        })]
    );
}

#[test]
fn malformed_metadata() {
    let mut data = BytesMut::new();
    data.put_u32(2);
    data.put_slice(&[0x12, 0x05]); // partition_key claims 5 bytes, none follow
    let results: Vec<_> = batch::split(data.freeze(), 3).collect();
    assert_eq!(results.len(), 1);
    assert!(matches!(
        results[0],
        Err(BatchError::Protobuf { index: 0, .. })
    ));
}

#[test]
fn negative_payload_size() {
    let mut data = BytesMut::new();
    let bad = pb::SingleMessageMetadata {
        payload_size: -1,
        ..Default::default()
    };
    let encoded = bad.encode_to_vec();
    data.put_u32(encoded.len() as u32);
    data.put_slice(&encoded);
    let results: Vec<_> = batch::split(data.freeze(), 1).collect();
    assert_eq!(
        results,
        vec![Err(BatchError::NegativePayloadSize { index: 0, size: -1 })]
    );
}

#[test]
fn huge_count_does_not_preallocate() {
    let entries = batch::split(Bytes::from_static(&[0, 0]), u32::MAX);
    assert!(entries.size_hint().1.unwrap() <= 1);
    let collected: Vec<_> = entries.collect();
    assert_eq!(collected.len(), 1);
    assert!(collected[0].is_err());
}
