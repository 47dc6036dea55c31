//! Producer options: access modes, sequence ids, send timeouts, queue and memory limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use producer_util::{completions, count, hold, ready, receipt, sent};
use pulsar_core::{
    AccessMode, ClientConfig, Event, MessageId, OutgoingMessage, ProducerOptions, SendError,
};
use pulsar_proto::pb::{self, base_command::Type};
use support::{Reply, Sim, SERVICE};

#[test]
fn access_modes_and_properties_are_declared_on_producer() {
    let mut sim = Sim::new();
    for mode in [
        AccessMode::Shared,
        AccessMode::Exclusive,
        AccessMode::ExclusiveWithFencing,
        AccessMode::WaitForExclusive,
    ] {
        let mut opts = ProducerOptions::default().with_access_mode(mode);
        opts.properties = vec![("app".into(), "test".into())];
        ready(&mut sim, "t", opts);
    }
    let modes: Vec<Option<i32>> = sim
        .received_of(Type::Producer)
        .iter()
        .map(|r| r.command.producer.as_deref().unwrap().producer_access_mode)
        .collect();
    assert_eq!(modes, vec![None, Some(1), Some(3), Some(2)]);
    let p = sim.received_of(Type::Producer);
    let cmd = p[0].command.producer.as_deref().unwrap();
    assert_eq!(
        cmd.metadata,
        vec![pb::KeyValue {
            key: "app".into(),
            value: "test".into()
        }]
    );
    assert_eq!(cmd.topic_epoch, None);
    assert_eq!(cmd.schema, None);
}

#[test]
fn wait_for_exclusive_waits_for_the_second_producer_success_and_keeps_the_topic_epoch() {
    let mut sim = Sim::new();
    let request = Rc::new(RefCell::new(None));
    let r = request.clone();
    sim.hook(SERVICE, move |ctx, cmd| {
        let p = cmd.producer.as_deref()?;
        if ctx.nth == 0 {
            *r.borrow_mut() = Some(p.request_id);
            return Some(vec![Reply::Cmd(
                pb::CommandProducerSuccess {
                    request_id: p.request_id,
                    producer_name: "excl".into(),
                    producer_ready: Some(false),
                    ..Default::default()
                }
                .into(),
            )]);
        }
        None
    });
    let opts = ProducerOptions::with_name("excl")
        .with_access_mode(AccessMode::WaitForExclusive)
        .with_send_timeout(Duration::ZERO);
    let p = sim.client.create_producer(sim.now, "t", opts).unwrap();
    let s0 = sim.client.send_payload(sim.now, p, &b"queued"[..]).unwrap();
    // far beyond the operation timeout: still waiting, nothing sent, nothing failed
    sim.run_for(Duration::from_secs(120));
    assert_eq!(
        count(&sim, |e| matches!(
            e,
            Event::ProducerReady { .. } | Event::ProducerFailed { .. }
        )),
        0
    );
    assert!(sent(&sim).is_empty());
    let conn = sim.conn_ids()[0];
    let req = request.borrow().unwrap();
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandProducerSuccess {
                request_id: req,
                producer_name: "excl".into(),
                last_sequence_id: Some(4),
                topic_epoch: Some(3),
                producer_ready: Some(true),
                ..Default::default()
            }
            .into(),
        ),
    );
    assert!(sim.events.iter().any(|(_, e)| *e
        == Event::ProducerReady {
            producer: p,
            name: "excl".into(),
            last_sequence_id: 4,
            schema_version: None
        }));
    sim.run_until_idle();
    let s = sent(&sim);
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].send.sequence_id, 5,
        "continues after the broker's last"
    );
    assert!(matches!(completions(&sim)[..], [(id, Ok(_))] if id == s0));
    // the topic epoch goes back on re-registration
    sim.broker_close(conn);
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    let regs = sim.received_of(Type::Producer);
    let again = regs.last().unwrap().command.producer.as_deref().unwrap();
    assert_eq!(again.topic_epoch, Some(3));
    assert_eq!(again.producer_access_mode, Some(2));
}

