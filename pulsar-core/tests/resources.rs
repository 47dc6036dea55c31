//! The minimal producer and consumer end to end against the scripted broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pulsar_core::{
    ClientConfig, ConsumerOptions, Error, Event, MessageId, OutgoingMessage, ProducerOptions,
    SendError, ServerErrorCode,
};
use pulsar_proto::pb::{self, base_command::Type};
use support::{message, meta, Reply, Sim, SERVICE};

fn completions(sim: &Sim) -> Vec<(pulsar_core::SendId, Result<MessageId, SendError>)> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::SendCompleted { send, result, .. } => Some((*send, result.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn producer_registers_and_sends_in_order_with_receipts() {
    let mut config = ClientConfig::new("pulsar://svc:6650");
    config.unix_time_ms = 1_700_000_000_000;
    let mut sim = Sim::with_config(config);
    let p = sim
        .client
        .create_producer(
            sim.now,
            "persistent://acme/ns/orders",
            ProducerOptions::with_name("prod-1"),
        )
        .unwrap();
    // sends before the producer is ready are queued
    let s0 = sim
        .client
        .send(sim.now, p, OutgoingMessage::new(&b"zero"[..]).with_key("k"))
        .unwrap();
    let s1 = sim.client.send_payload(sim.now, p, &b"one"[..]).unwrap();
    assert!(sim.received_of(Type::Send).is_empty());
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    assert_eq!(
        e,
        Event::ProducerReady {
            producer: p,
            name: "prod-1".into(),
            last_sequence_id: -1,
            schema_version: None
        }
    );
    sim.run_for(Duration::from_millis(5));
    let s2 = sim
        .client
        .send(
            sim.now,
            p,
            OutgoingMessage::new(&b"two"[..]).with_property("a", "b"),
        )
        .unwrap();
    sim.run_until_idle();

    let reg = sim.received_of(Type::Producer);
    assert_eq!(reg.len(), 1);
    let r = reg[0].command.producer.as_deref().unwrap();
    assert_eq!(r.topic, "persistent://acme/ns/orders");
    assert_eq!(r.producer_id, p.get());
    assert_eq!(r.producer_name.as_deref(), Some("prod-1"));
    assert_eq!(r.user_provided_producer_name, Some(true));

    let sends = sim.received_of(Type::Send);
    let seqs: Vec<u64> = sends
        .iter()
        .map(|s| s.command.send.as_deref().unwrap().sequence_id)
        .collect();
    assert_eq!(seqs, vec![0, 1, 2]);
    let payloads: Vec<Bytes> = sends
        .iter()
        .map(|s| s.payload.as_ref().unwrap().data.clone())
        .collect();
    assert_eq!(
        payloads,
        vec![
            Bytes::from_static(b"zero"),
            Bytes::from_static(b"one"),
            Bytes::from_static(b"two")
        ]
    );
    let m0 = &sends[0].payload.as_ref().unwrap().metadata;
    assert_eq!(m0.producer_name, "prod-1");
    assert_eq!(m0.partition_key.as_deref(), Some("k"));
    assert_eq!(m0.publish_time, 1_700_000_000_000);
    let m2 = &sends[2].payload.as_ref().unwrap().metadata;
    assert_eq!(m2.publish_time, 1_700_000_000_005);
    assert_eq!(
        m2.properties,
        vec![pb::KeyValue {
            key: "a".into(),
            value: "b".into()
        }]
    );

    let done = completions(&sim);
    assert_eq!(
        done,
        vec![
            (s0, Ok(MessageId::new(7, 0, -1))),
            (s1, Ok(MessageId::new(7, 1, -1))),
            (s2, Ok(MessageId::new(7, 2, -1))),
        ]
    );
    let stats = sim.client.stats();
    assert_eq!(stats.producers[0].messages_acked, 3);
    assert_eq!(stats.producers[0].pending_messages, 0);
}

#[test]
fn broker_assigned_name_and_last_sequence_id_continue_the_sequence() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let p = cmd.producer.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandProducerSuccess {
                request_id: p.request_id,
                producer_name: "standalone-0-7".into(),
                last_sequence_id: Some(41),
                ..Default::default()
            }
            .into(),
        )])
    });
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    sim.run_until_idle();
    let reg = sim.received_of(Type::Producer);
    assert_eq!(
        reg[0].command.producer.as_deref().unwrap().producer_name,
        None
    );
    let sends = sim.received_of(Type::Send);
    assert_eq!(sends[0].command.send.as_deref().unwrap().sequence_id, 42);
    assert_eq!(
        sends[0].payload.as_ref().unwrap().metadata.producer_name,
        "standalone-0-7"
    );
}

