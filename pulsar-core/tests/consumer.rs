//! Consumer behaviour against a scripted broker: flow control, batches, chunks, every ack mode,
//! negative acks and the ack timeout (timing), dead-lettering, resubscription, readers, seek,
//! partitioned and pattern subscriptions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use pulsar_core::{
    ConsumerId, ConsumerOptions, DeadLetterPolicy, Error, Event, KeySharedPolicy, MessageId,
    ReaderOptions, ReceiveError, RedeliveryBackoff, SeekTo, SubscriptionType,
};
use pulsar_proto::pb::{self, base_command::Type};
use support::{message_with, meta, success, Reply, Sim, SERVICE};

const T: &str = "persistent://public/default/t";

/// A MESSAGE frame with everything settable.
fn msg(
    consumer: u64,
    entry: u64,
    redeliveries: u32,
    payload: &[u8],
    meta: pb::MessageMetadata,
) -> Reply {
    message_with(consumer, entry, payload, meta, |m| {
        m.redelivery_count = Some(redeliveries);
    })
}

/// A batch of `payloads` (uncompressed) with keys `k<i>`.
fn batch(consumer: u64, entry: u64, payloads: &[&str]) -> Reply {
    let mut data = BytesMut::new();
    for (i, p) in payloads.iter().enumerate() {
        let single = pb::SingleMessageMetadata {
            payload_size: p.len() as i32,
            partition_key: Some(format!("k{i}")),
            ..Default::default()
        };
        pulsar_proto::batch::encode_entry(&single, p.as_bytes(), &mut data);
    }
    let mut m = meta(entry);
    m.num_messages_in_batch = Some(payloads.len() as i32);
    msg(consumer, entry, 0, &data, m)
}

fn flows(sim: &Sim) -> Vec<u32> {
    sim.received_of(Type::Flow)
        .iter()
        .map(|f| f.command.flow.as_deref().unwrap().message_permits)
        .collect()
}

fn opts() -> ConsumerOptions {
    ConsumerOptions::new("sub")
}

#[test]
fn batches_larger_than_the_queue_never_stall_and_cost_one_permit_per_message() {
    let mut sim = Sim::new();
    let c = sim.subscribed(opts().with_receiver_queue_size(4));
    assert_eq!(flows(&sim), vec![4]);
    let conn = sim.conn_ids()[0];
    let ten: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = ten.iter().map(String::as_str).collect();
    sim.inject(conn, batch(c.get(), 1, &refs));
    let got = sim.drain(c);
    sim.run_until_idle();
    assert_eq!(got.len(), 10);
    assert_eq!(&got[9].payload[..], b"m9");
    assert_eq!(got[3].id.batch_index, 3);
    assert_eq!(got[3].id.batch_size, 10);
    assert_eq!(got[3].key.as_deref(), Some("k3"));
    // every consumed message is returned, in steps of half the queue
    assert_eq!(flows(&sim), vec![4, 2, 2, 2, 2, 2]);
    assert_eq!(flows(&sim).iter().sum::<u32>(), 4 + 10);
}

#[test]
fn batch_payloads_are_slices_of_the_frame() {
    let mut sim = Sim::new();
    let c = sim.subscribed(opts());
    let conn = sim.conn_ids()[0];
    sim.inject(conn, batch(c.get(), 1, &["aaaa", "bbbb", "cccc"]));
    let got = sim.drain(c);
    // consecutive entries: payload, then the next entry's 4-byte size and metadata, then payload
    let a = got[0].payload.as_ptr() as usize;
    let b = got[1].payload.as_ptr() as usize;
    assert!(b > a && b - a < 64, "payloads share one buffer");
}

#[test]
fn zero_queue_asks_for_one_message_per_receive_and_covers_batch_deficits() {
    let mut sim = Sim::new();
    let c = sim.subscribed(opts().with_receiver_queue_size(0));
    assert!(flows(&sim).is_empty(), "no permits on subscribe");
    assert!(sim.client.receive(sim.now, c).is_none());
    sim.run_until_idle();
    assert_eq!(flows(&sim), vec![1]);
    assert!(sim.client.receive(sim.now, c).is_none());
    sim.run_until_idle();
    assert_eq!(flows(&sim), vec![1], "one request outstanding at a time");
    let conn = sim.conn_ids()[0];
    sim.inject(conn, batch(c.get(), 1, &["a", "b", "c"]));
    assert_eq!(sim.drain(c).len(), 3);
    sim.run_until_idle();
    // 1 granted, 3 delivered: the next request covers the deficit
    assert_eq!(flows(&sim), vec![1, 3]);
}

#[test]
fn acknowledging_one_message_of_a_batch_never_acknowledges_its_neighbours() {
    let mut sim = Sim::new();
    let c = sim.subscribed(opts().with_ack_group_time(Duration::ZERO));
    let conn = sim.conn_ids()[0];
    sim.inject(conn, batch(c.get(), 1, &["a", "b", "c"]));
    let got = sim.drain(c);
    sim.client.ack(sim.now, c, &got[1].id).unwrap();
    sim.client.ack(sim.now, c, &got[0].id).unwrap();
    sim.run_until_idle();
    assert!(
        sim.acks().is_empty(),
        "nothing acknowledged while index 2 is not"
    );
    // a redelivery of the batch only shows the unacknowledged message
    sim.inject(conn, batch(c.get(), 1, &["a", "b", "c"]));
    let again = sim.drain(c);
    assert_eq!(again.len(), 1);
    assert_eq!(&again[0].payload[..], b"c");
    sim.client.ack_message(sim.now, &again[0]).unwrap();
    sim.run_until_idle();
    let a = sim.acks();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].message_id.len(), 1);
    assert_eq!(a[0].message_id[0].entry_id, 1);
    assert!(a[0].message_id[0].ack_set.is_empty(), "whole entry");
}