#[test]
fn initial_sequence_id_wins_over_the_brokers_last_sequence_id() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let p = cmd.producer.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandProducerSuccess {
                request_id: p.request_id,
                producer_name: "n".into(),
                last_sequence_id: Some(41),
                ..Default::default()
            }
            .into(),
        )])
    });
    let mut opts = ProducerOptions::default();
    opts.initial_sequence_id = Some(9);
    let p = sim.client.create_producer(sim.now, "t", opts).unwrap();
    sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    sim.client.send_payload(sim.now, p, &b"b"[..]).unwrap();
    sim.run_until_idle();
    let seqs: Vec<u64> = sent(&sim).iter().map(|s| s.send.sequence_id).collect();
    assert_eq!(seqs, vec![10, 11]);
}

#[test]
fn send_timeout_fails_the_oldest_and_everything_behind_it_in_order_then_carries_on() {
    let mut sim = Sim::new();
    let held = hold(&mut sim);
    let p = ready(&mut sim, "t", ProducerOptions::default());
    let a = sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    sim.run_for(Duration::from_secs(10));
    let b = sim.client.send_payload(sim.now, p, &b"b"[..]).unwrap();
    sim.run_for(Duration::from_millis(19_999));
    assert!(completions(&sim).is_empty(), "not yet");
    sim.run_for(Duration::from_millis(2));
    assert_eq!(
        completions(&sim),
        vec![(a, Err(SendError::Timeout)), (b, Err(SendError::Timeout))],
        "b had 10 s left but fails behind a, in order"
    );
    assert_eq!(sim.client.stats().producers[0].pending_messages, 0);
    // late receipts for the failed messages are ignored; the producer carries on
    let conn = sim.conn_ids()[0];
    sim.inject(conn, receipt(p.get(), 0, 7, 0));
    held.auto.set(true);
    let c = sim.client.send_payload(sim.now, p, &b"c"[..]).unwrap();
    sim.run_until_idle();
    let done = completions(&sim);
    assert_eq!(done.len(), 3);
    assert_eq!(done[2].0, c);
    assert!(done[2].1.is_ok());
    assert_eq!(sent(&sim).last().unwrap().send.sequence_id, 2);
    assert_eq!(sim.conn_ids(), vec![conn], "no reconnection");
}

#[test]
fn a_zero_send_timeout_never_fails_a_message() {
    let mut sim = Sim::new();
    let held = hold(&mut sim);
    let p = ready(
        &mut sim,
        "t",
        ProducerOptions::default().with_send_timeout(Duration::ZERO),
    );
    let a = sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    sim.run_for(Duration::from_secs(3600));
    assert!(completions(&sim).is_empty());
    held.release(&mut sim, 0);
    assert_eq!(completions(&sim), vec![(a, Ok(MessageId::new(7, 0, -1)))]);
}

#[test]
fn a_send_before_the_producer_exists_times_out_too() {
    let mut sim = Sim::new();
    sim.broker(SERVICE).silent = true;
    // A send timeout shorter than the operation timeout: at 30 s the creation itself fails (and
    // with it whatever is still waiting), so the message must time out on its own first.
    let options = ProducerOptions::default().with_send_timeout(Duration::from_secs(10));
    let p = sim.client.create_producer(sim.now, "t", options).unwrap();
    let a = sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    sim.run_for(Duration::from_secs(11));
    assert_eq!(completions(&sim), vec![(a, Err(SendError::Timeout))]);
}