#[test]
fn late_duplicate_receipt_is_ignored_and_a_receipt_ahead_of_the_queue_forces_a_resend() {
    let mut sim = Sim::new();
    let swallow = Rc::new(RefCell::new(true));
    let sw = swallow.clone();
    sim.hook(SERVICE, move |_, cmd| {
        if cmd.send.is_some() && *sw.borrow() {
            return Some(vec![]);
        }
        None
    });
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    let sends: Vec<_> = (0..3)
        .map(|i| sim.client.send_payload(sim.now, p, vec![i as u8]).unwrap())
        .collect();
    sim.run_until_idle();
    let conn = sim.conn_ids()[0];
    let receipt = |seq: u64, entry: u64| {
        Reply::Cmd(
            pb::CommandSendReceipt {
                producer_id: p.get(),
                sequence_id: seq,
                message_id: Some(pb::MessageIdData {
                    ledger_id: 1,
                    entry_id: entry,
                    ..Default::default()
                }),
                ..Default::default()
            }
            .into(),
        )
    };
    sim.inject(conn, receipt(0, 100));
    sim.inject(conn, receipt(0, 100)); // duplicate: ignored
    assert_eq!(
        completions(&sim),
        vec![(sends[0], Ok(MessageId::new(1, 100, -1)))]
    );
    assert_eq!(sim.conn_ids(), vec![conn]);
    // a receipt for 2 while 1 is pending: reconnect and resend 1 and 2
    *swallow.borrow_mut() = false;
    sim.inject(conn, receipt(2, 102));
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::ConnectionClosed { conn: c, reason: Error::Protocol(_), .. } if *c == conn
    )));
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    sim.run_until_idle();
    let seqs: Vec<u64> = sim
        .received_of(Type::Send)
        .iter()
        .map(|s| s.command.send.as_deref().unwrap().sequence_id)
        .collect();
    assert_eq!(seqs, vec![0, 1, 2, 1, 2]);
    let done: Vec<_> = completions(&sim).into_iter().map(|(s, _)| s).collect();
    assert_eq!(done, sends);
}

#[test]
fn send_error_reconnects_and_resends() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |ctx, cmd| {
        let s = cmd.send.as_deref()?;
        (ctx.nth == 0).then(|| {
            vec![Reply::Cmd(
                pb::CommandSendError {
                    producer_id: s.producer_id,
                    sequence_id: s.sequence_id,
                    error: 2,
                    message: "bookie down".into(),
                }
                .into(),
            )]
        })
    });
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    let s = sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    let e = sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::SendCompleted { .. })
    });
    assert!(matches!(e, Event::SendCompleted { send, result: Ok(_), .. } if send == s));
    assert_eq!(sim.received_of(Type::Send).len(), 2);
    assert_eq!(sim.received_of(Type::Connect).len(), 2);
}

#[test]
fn pending_queue_limit_and_too_big_messages_are_typed_errors() {
    let mut sim = Sim::new();
    sim.broker(SERVICE).silent = true;
    let mut opts = ProducerOptions::default();
    opts.max_pending_messages = 2;
    let p = sim.client.create_producer(sim.now, "t", opts).unwrap();
    sim.client.send_payload(sim.now, p, &b"1"[..]).unwrap();
    sim.client.send_payload(sim.now, p, &b"2"[..]).unwrap();
    assert_eq!(
        sim.client.send_payload(sim.now, p, &b"3"[..]),
        Err(SendError::QueueFull)
    );
    let big = vec![0u8; pulsar_proto::DEFAULT_MAX_MESSAGE_SIZE + 1];
    let mut sim2 = Sim::new();
    let p2 = sim2
        .client
        .create_producer(sim2.now, "t", Default::default())
        .unwrap();
    assert!(matches!(
        sim2.client.send_payload(sim2.now, p2, big),
        Err(SendError::MessageTooBig { .. })
    ));
    let bogus = p;
    sim.client.close_producer(sim.now, bogus).unwrap();
    sim.run_until_idle();
    assert!(matches!(
        sim.client.send_payload(sim.now, bogus, &b"x"[..]),
        Err(SendError::UnknownProducer(_))
    ));
}