#[test]
fn batch_index_acks_send_the_remaining_set() {
    let mut sim = Sim::new();
    let mut o = opts().with_ack_group_time(Duration::ZERO);
    o.batch_index_ack = true;
    let c = sim.subscribed(o);
    let conn = sim.conn_ids()[0];
    sim.inject(conn, batch(c.get(), 1, &["a", "b", "c"]));
    let got = sim.drain(c);
    sim.client.ack(sim.now, c, &got[0].id).unwrap();
    sim.client.ack(sim.now, c, &got[2].id).unwrap();
    sim.client.ack(sim.now, c, &got[1].id).unwrap();
    sim.run_until_idle();
    let sets: Vec<Vec<i64>> = sim
        .acks()
        .iter()
        .map(|a| a.message_id[0].ack_set.clone())
        .collect();
    assert_eq!(sets, vec![vec![0b110], vec![0b010], vec![]]);
    // a redelivery carrying the broker's ack set skips acknowledged indexes without permits
    let mut m = pb::CommandMessage {
        consumer_id: c.get(),
        message_id: pb::MessageIdData {
            ledger_id: 9,
            entry_id: 2,
            ..Default::default()
        },
        ack_set: vec![0b100],
        ..Default::default()
    };
    m.redelivery_count = Some(1);
    let Reply::Payload(_, meta3, data) = batch(c.get(), 2, &["x", "y", "z"]) else {
        unreachable!()
    };
    sim.inject(conn, Reply::Payload(m.into(), meta3, data));
    let got = sim.drain(c);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"z");
    assert_eq!(got[0].redelivery_count, 1);
}

#[test]
fn acks_are_grouped_by_time_and_count() {
    let mut sim = Sim::new();
    let mut o = opts();
    o.ack_group_max = 3;
    let c = sim.subscribed(o);
    let conn = sim.conn_ids()[0];
    for e in 0..5 {
        sim.inject(conn, msg(c.get(), e, 0, b"x", meta(e)));
    }
    let got = sim.drain(c);
    let t0 = sim.elapsed();
    sim.client.ack(sim.now, c, &got[0].id).unwrap();
    sim.client.ack(sim.now, c, &got[1].id).unwrap();
    sim.run_until_idle();
    assert!(sim.acks().is_empty());
    sim.run_for(Duration::from_millis(99));
    assert!(sim.acks().is_empty(), "not before 100 ms");
    sim.run_for(Duration::from_millis(1));
    let a = sim.acks();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].message_id.len(), 2, "one ACK for both");
    assert_eq!(
        sim.received_of(Type::Ack)[0].at - t0,
        Duration::from_millis(100)
    );
    // three pending: flushed at once
    for m in &got[2..5] {
        sim.client.ack(sim.now, c, &m.id).unwrap();
    }
    sim.run_until_idle();
    assert_eq!(sim.acks().len(), 2);
    assert_eq!(sim.acks()[1].message_id.len(), 3);
}

#[test]
fn cumulative_acks_and_their_limits() {
    let mut sim = Sim::new();
    let c = sim.subscribed(opts().with_ack_group_time(Duration::ZERO));
    let conn = sim.conn_ids()[0];
    for e in 0..3 {
        sim.inject(conn, msg(c.get(), e, 0, b"x", meta(e)));
    }
    let got = sim.drain(c);
    sim.client.ack_cumulative(sim.now, c, &got[1].id).unwrap();
    sim.run_until_idle();
    let a = sim.acks();
    assert_eq!(a[0].ack_type, 1);
    assert_eq!(a[0].message_id[0].entry_id, 1);
    // redelivered messages up to the cumulative position are filtered
    sim.inject(conn, msg(c.get(), 0, 1, b"x", meta(0)));
    assert!(sim.client.receive(sim.now, c).is_none());

    let mut shared = Sim::new();
    let c = shared.subscribed(opts().with_type(SubscriptionType::Shared));
    assert!(matches!(
        shared
            .client
            .ack_cumulative(shared.now, c, &MessageId::new(9, 1, -1)),
        Err(Error::InvalidState(_))
    ));
}

#[test]
fn ack_receipts_report_the_brokers_answer() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let a = cmd.ack.as_deref()?;
        let r = a.request_id?;
        let error = (a.message_id[0].entry_id == 2).then_some(21);
        Some(vec![Reply::Cmd(
            pb::CommandAckResponse {
                consumer_id: a.consumer_id,
                request_id: Some(r),
                error,
                message: error.map(|_| "bad".to_string()),
                ..Default::default()
            }
            .into(),
        )])
    });
    let mut o = opts().with_ack_group_time(Duration::ZERO);
    o.ack_receipts = true;
    let c = sim.subscribed(o);
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(c.get(), 1, 0, b"x", meta(1)));
    sim.inject(conn, msg(c.get(), 2, 0, b"x", meta(2)));
    let got = sim.drain(c);
    let r1 = sim.client.ack(sim.now, c, &got[0].id).unwrap();
    let r2 = sim.client.ack(sim.now, c, &got[1].id).unwrap();
    sim.run_until_idle();
    let done: Vec<_> = sim
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::AckCompleted {
                request, result, ..
            } => Some((request, result.is_ok())),
            _ => None,
        })
        .collect();
    assert_eq!(done, vec![(r1, true), (r2, false)]);
    assert!(sim.acks().iter().all(|a| a.request_id.is_some()));
}

fn redelivers(sim: &Sim) -> Vec<(Vec<u64>, Option<u64>)> {
    sim.received_of(Type::RedeliverUnacknowledgedMessages)
        .iter()
        .map(|r| {
            let r = r
                .command
                .redeliver_unacknowledged_messages
                .as_deref()
                .unwrap();
            (
                r.message_ids.iter().map(|m| m.entry_id).collect(),
                r.consumer_epoch,
            )
        })
        .collect()
}

#[test]
fn negative_acks_redeliver_after_the_delay_on_shared() {
    let mut sim = Sim::new();
    let c = sim.subscribed(
        opts()
            .with_type(SubscriptionType::Shared)
            .with_negative_ack_delay(Duration::from_secs(5)),
    );
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(c.get(), 1, 0, b"a", meta(1)));
    sim.inject(conn, msg(c.get(), 2, 0, b"b", meta(2)));
    let got = sim.drain(c);
    let t0 = sim.now;
    sim.client.negative_ack_message(sim.now, &got[0]).unwrap();
    sim.run_for(Duration::from_millis(4999));
    assert!(redelivers(&sim).is_empty());
    sim.run_for(Duration::from_millis(1));
    assert_eq!(redelivers(&sim), vec![(vec![1], None)]);
    assert_eq!(
        sim.received_of(Type::RedeliverUnacknowledgedMessages)[0].at,
        t0 - sim.start + Duration::from_secs(5)
    );
    // the redelivery carries its count
    sim.inject(conn, msg(c.get(), 1, 1, b"a", meta(1)));
    assert_eq!(sim.client.receive(sim.now, c).unwrap().redelivery_count, 1);
}

