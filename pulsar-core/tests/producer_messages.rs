//! Producer: message options reach the wire, receipts become message ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::time::Duration;

use bytes::Bytes;
use producer_util::{completions, ready, sent, sim_at};
use pulsar_core::{Event, MessageId, OutgoingMessage, ProducerOptions};
use pulsar_proto::pb;

const T0: u64 = 1_700_000_000_000;

#[test]
fn every_message_option_reaches_the_metadata() {
    let mut sim = sim_at(T0);
    let p = ready(&mut sim, "t", ProducerOptions::with_name("opts"));
    sim.run_for(Duration::from_millis(7));
    let now = T0 + 7;
    let msgs = vec![
        OutgoingMessage::new(&b"plain"[..]),
        OutgoingMessage::new(&b"keyed"[..])
            .with_key("user-1")
            .with_ordering_key(&b"ok"[..])
            .with_property("a", "1")
            .with_property("b", "2")
            .with_event_time(1234),
        OutgoingMessage::new(&b"bytes-key"[..]).with_key_bytes(&[0xff, 0x00, 0x10]),
        OutgoingMessage::new(&b"user-seq"[..]).with_sequence_id(100),
        OutgoingMessage::new(&b"auto-after-user"[..]),
        OutgoingMessage::new(&b"after"[..]).with_deliver_after(Duration::from_secs(5)),
        OutgoingMessage::new(&b"at"[..]).with_deliver_at(T0 + 60_000),
        OutgoingMessage::new(&b"repl"[..])
            .with_replication_clusters(vec!["east".into(), "west".into()]),
        OutgoingMessage::new(&b"local"[..]).with_replication_disabled(),
    ];
    let ids: Vec<_> = msgs
        .into_iter()
        .map(|m| sim.client.send(sim.now, p, m).unwrap())
        .collect();
    sim.run_until_idle();

    let s = sent(&sim);
    assert_eq!(s.len(), 9);
    let seqs: Vec<u64> = s.iter().map(|x| x.send.sequence_id).collect();
    assert_eq!(seqs, vec![0, 1, 2, 100, 101, 102, 103, 104, 105]);
    for x in &s {
        assert_eq!(x.metadata.producer_name, "opts");
        assert_eq!(x.metadata.sequence_id, x.send.sequence_id);
        assert_eq!(x.metadata.publish_time, now);
        assert_eq!(x.send.num_messages, None, "not batched");
        assert_eq!(x.metadata.num_messages_in_batch, None);
    }
    assert_eq!(&s[0].payload[..], b"plain");
    assert_eq!(s[0].metadata.partition_key, None);
    assert!(s[0].metadata.properties.is_empty());

    let k = &s[1].metadata;
    assert_eq!(k.partition_key.as_deref(), Some("user-1"));
    assert_eq!(k.partition_key_b64_encoded, None);
    assert_eq!(k.ordering_key.as_deref(), Some(&b"ok"[..]));
    assert_eq!(k.event_time, Some(1234));
    assert_eq!(
        k.properties,
        vec![
            pb::KeyValue {
                key: "a".into(),
                value: "1".into()
            },
            pb::KeyValue {
                key: "b".into(),
                value: "2".into()
            }
        ]
    );
    let b = &s[2].metadata;
    assert_eq!(b.partition_key.as_deref(), Some("/wAQ"));
    assert_eq!(b.partition_key_b64_encoded, Some(true));

    assert_eq!(s[5].metadata.deliver_at_time, Some((now + 5_000) as i64));
    assert_eq!(s[6].metadata.deliver_at_time, Some((T0 + 60_000) as i64));
    assert_eq!(s[0].metadata.deliver_at_time, None);
    assert_eq!(s[7].metadata.replicate_to, vec!["east", "west"]);
    assert_eq!(s[8].metadata.replicate_to, vec!["__local__"]);
    assert!(s[0].metadata.replicate_to.is_empty());

    let done = completions(&sim);
    let expected: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, Ok(MessageId::new(7, i as u64, -1))))
        .collect();
    assert_eq!(done, expected);
}

#[test]
fn receipts_on_a_named_partition_carry_the_partition_index() {
    let mut sim = sim_at(T0);
    let p = ready(
        &mut sim,
        "persistent://public/default/orders-partition-3",
        ProducerOptions::default(),
    );
    let s = sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    sim.run_until_idle();
    // no PARTITIONED_METADATA for an explicit partition
    assert!(sim
        .received_of(pulsar_proto::pb::base_command::Type::PartitionedMetadata)
        .is_empty());
    let reg = sim.received_of(pulsar_proto::pb::base_command::Type::Producer);
    assert_eq!(
        reg[0].command.producer.as_deref().unwrap().topic,
        "persistent://public/default/orders-partition-3"
    );
    let done = completions(&sim);
    assert_eq!(done, vec![(s, Ok(MessageId::new(7, 0, 3)))]);
}

#[test]
fn payload_bytes_are_sent_unchanged_and_without_copies_of_the_key_in_properties() {
    let mut sim = sim_at(T0);
    let p = ready(&mut sim, "t", ProducerOptions::default());
    let payload = Bytes::from((0..=255u8).cycle().take(10_000).collect::<Vec<u8>>());
    sim.client
        .send(
            sim.now,
            p,
            OutgoingMessage::new(payload.clone()).with_key("k"),
        )
        .unwrap();
    sim.run_until_idle();
    let s = sent(&sim);
    assert_eq!(s[0].payload, payload);
    assert_eq!(s[0].metadata.compression, None);
    assert_eq!(s[0].metadata.uncompressed_size, None);
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::SendCompleted { result: Ok(_), .. })));
}