#[test]
fn producer_creation_fatal_error_fails_and_retriable_error_is_retried() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |ctx, cmd| {
        let p = cmd.producer.as_deref()?;
        let (code, msg) = if p.topic.ends_with("/missing") {
            (11, "topic not found")
        } else if ctx.nth < 3 {
            (6, "service not ready")
        } else {
            return None;
        };
        Some(vec![Reply::Cmd(
            pb::CommandError {
                request_id: p.request_id,
                error: code,
                message: msg.into(),
            }
            .into(),
        )])
    });
    let missing = sim
        .client
        .create_producer(sim.now, "missing", Default::default())
        .unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerFailed { .. })
    });
    let Event::ProducerFailed { producer, error } = e else {
        unreachable!()
    };
    assert_eq!(producer, missing);
    assert_eq!(error.server_code(), Some(ServerErrorCode::TopicNotFound));

    let p = sim
        .client
        .create_producer(sim.now, "flaky", Default::default())
        .unwrap();
    let e = sim.run_until(Duration::from_secs(10), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    assert!(matches!(e, Event::ProducerReady { producer, .. } if producer == p));
    // "missing" (the broker's PRODUCER #0), two "not ready" (#1, #2), then success (#3)
    let regs = sim.received_of(Type::Producer);
    assert_eq!(regs.len(), 4);
    // each retry looked the topic up again
    assert_eq!(sim.received_of(Type::Lookup).len(), 4);
}

#[test]
fn close_producer_fails_unacknowledged_messages() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| cmd.send.as_ref().map(|_| vec![]));
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    let s = sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    sim.run_until_idle();
    // close flushes first: it waits for the receipt, which never comes, until the send timeout
    sim.client.close_producer(sim.now, p).unwrap();
    sim.run_for(Duration::from_secs(29));
    assert!(completions(&sim).is_empty());
    assert!(sim.received_of(Type::CloseProducer).is_empty());
    let e = sim.run_until(Duration::from_secs(2), |e| {
        matches!(e, Event::ProducerClosed { .. })
    });
    assert_eq!(
        e,
        Event::ProducerClosed {
            producer: p,
            error: None
        }
    );
    assert_eq!(completions(&sim), vec![(s, Err(SendError::Timeout))]);
    assert_eq!(sim.received_of(Type::CloseProducer).len(), 1);
    assert!(sim.client.stats().producers.is_empty());
    assert!(matches!(
        sim.client.close_producer(sim.now, p),
        Err(Error::UnknownProducer(_))
    ));
}

#[test]
fn consumer_subscribes_flows_receives_and_refills_permits_at_half() {
    let mut sim = Sim::new();
    let mut opts = ConsumerOptions::new("sub");
    opts.receiver_queue_size = 4;
    opts.ack_group_time = Duration::ZERO; // acknowledge at once (no grouping)
    let c = sim.client.subscribe(sim.now, "t", opts).unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    assert_eq!(e, Event::ConsumerReady { consumer: c });
    let sub = sim.received_of(Type::Subscribe);
    let s = sub[0].command.subscribe.as_deref().unwrap();
    assert_eq!(s.topic, "persistent://public/default/t");
    assert_eq!(s.subscription, "sub");
    assert_eq!(s.consumer_id, c.get());
    assert_eq!(s.sub_type, 0);
    let flows = sim.received_of(Type::Flow);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].command.flow.as_deref().unwrap().message_permits, 4);

    let conn = sim.conn_ids()[0];
    for i in 0..4u64 {
        sim.inject(
            conn,
            message(c.get(), i, format!("m{i}").as_bytes(), meta(i)),
        );
    }
    let available: Vec<_> = sim
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, Event::MessagesAvailable { .. }))
        .collect();
    assert_eq!(
        available,
        vec![Event::MessagesAvailable { consumer: c }],
        "once, when it became non-empty"
    );
    let m = sim.client.receive(sim.now, c).unwrap();
    assert_eq!(&m.payload[..], b"m0");
    assert_eq!(m.id, MessageId::new(9, 0, -1));
    assert_eq!(&*m.topic, "persistent://public/default/t");
    assert_eq!(m.publish_time, 1000);
    sim.run_until_idle();
    assert_eq!(sim.received_of(Type::Flow).len(), 1);
    let m = sim.client.receive(sim.now, c).unwrap();
    assert_eq!(&m.payload[..], b"m1");
    sim.run_until_idle();
    let flows = sim.received_of(Type::Flow);
    assert_eq!(flows.len(), 2);
    assert_eq!(flows[1].command.flow.as_deref().unwrap().message_permits, 2);
    sim.client.ack(sim.now, c, &m.id).unwrap();
    sim.run_until_idle();
    let acks = sim.received_of(Type::Ack);
    let a = acks[0].command.ack.as_deref().unwrap();
    assert_eq!(a.consumer_id, c.get());
    assert_eq!(
        a.message_id,
        vec![pb::MessageIdData {
            ledger_id: 9,
            entry_id: 1,
            ..Default::default()
        }]
    );
    assert!(sim.client.receive(sim.now, c).is_some());
    assert!(sim.client.receive(sim.now, c).is_some());
    assert!(sim.client.receive(sim.now, c).is_none());
}