#[test]
fn negative_ack_backoff_grows_with_the_redelivery_count() {
    let mut sim = Sim::new();
    let mut o = opts().with_type(SubscriptionType::Shared);
    o.negative_ack_backoff = Some(RedeliveryBackoff::new(
        Duration::from_secs(1),
        Duration::from_secs(60),
    ));
    let c = sim.subscribed(o);
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(c.get(), 1, 3, b"a", meta(1)));
    let m = sim.client.receive(sim.now, c).unwrap();
    let t0 = sim.now;
    sim.client.negative_ack_message(sim.now, &m).unwrap();
    sim.run_for(Duration::from_secs(10));
    let r = sim.received_of(Type::RedeliverUnacknowledgedMessages);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].at, t0 - sim.start + Duration::from_secs(8), "1 s × 2³");
}

#[test]
fn exclusive_redelivery_asks_for_everything_with_a_new_epoch_and_drops_stale_frames() {
    let mut sim = Sim::new();
    let c = sim.subscribed(opts().with_negative_ack_delay(Duration::from_secs(1)));
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(c.get(), 1, 0, b"a", meta(1)));
    sim.inject(conn, msg(c.get(), 2, 0, b"b", meta(2)));
    let m = sim.client.receive(sim.now, c).unwrap();
    sim.client.negative_ack(sim.now, c, &m.id).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(redelivers(&sim), vec![(vec![], Some(1))]);
    assert!(
        sim.client.receive(sim.now, c).is_none(),
        "queued messages dropped"
    );
    // a frame of the old epoch is dropped; the new epoch's frame is delivered
    let stale = |epoch| {
        let Reply::Payload(cmd, m, d) = msg(c.get(), 2, 0, b"b", meta(2)) else {
            unreachable!()
        };
        let mut cmd = cmd;
        cmd.message.as_mut().unwrap().consumer_epoch = Some(epoch);
        Reply::Payload(cmd, m, d)
    };
    sim.inject(conn, stale(0));
    assert!(sim.client.receive(sim.now, c).is_none());
    sim.inject(conn, stale(1));
    assert!(sim.client.receive(sim.now, c).is_some());
}

#[test]
fn ack_timeout_redelivers_unacknowledged_messages() {
    let mut sim = Sim::new();
    let c = sim.subscribed(
        opts()
            .with_type(SubscriptionType::Shared)
            .with_ack_timeout(Duration::from_secs(10))
            .with_ack_group_time(Duration::ZERO),
    );
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(c.get(), 1, 0, b"a", meta(1)));
    sim.inject(conn, msg(c.get(), 2, 0, b"b", meta(2)));
    let t0 = sim.now;
    let got = sim.drain(c);
    sim.client.ack(sim.now, c, &got[1].id).unwrap();
    sim.run_for(Duration::from_secs(20));
    assert_eq!(redelivers(&sim), vec![(vec![1], None)]);
    assert_eq!(
        sim.received_of(Type::RedeliverUnacknowledgedMessages)[0].at,
        t0 - sim.start + Duration::from_secs(10)
    );
}

#[test]
fn ack_timeout_redeliveries_are_reported_only_when_asked() {
    let ack_timeouts = |report: bool| {
        let mut sim = Sim::new();
        let mut o = opts()
            .with_type(SubscriptionType::Shared)
            .with_ack_timeout(Duration::from_secs(10))
            .with_ack_group_time(Duration::ZERO);
        o.report_ack_timeouts = report;
        let c = sim.subscribed(o);
        let conn = sim.conn_ids()[0];
        sim.inject(conn, msg(c.get(), 1, 0, b"a", meta(1)));
        sim.inject(conn, batch(c.get(), 2, &["b", "c"]));
        sim.inject(conn, msg(c.get(), 3, 0, b"d", meta(3)));
        let got = sim.drain(c);
        sim.client.ack(sim.now, c, &got[3].id).unwrap();
        sim.take_events();
        sim.run_for(Duration::from_secs(20));
        assert_eq!(redelivers(&sim), vec![(vec![1, 2], None)]);
        let reported: Vec<_> = sim
            .take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::AckTimeoutRedelivery {
                    consumer,
                    topic,
                    ids,
                } => Some((consumer, topic, ids)),
                _ => None,
            })
            .collect();
        (c, reported)
    };
    let (c, reported) = ack_timeouts(true);
    // one id per entry (the batch once, without a batch index), acknowledged ones left out
    let ids = vec![MessageId::new(9, 1, -1), MessageId::new(9, 2, -1)];
    assert_eq!(reported, vec![(c, T.into(), ids)]);
    assert!(ack_timeouts(false).1.is_empty());
}

#[test]
fn messages_redelivered_too_often_go_to_the_dead_letter_topic() {
    let mut sim = Sim::new();
    let c = sim.subscribed(
        opts()
            .with_type(SubscriptionType::Shared)
            .with_negative_ack_delay(Duration::from_secs(1))
            .with_ack_group_time(Duration::ZERO)
            .with_dead_letter(DeadLetterPolicy::new(2)),
    );
    let conn = sim.conn_ids()[0];
    let mut m = meta(1);
    m.properties.push(pb::KeyValue {
        key: "color".into(),
        value: "red".into(),
    });
    m.partition_key = Some("k".into());
    // redelivered twice already: delivered once more
    sim.inject(conn, msg(c.get(), 1, 2, b"poison", m.clone()));
    let got = sim.client.receive(sim.now, c).unwrap();
    sim.client.negative_ack_message(sim.now, &got).unwrap();
    sim.run_for(Duration::from_secs(2));
    let regs = sim.received_of(Type::Producer);
    assert_eq!(regs.len(), 1);
    assert_eq!(
        regs[0].command.producer.as_deref().unwrap().topic,
        format!("{T}-sub-DLQ")
    );
    let sends = sim.received_of(Type::Send);
    assert_eq!(sends.len(), 1);
    let p = sends[0].payload.as_ref().unwrap();
    assert_eq!(&p.data[..], b"poison");
    assert_eq!(p.metadata.partition_key.as_deref(), Some("k"));
    let props: Vec<(String, String)> = p
        .metadata
        .properties
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    assert_eq!(
        props,
        vec![
            ("ORIGIN_MESSAGE_ID".to_string(), "9:1:-1".to_string()),
            ("REAL_TOPIC".to_string(), T.to_string()),
            ("color".to_string(), "red".to_string()),
        ]
    );
    // acknowledged on its own topic once published, never redelivered
    let a = sim.acks();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].message_id[0].entry_id, 1);
    assert!(redelivers(&sim).is_empty());
    // the application never sees the internal producer
    assert!(!sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::ProducerReady { .. } | Event::SendCompleted { .. })));
    // beyond the limit the message is not even delivered
    sim.inject(conn, msg(c.get(), 3, 3, b"poison2", m));
    assert!(sim.client.receive(sim.now, c).is_none());
    sim.run_until_idle();
    assert_eq!(sim.received_of(Type::Send).len(), 2);
}