#[test]
fn a_full_queue_is_refused_with_a_typed_error_and_room_is_announced() {
    let mut sim = Sim::new();
    let held = hold(&mut sim);
    let mut opts = ProducerOptions::default();
    opts.max_pending_messages = 3;
    let p = ready(&mut sim, "t", opts);
    for i in 0..3u8 {
        sim.client.send_payload(sim.now, p, vec![i]).unwrap();
    }
    assert_eq!(
        sim.client.send_payload(sim.now, p, &b"x"[..]),
        Err(SendError::QueueFull)
    );
    assert_eq!(
        sim.client.send_payload(sim.now, p, &b"y"[..]),
        Err(SendError::QueueFull)
    );
    sim.run_until_idle();
    assert_eq!(sent(&sim).len(), 3, "the refused ones were never sent");
    assert_eq!(
        count(&sim, |e| matches!(e, Event::ProducerHasRoom { .. })),
        0
    );
    let conn = sim.conn_ids()[0];
    sim.inject(conn, receipt(p.get(), 0, 7, 0));
    let room: Vec<_> = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::ProducerHasRoom { .. }))
        .collect();
    assert_eq!(room.len(), 1, "announced once");
    assert_eq!(room[0].1, Event::ProducerHasRoom { producer: p });
    sim.client.send_payload(sim.now, p, &b"z"[..]).unwrap();
    held.release(&mut sim, 1);
    assert_eq!(completions(&sim).len(), 4);
    assert!(completions(&sim).iter().all(|c| c.1.is_ok()));
}

#[test]
fn the_memory_limit_is_client_wide_and_a_lone_oversized_message_still_goes() {
    let mut config = ClientConfig::new("pulsar://svc:6650");
    config.memory_limit = 100;
    let mut sim = Sim::with_config(config);
    let held = hold(&mut sim);
    let p1 = ready(&mut sim, "t1", ProducerOptions::default());
    let p2 = ready(&mut sim, "t2", ProducerOptions::default());
    sim.client.send_payload(sim.now, p1, vec![0u8; 60]).unwrap();
    assert_eq!(
        sim.client.send_payload(sim.now, p2, vec![0u8; 50]),
        Err(SendError::MemoryLimit { limit: 100 })
    );
    sim.client.send_payload(sim.now, p2, vec![0u8; 40]).unwrap();
    assert_eq!(
        sim.client.send_payload(sim.now, p1, vec![0u8; 1]),
        Err(SendError::MemoryLimit { limit: 100 })
    );
    // p1's message completes: both waiting producers hear about the room
    sim.run_until_idle();
    let conn = sim.conn_ids()[0];
    let first = held.held.borrow()[0].clone();
    sim.inject(conn, receipt(first.producer_id, first.sequence_id, 7, 0));
    let room: Vec<Event> = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::ProducerHasRoom { .. }))
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(
        room,
        vec![
            Event::ProducerHasRoom { producer: p1 },
            Event::ProducerHasRoom { producer: p2 }
        ]
    );
    held.held.borrow_mut().remove(0);
    held.release(&mut sim, 1);
    // nothing held: a message larger than the whole limit is accepted alone
    let big = sim
        .client
        .send_payload(sim.now, p1, vec![0u8; 500])
        .unwrap();
    assert_eq!(
        sim.client.send_payload(sim.now, p2, vec![0u8; 1]),
        Err(SendError::MemoryLimit { limit: 100 })
    );
    held.release(&mut sim, 10);
    assert!(completions(&sim)
        .iter()
        .any(|(s, r)| *s == big && r.is_ok()));
    sim.client.send_payload(sim.now, p2, vec![0u8; 1]).unwrap();
}

#[test]
fn sends_on_a_closing_or_unknown_producer_are_refused() {
    let mut sim = Sim::new();
    let _held = hold(&mut sim);
    let p = ready(&mut sim, "t", ProducerOptions::default());
    sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    sim.client.close_producer(sim.now, p).unwrap();
    assert_eq!(
        sim.client.send(sim.now, p, OutgoingMessage::new(&b"b"[..])),
        Err(SendError::ProducerClosed)
    );
    sim.run_for(Duration::from_secs(31));
    assert!(matches!(
        sim.client.send_payload(sim.now, p, &b"c"[..]),
        Err(SendError::UnknownProducer(_))
    ));
}