#[test]
fn batched_and_compressed_messages_are_split_and_decompressed() {
    let mut sim = Sim::new();
    let c = sim
        .client
        .subscribe(sim.now, "t", {
            // ack sets on the wire, sent at once
            let mut o = ConsumerOptions::new("sub");
            o.batch_index_ack = true;
            o.ack_group_time = Duration::ZERO;
            o
        })
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    let conn = sim.conn_ids()[0];
    let mut batch = BytesMut::new();
    for (i, p) in ["a", "bb", "ccc"].iter().enumerate() {
        let single = pb::SingleMessageMetadata {
            payload_size: p.len() as i32,
            partition_key: Some(format!("key{i}")),
            ..Default::default()
        };
        pulsar_proto::batch::encode_entry(&single, p.as_bytes(), &mut batch);
    }
    let mut compressed = Vec::new();
    pulsar_core::compression::compress(
        pulsar_core::compression::CompressionType::Lz4,
        &batch,
        &mut compressed,
    )
    .unwrap();
    let mut m = meta(0);
    m.num_messages_in_batch = Some(3);
    m.compression = Some(1);
    m.uncompressed_size = Some(batch.len() as u32);
    sim.inject(conn, message(c.get(), 5, &compressed, m));
    let got: Vec<_> = std::iter::from_fn(|| sim.client.receive(sim.now, c)).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(&got[2].payload[..], b"ccc");
    assert_eq!(got[1].key.as_deref(), Some("key1"));
    assert_eq!(got[1].id.batch_index, 1);
    assert_eq!(got[1].id.batch_size, 3);
    sim.client.ack(sim.now, c, &got[1].id).unwrap();
    sim.run_until_idle();
    let acks = sim.received_of(Type::Ack);
    let a = &acks[0].command.ack.as_deref().unwrap().message_id[0];
    assert_eq!(a.ack_set, vec![0b101]);

    // a corrupt compressed payload is reported to the broker, never handed to the application
    let mut m = meta(1);
    m.compression = Some(1);
    m.uncompressed_size = Some(100);
    sim.inject(conn, message(c.get(), 6, b"\xff\xff\xff garbage", m));
    assert!(sim.client.receive(sim.now, c).is_none());
    let acks = sim.received_of(Type::Ack);
    let a = acks.last().unwrap().command.ack.as_deref().unwrap();
    assert_eq!(a.validation_error, Some(1));
    assert_eq!(a.message_id[0].entry_id, 6);
}

#[test]
fn close_consumer() {
    let mut sim = Sim::new();
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("s"))
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    sim.client.close_consumer(sim.now, c).unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerClosed { .. })
    });
    assert_eq!(
        e,
        Event::ConsumerClosed {
            consumer: c,
            error: None
        }
    );
    assert_eq!(sim.received_of(Type::CloseConsumer).len(), 1);
    assert!(sim.client.receive(sim.now, c).is_none());
    assert!(matches!(
        sim.client.ack(sim.now, c, &MessageId::new(1, 1, -1)),
        Err(Error::UnknownConsumer(_))
    ));
}