fn chunk(
    consumer: u64,
    entry: u64,
    uuid: &str,
    id: i32,
    total: i32,
    data: &[u8],
    size: i32,
) -> Reply {
    let mut m = meta(7);
    m.uuid = Some(uuid.into());
    m.chunk_id = Some(id);
    m.num_chunks_from_msg = Some(total);
    m.total_chunk_msg_size = Some(size);
    msg(consumer, entry, 0, data, m)
}

#[test]
fn chunked_messages_are_reassembled_and_acknowledged_as_a_whole() {
    let mut sim = Sim::new();
    let c = sim.subscribed(
        opts()
            .with_ack_group_time(Duration::ZERO)
            .with_receiver_queue_size(4),
    );
    let conn = sim.conn_ids()[0];
    sim.inject(conn, chunk(c.get(), 1, "u1", 0, 3, b"hel", 9));
    sim.inject(conn, chunk(c.get(), 2, "u2", 0, 2, b"ab", 4));
    sim.inject(conn, chunk(c.get(), 3, "u1", 1, 3, b"lo ", 9));
    assert!(sim.client.receive(sim.now, c).is_none());
    sim.inject(conn, chunk(c.get(), 4, "u1", 2, 3, b"you", 9));
    let m = sim.client.receive(sim.now, c).unwrap();
    assert_eq!(&m.payload[..], b"hello you");
    assert_eq!(m.id.entry_id, 4);
    sim.client.ack(sim.now, c, &m.id).unwrap();
    sim.run_until_idle();
    let entries: Vec<u64> = sim
        .acks()
        .iter()
        .flat_map(|a| a.message_id.iter().map(|m| m.entry_id))
        .collect();
    assert_eq!(entries, vec![1, 3, 4]);
    // permits: the non-final chunks were returned at once, the message when received
    assert_eq!(flows(&sim), vec![4, 2, 2]);
    // an incomplete message expires after a minute: its chunks are acknowledged, the app told
    sim.run_for(Duration::from_secs(61));
    let entries: Vec<u64> = sim
        .acks()
        .iter()
        .flat_map(|a| a.message_id.iter().map(|m| m.entry_id))
        .collect();
    assert_eq!(entries, vec![1, 3, 4, 2]);
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::ReceiveFailed {
            error: ReceiveError::ChunkExpired { uuid },
            ..
        } if uuid == "u2"
    )));
}

#[test]
fn corrupt_frames_are_reported_to_the_broker_and_the_application() {
    let mut sim = Sim::new();
    let c = sim.subscribed(opts());
    let conn = sim.conn_ids()[0];
    // a MESSAGE whose checksum does not match its content
    let mut buf = BytesMut::new();
    let cmd: pb::BaseCommand = pb::CommandMessage {
        consumer_id: c.get(),
        message_id: pb::MessageIdData {
            ledger_id: 9,
            entry_id: 5,
            ..Default::default()
        },
        ..Default::default()
    }
    .into();
    pulsar_proto::encode_payload_command(&cmd, &meta(5), b"payload", &mut buf);
    let last = buf.len() - 1;
    buf[last] ^= 0xff;
    sim.inject(conn, Reply::Raw(buf.to_vec()));
    // a batch whose container is truncated
    let mut m = meta(6);
    m.num_messages_in_batch = Some(2);
    sim.inject(conn, msg(c.get(), 6, 0, b"\x00\x00\x00\x02\x18\x05ab", m));
    assert!(sim.client.receive(sim.now, c).is_none(), "never garbage");
    let a = sim.acks();
    let v: Vec<(u64, Option<i32>)> = a
        .iter()
        .map(|a| (a.message_id[0].entry_id, a.validation_error))
        .collect();
    assert_eq!(v, vec![(5, Some(2)), (6, Some(3))]);
    let errors: Vec<ReceiveError> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ReceiveFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect();
    assert!(matches!(errors[0], ReceiveError::ChecksumMismatch(id) if id.entry_id == 5));
    assert!(matches!(errors[1], ReceiveError::BadBatch { .. }));
    assert_eq!(sim.conn_ids(), vec![conn], "the connection stays up");
}

#[test]
fn subscribe_carries_every_option() {
    let mut sim = Sim::new();
    let mut o = opts()
        .with_type(SubscriptionType::KeyShared)
        .with_consumer_name("me");
    o.key_shared = KeySharedPolicy::sticky(vec![(0, 100), (200, 300)]);
    o.key_shared.allow_out_of_order_delivery = true;
    o.priority_level = Some(2);
    o.read_compacted = true;
    o.replicate_subscription_state = true;
    o.subscription_properties = vec![("a".into(), "b".into())];
    o.properties = vec![("c".into(), "d".into())];
    o.initial_position = pulsar_core::InitialPosition::Earliest;
    o.durable = false;
    sim.subscribed(o);
    let s = sim.received_of(Type::Subscribe)[0]
        .command
        .subscribe
        .as_deref()
        .unwrap()
        .clone();
    assert_eq!(s.sub_type, 3);
    assert_eq!(s.consumer_name.as_deref(), Some("me"));
    let k = s.key_shared_meta.unwrap();
    assert_eq!(k.key_shared_mode, 1);
    assert_eq!(k.hash_ranges.len(), 2);
    assert_eq!((k.hash_ranges[1].start, k.hash_ranges[1].end), (200, 300));
    assert_eq!(k.allow_out_of_order_delivery, Some(true));
    assert_eq!(s.priority_level, Some(2));
    assert_eq!(s.read_compacted, Some(true));
    assert_eq!(s.replicate_subscription_state, Some(true));
    assert_eq!(s.subscription_properties[0].key, "a");
    assert_eq!(s.metadata[0].value, "d");
    assert_eq!(s.initial_position, Some(1));
    assert_eq!(s.durable, Some(false));
    assert_eq!(s.consumer_epoch, Some(0));
}

#[test]
fn reconnection_drops_the_queue_resubscribes_and_readers_resume_after_the_last_seen() {
    let mut sim = Sim::new();
    let r = sim.reader_from_earliest();
    let conn = sim.conn_ids()[0];
    for e in 1..=3 {
        sim.inject(conn, msg(r.get(), e, 0, b"x", meta(e)));
    }
    let first = sim.client.receive(sim.now, r).unwrap();
    assert_eq!(first.id.entry_id, 1);
    sim.broker_close(conn);
    assert!(sim.client.receive(sim.now, r).is_none(), "queue dropped");
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerReconnected { .. })
    });
    let subs = sim.received_of(Type::Subscribe);
    assert_eq!(subs.len(), 2);
    let s0 = subs[0].command.subscribe.as_deref().unwrap();
    let s1 = subs[1].command.subscribe.as_deref().unwrap();
    assert_eq!(s0.subscription, s1.subscription);
    assert_eq!(s0.durable, Some(false));
    let start = s1.start_message_id.as_ref().unwrap();
    // restart before the first message the application did not see (entry 2)
    assert_eq!((start.ledger_id, start.entry_id), (9, 1));
    assert_eq!(flows(&sim), vec![1000, 1000]);
    // the broker restarts at the start entry itself: it is filtered
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(r.get(), 1, 0, b"x", meta(1)));
    sim.inject(conn, msg(r.get(), 2, 0, b"x", meta(2)));
    let got = sim.drain(r);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id.entry_id, 2);
}

#[test]
fn inclusive_reader_delivers_the_start_message() {
    let mut sim = Sim::new();
    let start = MessageId::new(9, 4, -1);
    let r = sim
        .client
        .create_reader(sim.now, "t", ReaderOptions::new(start).inclusive())
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    let s = sim.received_of(Type::Subscribe)[0]
        .command
        .subscribe
        .clone()
        .unwrap();
    assert_eq!(s.start_message_id.as_ref().unwrap().entry_id, 4);
    assert!(s.subscription.starts_with("reader-"));
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(r.get(), 4, 0, b"x", meta(4)));
    sim.inject(conn, msg(r.get(), 5, 0, b"y", meta(5)));
    let got = sim.drain(r);
    assert_eq!(
        got.iter().map(|m| m.id.entry_id).collect::<Vec<_>>(),
        vec![4, 5]
    );
}

/// A broker whose topic ends at `last` (entry `-1`: empty), answering SEEK with SUCCESS; it records
/// the SEEKs.
fn last_message_broker(sim: &mut Sim, last: (u64, u64)) -> Rc<RefCell<Vec<pb::CommandSeek>>> {
    let seeks: Rc<RefCell<Vec<pb::CommandSeek>>> = Rc::default();
    let seen = seeks.clone();
    sim.hook(SERVICE, move |_, cmd| {
        if let Some(g) = cmd.get_last_message_id.as_deref() {
            return Some(vec![Reply::Cmd(
                pb::CommandGetLastMessageIdResponse {
                    last_message_id: pb::MessageIdData {
                        ledger_id: last.0,
                        entry_id: last.1,
                        ..Default::default()
                    },
                    request_id: g.request_id,
                    ..Default::default()
                }
                .into(),
            )]);
        }
        let s = cmd.seek.as_deref()?;
        seen.borrow_mut().push(s.clone());
        Some(vec![Reply::Cmd(success(s.request_id))])
    });
    seeks
}

/// A reader starting inclusively at the latest message, once it is ready.
fn inclusive_latest_reader(sim: &mut Sim) -> ConsumerId {
    let r = sim
        .client
        .create_reader(
            sim.now,
            "t",
            ReaderOptions::new(MessageId::LATEST).inclusive(),
        )
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    r
}

#[test]
fn inclusive_reader_at_latest_is_positioned_at_the_last_message_before_it_is_ready() {
    let mut sim = Sim::new();
    let seeks = last_message_broker(&mut sim, (9, 6));
    let r = inclusive_latest_reader(&mut sim);
    // ready only after SUBSCRIBE, GET_LAST_MESSAGE_ID and a SEEK to the last message
    let order: Vec<Type> = sim
        .received
        .iter()
        .filter_map(|f| f.command.kind())
        .filter(|k| matches!(k, Type::Subscribe | Type::GetLastMessageId | Type::Seek))
        .collect();
    assert_eq!(
        order,
        vec![Type::Subscribe, Type::GetLastMessageId, Type::Seek]
    );
    let target = seeks.borrow()[0].message_id.clone().unwrap();
    assert_eq!((target.ledger_id, target.entry_id), (9, 6));
    // the broker delivers from the last message: it is not filtered out
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(r.get(), 6, 0, b"last", meta(6)));
    sim.inject(conn, msg(r.get(), 7, 0, b"new", meta(7)));
    let got = sim.drain(r);
    assert_eq!(
        got.iter().map(|m| &m.payload[..]).collect::<Vec<_>>(),
        vec![&b"last"[..], &b"new"[..]]
    );
}

#[test]
fn inclusive_reader_at_latest_on_an_empty_topic_does_not_seek() {
    let mut sim = Sim::new();
    let seeks = last_message_broker(&mut sim, (u64::MAX, u64::MAX));
    let r = inclusive_latest_reader(&mut sim);
    assert_eq!(sim.received_of(Type::GetLastMessageId).len(), 1);
    assert!(seeks.borrow().is_empty(), "nothing to seek to");
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(r.get(), 0, 0, b"first", meta(0)));
    assert_eq!(
        &sim.client.receive(sim.now, r).unwrap().payload[..],
        b"first"
    );
}

#[test]
fn exclusive_reader_at_latest_neither_asks_for_the_last_message_nor_seeks() {
    let mut sim = Sim::new();
    let seeks = last_message_broker(&mut sim, (9, 6));
    sim.client
        .create_reader(sim.now, "t", ReaderOptions::new(MessageId::LATEST))
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    assert!(sim.received_of(Type::GetLastMessageId).is_empty());
    assert!(seeks.borrow().is_empty());
}

#[test]
fn seek_drops_stale_messages_and_restarts_after_the_broker_closes_the_consumer() {
    let mut sim = Sim::new();
    let seen: Rc<RefCell<Vec<pb::CommandSeek>>> = Rc::default();
    let s2 = seen.clone();
    sim.hook(SERVICE, move |_, cmd| {
        let s = cmd.seek.as_deref()?;
        s2.borrow_mut().push(s.clone());
        // as the broker does: close the consumer first, then answer
        Some(vec![
            Reply::Cmd(
                pb::CommandCloseConsumer {
                    consumer_id: s.consumer_id,
                    request_id: 0,
                    ..Default::default()
                }
                .into(),
            ),
            Reply::Cmd(success(s.request_id)),
        ])
    });
    let c = sim.subscribed(opts());
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(c.get(), 7, 0, b"old", meta(7)));
    let r = sim
        .client
        .seek(sim.now, c, SeekTo::PublishTime(1234))
        .unwrap();
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::SeekCompleted { .. })
    });
    assert!(sim.events.iter().any(|(_, e)| *e
        == Event::SeekCompleted {
            consumer: c,
            request: r,
            result: Ok(())
        }));
    assert_eq!(seen.borrow()[0].message_publish_time, Some(1234));
    assert!(
        sim.client.receive(sim.now, c).is_none(),
        "stale message dropped"
    );
    sim.run_until_seen(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerReconnected { .. })
    });
    sim.inject(conn, msg(c.get(), 3, 0, b"new", meta(3)));
    assert_eq!(&sim.client.receive(sim.now, c).unwrap().payload[..], b"new");

    // seek to a message id inside a batch: the ack set keeps the target and what follows
    let mut batch_id = MessageId::new(9, 3, -1);
    batch_id.batch_index = 1;
    batch_id.batch_size = 3;
    sim.client.seek(sim.now, c, SeekTo::Id(batch_id)).unwrap();
    sim.run_until_seen(Duration::from_secs(5), |e| {
        matches!(e, Event::SeekCompleted { .. })
    });
    let s = seen.borrow()[1].clone();
    let id = s.message_id.unwrap();
    assert_eq!((id.entry_id, id.ack_set), (3, vec![0b110]));
}

#[test]
fn last_message_id_and_has_message_available() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let g = cmd.get_last_message_id.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandGetLastMessageIdResponse {
                last_message_id: pb::MessageIdData {
                    ledger_id: 9,
                    entry_id: 5,
                    ..Default::default()
                },
                request_id: g.request_id,
                ..Default::default()
            }
            .into(),
        )])
    });
    let r = sim.reader_from_earliest();
    let q = sim.client.get_last_message_ids(sim.now, r).unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::LastMessageIds { .. })
    });
    let Event::LastMessageIds {
        request, result, ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(request, q);
    let ids = result.unwrap();
    assert_eq!(ids[0].id.entry_id, 5);
    assert_eq!(&*ids[0].topic, T);

    let available = |sim: &mut Sim| {
        sim.client.has_message_available(sim.now, r).unwrap();
        match sim.run_until(Duration::from_secs(1), |e| {
            matches!(e, Event::HasMessageAvailable { .. })
        }) {
            Event::HasMessageAvailable { result, .. } => result.unwrap(),
            _ => unreachable!(),
        }
    };
    assert!(available(&mut sim), "earliest: entry 5 is after it");
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(r.get(), 5, 0, b"x", meta(5)));
    assert!(available(&mut sim), "queued");
    sim.client.receive(sim.now, r).unwrap();
    assert!(!available(&mut sim), "the last one was read");
}

#[test]
fn partitioned_topics_merge_every_partition_under_one_consumer() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let m = cmd.partition_metadata.as_deref()?;
        Some(vec![support::partitioned_metadata(m.request_id, 3)])
    });
    let mut o = opts().with_ack_group_time(Duration::ZERO);
    o.max_total_receiver_queue_size = 30;
    let c = sim.subscribed(o);
    let subs = sim.received_of(Type::Subscribe);
    let topics: Vec<String> = subs
        .iter()
        .map(|s| s.command.subscribe.as_deref().unwrap().topic.clone())
        .collect();
    assert_eq!(
        topics,
        (0..3)
            .map(|p| format!("{T}-partition-{p}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        flows(&sim),
        vec![10, 10, 10],
        "50000 / 3 capped by the total"
    );
    let ids: Vec<u64> = subs
        .iter()
        .map(|s| s.command.subscribe.as_deref().unwrap().consumer_id)
        .collect();
    assert!(ids.iter().all(|i| *i != c.get()));
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(ids[2], 1, 0, b"p2", meta(1)));
    sim.inject(conn, msg(ids[0], 1, 0, b"p0", meta(1)));
    let got = sim.drain(c);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id.partition, 2);
    assert_eq!(&*got[0].topic, format!("{T}-partition-2"));
    assert_eq!(got[0].consumer, c);
    // acknowledged by id: the partition names the wire consumer
    sim.client.ack(sim.now, c, &got[0].id).unwrap();
    sim.run_until_idle();
    assert_eq!(sim.acks()[0].consumer_id, ids[2]);
}

#[test]
fn pattern_subscriptions_join_new_topics_and_leave_deleted_ones() {
    let mut sim = Sim::new();
    let listing = Rc::new(RefCell::new(vec![
        "persistent://public/default/orders-1".to_string(),
        "persistent://public/default/other".to_string(),
    ]));
    let l2 = listing.clone();
    sim.hook(SERVICE, move |_, cmd| {
        let g = cmd.get_topics_of_namespace.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandGetTopicsOfNamespaceResponse {
                request_id: g.request_id,
                topics: l2.borrow().clone(),
                ..Default::default()
            }
            .into(),
        )])
    });
    let mut o = opts();
    o.pattern_discovery_interval = Duration::from_secs(30);
    let c = sim
        .client
        .subscribe_pattern(sim.now, "persistent://public/default/orders-.*", o)
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    let topics = |sim: &Sim| -> Vec<String> {
        sim.received_of(Type::Subscribe)
            .iter()
            .map(|s| s.command.subscribe.as_deref().unwrap().topic.clone())
            .collect()
    };
    assert_eq!(topics(&sim), vec!["persistent://public/default/orders-1"]);
    *listing.borrow_mut() = vec![
        "persistent://public/default/orders-2-partition-0".to_string(),
        "persistent://public/default/orders-2-partition-1".to_string(),
    ];
    let e = sim.run_until(Duration::from_secs(31), |e| {
        matches!(e, Event::TopicsChanged { .. })
    });
    assert_eq!(
        e,
        Event::TopicsChanged {
            consumer: c,
            added: vec![
                "persistent://public/default/orders-2-partition-0".to_string(),
                "persistent://public/default/orders-2-partition-1".to_string()
            ],
            removed: vec!["persistent://public/default/orders-1".to_string()],
        }
    );
    sim.run_until_idle();
    assert_eq!(topics(&sim).len(), 3);
    assert_eq!(sim.received_of(Type::CloseConsumer).len(), 1);
    let stats = sim.client.stats();
    assert_eq!(stats.consumers.len(), 1);
}

#[test]
fn unsubscribe_flushes_acks_then_closes() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let u = cmd.unsubscribe.as_deref()?;
        Some(vec![Reply::Cmd(success(u.request_id))])
    });
    let c = sim.subscribed(opts());
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(c.get(), 1, 0, b"x", meta(1)));
    let m = sim.client.receive(sim.now, c).unwrap();
    sim.client.ack(sim.now, c, &m.id).unwrap();
    let r = sim.client.unsubscribe(sim.now, c).unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerClosed { .. })
    });
    let kinds: Vec<Type> = sim
        .received
        .iter()
        .filter_map(|r| r.command.kind())
        .filter(|k| matches!(k, Type::Ack | Type::Unsubscribe))
        .collect();
    assert_eq!(kinds, vec![Type::Ack, Type::Unsubscribe], "acks first");
    assert!(sim.events.iter().any(|(_, e)| *e
        == Event::Unsubscribed {
            consumer: c,
            request: r,
            result: Ok(())
        }));
    assert!(sim.client.stats().consumers.is_empty());
}

#[test]
fn close_flushes_pending_acks_first_and_broker_events_reach_the_app() {
    let mut sim = Sim::new();
    let c = sim.subscribed(opts().with_type(SubscriptionType::Failover));
    let conn = sim.conn_ids()[0];
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandActiveConsumerChange {
                consumer_id: c.get(),
                is_active: Some(true),
            }
            .into(),
        ),
    );
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandReachedEndOfTopic {
                consumer_id: c.get(),
            }
            .into(),
        ),
    );
    let events = sim.take_events();
    assert!(events.contains(&Event::ActiveConsumerChanged {
        consumer: c,
        topic: T.into(),
        active: true
    }));
    assert!(events.contains(&Event::ReachedEndOfTopic {
        consumer: c,
        topic: T.into()
    }));
    sim.inject(conn, msg(c.get(), 1, 0, b"x", meta(1)));
    let m = sim.client.receive(sim.now, c).unwrap();
    sim.client.ack(sim.now, c, &m.id).unwrap();
    sim.client.close_consumer(sim.now, c).unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerClosed { .. })
    });
    let kinds: Vec<Type> = sim
        .received
        .iter()
        .filter_map(|r| r.command.kind())
        .filter(|k| matches!(k, Type::Ack | Type::CloseConsumer))
        .collect();
    assert_eq!(kinds, vec![Type::Ack, Type::CloseConsumer]);
}

#[test]
fn reconsume_later_goes_through_the_retry_topic_then_the_dead_letter_topic() {
    let mut sim = Sim::new();
    let mut o = opts()
        .with_type(SubscriptionType::Shared)
        .with_ack_group_time(Duration::ZERO)
        .with_dead_letter(DeadLetterPolicy::new(2));
    o.retry_enabled = true;
    let c = sim.subscribed(o);
    let subs = sim.received_of(Type::Subscribe);
    let topics: Vec<(String, u64)> = subs
        .iter()
        .map(|s| {
            let s = s.command.subscribe.as_deref().unwrap();
            (s.topic.clone(), s.consumer_id)
        })
        .collect();
    assert_eq!(topics.len(), 2, "the topic and its retry topic");
    assert_eq!(topics[1].0, format!("{T}-sub-RETRY"));
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(topics[0].1, 1, 0, b"later", meta(1)));
    let m = sim.client.receive(sim.now, c).unwrap();
    let r = sim
        .client
        .reconsume_later(
            sim.now,
            &m,
            Duration::from_secs(5),
            vec![("why".into(), "busy".into())],
        )
        .unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ReconsumeCompleted { .. })
    });
    assert_eq!(
        e,
        Event::ReconsumeCompleted {
            consumer: c,
            request: r,
            result: Ok(())
        }
    );
    let p = sim.received_of(Type::Producer);
    assert_eq!(
        p[0].command.producer.as_deref().unwrap().topic,
        format!("{T}-sub-RETRY")
    );
    let sent = sim.received_of(Type::Send);
    let md = &sent[0].payload.as_ref().unwrap().metadata;
    let prop = |k: &str| {
        md.properties
            .iter()
            .find(|kv| kv.key == k)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(prop("RECONSUMETIMES").as_deref(), Some("1"));
    assert_eq!(prop("DELAY_TIME").as_deref(), Some("5000"));
    assert_eq!(prop("REAL_TOPIC").as_deref(), Some(T));
    assert_eq!(prop("ORIGIN_MESSAGE_ID").as_deref(), Some("9:1:-1"));
    assert_eq!(prop("why").as_deref(), Some("busy"));
    assert_eq!(md.deliver_at_time, Some(md.publish_time as i64 + 5000));
    assert_eq!(
        sim.acks()[0].message_id[0].entry_id,
        1,
        "the original is acknowledged"
    );

    // reconsumed twice already: the third time goes to the dead-letter topic
    let mut again = meta(2);
    again.properties = vec![
        pb::KeyValue {
            key: "RECONSUMETIMES".into(),
            value: "2".into(),
        },
        pb::KeyValue {
            key: "REAL_TOPIC".into(),
            value: T.into(),
        },
    ];
    sim.inject(conn, msg(topics[1].1, 7, 0, b"later", again));
    let m = sim.client.receive(sim.now, c).unwrap();
    sim.client
        .reconsume_later(sim.now, &m, Duration::from_secs(5), Vec::new())
        .unwrap();
    sim.run_until_idle();
    let p = sim.received_of(Type::Producer);
    assert_eq!(
        p[1].command.producer.as_deref().unwrap().topic,
        format!("{T}-sub-DLQ")
    );
    let sent = sim.received_of(Type::Send);
    let md = &sent[1].payload.as_ref().unwrap().metadata;
    assert_eq!(md.deliver_at_time, None, "dead letters are not delayed");
    assert!(md
        .properties
        .iter()
        .any(|kv| kv.key == "RECONSUMETIMES" && kv.value == "3"));
    assert!(
        md.properties
            .iter()
            .any(|kv| kv.key == "REAL_TOPIC" && kv.value == T),
        "the first topic is kept"
    );
}

#[test]
fn pattern_subscriptions_follow_the_brokers_topic_list_watcher() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        if cmd.connect.is_some() {
            return Some(vec![Reply::Cmd(
                pb::CommandConnected {
                    server_version: "watching".into(),
                    protocol_version: Some(21),
                    feature_flags: Some(pb::FeatureFlags {
                        supports_topic_watchers: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
                .into(),
            )]);
        }
        if let Some(g) = cmd.get_topics_of_namespace.as_deref() {
            return Some(vec![Reply::Cmd(
                pb::CommandGetTopicsOfNamespaceResponse {
                    request_id: g.request_id,
                    topics: vec!["persistent://public/default/orders-1".into()],
                    ..Default::default()
                }
                .into(),
            )]);
        }
        let w = cmd.watch_topic_list.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandWatchTopicListSuccess {
                request_id: w.request_id,
                watcher_id: w.watcher_id,
                topic: vec!["persistent://public/default/orders-1".into()],
                topics_hash: String::new(),
            }
            .into(),
        )])
    });
    let c = sim
        .client
        .subscribe_pattern(sim.now, "persistent://public/default/orders-.*", opts())
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    let w = sim.received_of(Type::WatchTopicList);
    assert_eq!(w.len(), 1);
    let w = w[0].command.watch_topic_list.as_deref().unwrap().clone();
    assert_eq!(w.watcher_id, c.get());
    assert_eq!(w.namespace, "public/default");
    assert_eq!(w.topics_pattern, "persistent://public/default/orders-.*");
    let conn = sim.conn_ids()[0];
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandWatchTopicUpdate {
                watcher_id: c.get(),
                new_topics: vec![
                    "persistent://public/default/orders-2".into(),
                    "persistent://public/default/unrelated".into(),
                ],
                deleted_topics: vec!["persistent://public/default/orders-1".into()],
                topics_hash: String::new(),
            }
            .into(),
        ),
    );
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::TopicsChanged { .. })
    });
    assert_eq!(
        e,
        Event::TopicsChanged {
            consumer: c,
            added: vec!["persistent://public/default/orders-2".into()],
            removed: vec!["persistent://public/default/orders-1".into()],
        }
    );
    sim.run_until_idle();
    let topics: Vec<String> = sim
        .received_of(Type::Subscribe)
        .iter()
        .map(|s| s.command.subscribe.as_deref().unwrap().topic.clone())
        .collect();
    assert_eq!(
        topics,
        vec![
            "persistent://public/default/orders-1",
            "persistent://public/default/orders-2"
        ]
    );
    assert_eq!(sim.received_of(Type::CloseConsumer).len(), 1);
    // the watcher is closed with the consumer
    sim.client.close_consumer(sim.now, c).unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerClosed { .. })
    });
    assert_eq!(sim.received_of(Type::WatchTopicListClose).len(), 1);
}

#[test]
fn partitions_added_later_are_joined() {
    let mut sim = Sim::new();
    let partitions = Rc::new(RefCell::new(2));
    let p2 = partitions.clone();
    sim.hook(SERVICE, move |_, cmd| {
        let m = cmd.partition_metadata.as_deref()?;
        Some(vec![support::partitioned_metadata(
            m.request_id,
            *p2.borrow(),
        )])
    });
    let mut o = opts();
    o.partitions_update_interval = Some(Duration::from_secs(60));
    sim.subscribed(o);
    assert_eq!(sim.received_of(Type::Subscribe).len(), 2);
    *partitions.borrow_mut() = 3;
    sim.run_for(Duration::from_secs(59));
    assert_eq!(sim.received_of(Type::Subscribe).len(), 2);
    sim.run_for(Duration::from_secs(2));
    let subs = sim.received_of(Type::Subscribe);
    assert_eq!(subs.len(), 3);
    assert_eq!(
        subs[2].command.subscribe.as_deref().unwrap().topic,
        format!("{T}-partition-2")
    );
}

#[test]
fn a_seeking_reader_resubscribes_only_after_the_seek_is_answered() {
    let mut sim = Sim::new();
    let pending: Rc<RefCell<Option<u64>>> = Rc::default();
    let p2 = pending.clone();
    sim.hook(SERVICE, move |_, cmd| {
        let s = cmd.seek.as_deref()?;
        *p2.borrow_mut() = Some(s.request_id);
        Some(vec![Reply::Cmd(
            pb::CommandCloseConsumer {
                consumer_id: s.consumer_id,
                request_id: 0,
                ..Default::default()
            }
            .into(),
        )])
    });
    let r = sim.reader_from_earliest();
    let conn = sim.conn_ids()[0];
    sim.inject(conn, msg(r.get(), 5, 0, b"x", meta(5)));
    sim.client.receive(sim.now, r).unwrap();
    sim.client
        .seek(sim.now, r, SeekTo::Id(MessageId::new(9, 2, -1)))
        .unwrap();
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        sim.received_of(Type::Subscribe).len(),
        1,
        "held by the seek"
    );
    let id = pending.borrow().unwrap();
    sim.inject(conn, Reply::Cmd(success(id)));
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerReconnected { .. })
    });
    let subs = sim.received_of(Type::Subscribe);
    assert_eq!(subs.len(), 2);
    let start = subs[1]
        .command
        .subscribe
        .as_deref()
        .unwrap()
        .start_message_id
        .clone()
        .unwrap();
    assert_eq!(
        start.entry_id, 2,
        "restarts at the seek target, not after the last seen"
    );
}
