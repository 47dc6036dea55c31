//! Producer delivery guarantees: receipt matching (head / lower / higher), in-order resend with the
//! original sequence ids after every kind of loss, SEND_ERROR handling, fatal errors, close after
//! flushing; and schemas declared on PRODUCER.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use producer_util::{completions, count, hold, ready, receipt, sent, sim_at};
use pulsar_core::{
    BatchingOptions, Error, Event, OutgoingMessage, ProducerOptions, SchemaInfo, SendError,
    ServerErrorCode,
};
use pulsar_proto::pb::{self, base_command::Type};
use support::{Reply, Sim, SERVICE};

fn send_error(producer: u64, seq: u64, code: i32) -> Reply {
    Reply::Cmd(
        pb::CommandSendError {
            producer_id: producer,
            sequence_id: seq,
            error: code,
            message: "refused".into(),
        }
        .into(),
    )
}

fn resent_after(sim: &Sim, n: usize) -> Vec<u64> {
    sent(sim)
        .iter()
        .skip(n)
        .map(|s| s.send.sequence_id)
        .collect()
}

#[test]
fn a_batch_receipt_with_another_highest_sequence_id_forces_a_resend() {
    let mut sim = sim_at(0);
    let held = hold(&mut sim);
    let p = ready(
        &mut sim,
        "t",
        ProducerOptions::default().with_batching(BatchingOptions::enabled()),
    );
    for i in 0..3u8 {
        sim.client.send_payload(sim.now, p, vec![i]).unwrap();
    }
    sim.run_for(Duration::from_millis(1));
    let conn = sim.conn_ids()[0];
    // a receipt whose highest id is not the batch's: the broker and the client disagree
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandSendReceipt {
                producer_id: p.get(),
                sequence_id: 0,
                highest_sequence_id: Some(1),
                message_id: Some(pb::MessageIdData {
                    ledger_id: 1,
                    entry_id: 1,
                    ..Default::default()
                }),
            }
            .into(),
        ),
    );
    assert!(completions(&sim).is_empty());
    assert!(!sim.conn_ids().contains(&conn));
    held.auto.set(true);
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    sim.run_until_idle();
    assert_eq!(resent_after(&sim, 1), vec![0]);
    assert_eq!(completions(&sim).len(), 3);
    // -1 (as u64) for "no highest id", which brokers send, is accepted
    let before = completions(&sim).len();
    held.auto.set(false);
    sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    sim.run_for(Duration::from_millis(1));
    let conn = sim.conn_ids()[0];
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandSendReceipt {
                producer_id: p.get(),
                sequence_id: 3,
                highest_sequence_id: Some(u64::MAX),
                message_id: Some(pb::MessageIdData::default()),
            }
            .into(),
        ),
    );
    assert_eq!(completions(&sim).len(), before + 1);
}

#[test]
fn everything_pending_is_resent_in_order_before_new_messages_after_each_kind_of_loss() {
    // connection loss, CLOSE_PRODUCER (unload), TOPIC_MIGRATED and a SEND_ERROR
    for loss in 0..4 {
        let mut sim = sim_at(0);
        sim.add_broker("c2:6650");
        let held = hold(&mut sim);
        let mut opts = ProducerOptions::with_name("p");
        opts.batching = BatchingOptions::enabled().with_limits(2, 1 << 20, Duration::from_secs(1));
        let p = ready(&mut sim, "t", opts);
        let sends: Vec<_> = (0..5u8)
            .map(|i| sim.client.send_payload(sim.now, p, vec![i]).unwrap())
            .collect();
        sim.run_until_idle();
        let conn = sim.conn_ids()[0];
        // the first batch (0, 1) is acknowledged; (2, 3) is pending; 4 is still batched
        sim.inject(conn, receipt(p.get(), 0, 7, 0));
        held.held.borrow_mut().clear();
        held.auto.set(true);
        let n = sent(&sim).len();
        assert_eq!(n, 2);
        match loss {
            0 => sim.broker_close(conn),
            1 => sim.inject(
                conn,
                Reply::Cmd(
                    pb::CommandCloseProducer {
                        producer_id: p.get(),
                        request_id: 1,
                        ..Default::default()
                    }
                    .into(),
                ),
            ),
            2 => sim.inject(
                conn,
                Reply::Cmd(
                    pb::CommandTopicMigrated {
                        resource_id: p.get(),
                        resource_type: 0,
                        broker_service_url: Some("pulsar://c2:6650".into()),
                        ..Default::default()
                    }
                    .into(),
                ),
            ),
            _ => sim.inject(conn, send_error(p.get(), 2, 2)),
        }
        // a message sent during the outage
        let late = sim.client.send_payload(sim.now, p, &b"late"[..]).unwrap();
        sim.run_until_seen(Duration::from_secs(5), |e| {
            matches!(e, Event::ProducerReconnected { .. })
        });
        sim.run_for(Duration::from_secs(1));
        let again = sent(&sim);
        let regs = sim.received_of(Type::Producer);
        assert_eq!(regs.len(), 2, "loss {loss}");
        let reg = regs[1].command.producer.as_deref().unwrap();
        assert_eq!(reg.producer_name.as_deref(), Some("p"));
        assert_eq!(reg.epoch, Some(1));
        let resent: Vec<(u64, Vec<u64>)> = again[n..]
            .iter()
            .map(|s| {
                (
                    s.send.sequence_id,
                    s.entries()
                        .iter()
                        .map(|e| e.0.sequence_id.unwrap())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            resent,
            vec![(2, vec![2, 3]), (4, vec![4, 5])],
            "loss {loss}: the pending batch first, unchanged, then the batched and the late ones"
        );
        assert_eq!(
            again[n].payload, again[1].payload,
            "loss {loss}: byte-identical"
        );
        let mut expected = sends.clone();
        expected.push(late);
        let done: Vec<_> = completions(&sim).into_iter().map(|c| c.0).collect();
        assert_eq!(done, expected, "loss {loss}");
        if loss == 2 {
            assert_eq!(again[n].broker, "c2:6650");
        }
    }
}

#[test]
fn checksum_send_errors_resend_and_not_allowed_fails_only_that_message() {
    let mut sim = sim_at(0);
    let held = hold(&mut sim);
    let p = ready(&mut sim, "t", ProducerOptions::default());
    let a = sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    let b = sim.client.send_payload(sim.now, p, &b"b"[..]).unwrap();
    let c = sim.client.send_payload(sim.now, p, &b"c"[..]).unwrap();
    sim.run_until_idle();
    let conn = sim.conn_ids()[0];
    sim.inject(conn, receipt(p.get(), 0, 7, 0));
    sim.inject(conn, send_error(p.get(), 1, 22)); // NotAllowed: b fails alone
    assert_eq!(
        completions(&sim)[1],
        (
            b,
            Err(SendError::Server {
                code: ServerErrorCode::NotAllowedError,
                message: "refused".into()
            })
        )
    );
    assert_eq!(sim.conn_ids(), vec![conn]);
    held.held.borrow_mut().clear();
    sim.inject(conn, send_error(p.get(), 2, 9)); // ChecksumError: reconnect and resend c
    assert!(!sim.conn_ids().contains(&conn));
    held.auto.set(true);
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    sim.run_until_idle();
    assert_eq!(resent_after(&sim, 3), vec![2]);
    let done = completions(&sim);
    assert_eq!(done.len(), 3);
    assert_eq!(done[0].0, a);
    assert_eq!(done[2].0, c);
    assert!(done[2].1.is_ok());
}

#[test]
fn a_terminated_topic_fails_everything_pending_with_a_typed_error_and_closes() {
    let mut sim = sim_at(0);
    let _held = hold(&mut sim);
    let p = ready(&mut sim, "t", ProducerOptions::default());
    let a = sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    let b = sim.client.send_payload(sim.now, p, &b"b"[..]).unwrap();
    sim.run_until_idle();
    let conn = sim.conn_ids()[0];
    sim.inject(conn, send_error(p.get(), 0, 15));
    let done = completions(&sim);
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].0, a);
    assert_eq!(done[1].0, b);
    for d in &done {
        assert_eq!(
            d.1.as_ref().unwrap_err().server_code(),
            Some(ServerErrorCode::TopicTerminatedError)
        );
    }
    let closed = sim.events.iter().find_map(|(_, e)| match e {
        Event::ProducerClosed { producer, error } if *producer == p => Some(error.clone()),
        _ => None,
    });
    assert_eq!(
        closed.unwrap().unwrap().server_code(),
        Some(ServerErrorCode::TopicTerminatedError)
    );
    assert!(matches!(
        sim.client.send_payload(sim.now, p, &b"c"[..]),
        Err(SendError::UnknownProducer(_))
    ));
}

#[test]
fn fenced_busy_and_not_found_are_typed_errors() {
    // at creation: ProducerBusy (Exclusive), TopicNotFound, ProducerFenced
    for code in [16, 11, 25] {
        let mut sim = sim_at(0);
        sim.hook(SERVICE, move |_, cmd| {
            let p = cmd.producer.as_deref()?;
            Some(vec![Reply::Cmd(
                pb::CommandError {
                    request_id: p.request_id,
                    error: code,
                    message: "no".into(),
                }
                .into(),
            )])
        });
        let p = sim
            .client
            .create_producer(sim.now, "t", ProducerOptions::default())
            .unwrap();
        let a = sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
        let e = sim.run_until(Duration::from_secs(5), |e| {
            matches!(e, Event::ProducerFailed { .. })
        });
        let Event::ProducerFailed { error, .. } = e else {
            unreachable!()
        };
        let expected = ServerErrorCode::from_i32(code);
        assert_eq!(error.server_code(), Some(expected));
        assert_eq!(sim.received_of(Type::Producer).len(), 1, "not retried");
        let done = completions(&sim);
        assert_eq!(done[0].0, a);
        assert_eq!(
            done[0].1.as_ref().unwrap_err().server_code(),
            Some(expected)
        );
    }
    // after being ready: fenced on re-registration ends the producer; busy is retried
    for (code, fatal) in [(25, true), (16, false)] {
        let mut sim = sim_at(0);
        let n = Rc::new(Cell::new(0));
        let n2 = n.clone();
        sim.hook(SERVICE, move |_, cmd| {
            let p = cmd.producer.as_deref()?;
            n2.set(n2.get() + 1);
            if n2.get() == 2 {
                return Some(vec![Reply::Cmd(
                    pb::CommandError {
                        request_id: p.request_id,
                        error: code,
                        message: "no".into(),
                    }
                    .into(),
                )]);
            }
            None
        });
        let p = ready(&mut sim, "t", ProducerOptions::default());
        let conn = sim.conn_ids()[0];
        sim.broker_close(conn);
        sim.run_for(Duration::from_secs(5));
        let closed = count(&sim, |e| {
            matches!(e, Event::ProducerClosed { producer, error: Some(e) }
                if *producer == p && e.server_code() == Some(ServerErrorCode::from_i32(code)))
        });
        let reconnected = count(&sim, |e| matches!(e, Event::ProducerReconnected { .. }));
        if fatal {
            assert_eq!((closed, reconnected), (1, 0), "code {code}");
        } else {
            assert_eq!((closed, reconnected), (0, 1), "code {code}");
            assert_eq!(sim.received_of(Type::Producer).len(), 3);
        }
    }
}

#[test]
fn close_flushes_the_batch_waits_for_receipts_then_closes_on_the_broker() {
    let mut sim = sim_at(0);
    let held = hold(&mut sim);
    let p = ready(
        &mut sim,
        "t",
        ProducerOptions::default().with_batching(BatchingOptions::enabled().with_limits(
            100,
            1 << 20,
            Duration::from_secs(10),
        )),
    );
    let a = sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    sim.client.close_producer(sim.now, p).unwrap();
    sim.run_until_idle();
    assert_eq!(held.held.borrow().len(), 1, "the batch was flushed");
    assert!(sim.received_of(Type::CloseProducer).is_empty());
    held.release(&mut sim, 0);
    sim.run_until_idle();
    assert_eq!(sim.received_of(Type::CloseProducer).len(), 1);
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerClosed { .. })
    });
    assert_eq!(
        e,
        Event::ProducerClosed {
            producer: p,
            error: None
        }
    );
    assert!(matches!(completions(&sim)[..], [(s, Ok(_))] if s == a));
    // a close that cannot flush in time fails what is left and still closes
    let mut sim = sim_at(0);
    let _held = hold(&mut sim);
    let p = ready(
        &mut sim,
        "t",
        ProducerOptions::default().with_send_timeout(Duration::ZERO),
    );
    let b = sim.client.send_payload(sim.now, p, &b"b"[..]).unwrap();
    sim.run_until_idle();
    sim.client.close_producer(sim.now, p).unwrap();
    sim.run_for(Duration::from_secs(31));
    assert_eq!(completions(&sim), vec![(b, Err(SendError::ProducerClosed))]);
    assert_eq!(sim.received_of(Type::CloseProducer).len(), 1);
    assert!(sim.events.iter().any(|(_, e)| *e
        == Event::ProducerClosed {
            producer: p,
            error: None
        }));
}

#[test]
fn a_broker_restart_with_deduplication_sees_the_same_sequence_ids_again() {
    // the broker dies after persisting 0..2 but before the receipts went out; the producer
    // re-registers, learns last_sequence_id = 2, and resends 0..4 with their original ids: a
    // deduplicating broker answers the duplicates (here: receipts with -1:-1) and stores 3, 4
    let mut sim = sim_at(0);
    let stored = Rc::new(Cell::new(0u64));
    let (st, restarted) = (stored.clone(), Rc::new(Cell::new(false)));
    let rs = restarted.clone();
    sim.hook(SERVICE, move |_, cmd| {
        if let Some(p) = cmd.producer.as_deref() {
            return Some(vec![Reply::Cmd(
                pb::CommandProducerSuccess {
                    request_id: p.request_id,
                    producer_name: "dedup".into(),
                    last_sequence_id: Some(if rs.get() { 2 } else { -1 }),
                    ..Default::default()
                }
                .into(),
            )]);
        }
        let s = cmd.send.as_deref()?;
        if !rs.get() {
            return Some(vec![]); // stored, receipt lost in the crash
        }
        let dup = s.sequence_id <= 2;
        let entry = if dup { u64::MAX } else { st.get() };
        if !dup {
            st.set(st.get() + 1);
        }
        Some(vec![Reply::Cmd(
            pb::CommandSendReceipt {
                producer_id: s.producer_id,
                sequence_id: s.sequence_id,
                message_id: Some(pb::MessageIdData {
                    ledger_id: if dup { u64::MAX } else { 8 },
                    entry_id: entry,
                    ..Default::default()
                }),
                ..Default::default()
            }
            .into(),
        )])
    });
    let p = ready(&mut sim, "t", ProducerOptions::with_name("dedup"));
    for i in 0..5u8 {
        sim.client.send_payload(sim.now, p, vec![i]).unwrap();
    }
    sim.run_until_idle();
    restarted.set(true);
    let conn = sim.conn_ids()[0];
    sim.broker_close(conn);
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    sim.run_until_idle();
    assert_eq!(resent_after(&sim, 5), vec![0, 1, 2, 3, 4]);
    assert_eq!(stored.get(), 2, "only 3 and 4 are new");
    let done = completions(&sim);
    assert_eq!(done.len(), 5);
    assert!(done.iter().all(|d| d.1.is_ok()));
    // the next message continues the sequence
    sim.client.send_payload(sim.now, p, &b"n"[..]).unwrap();
    sim.run_until_idle();
    assert_eq!(sent(&sim).last().unwrap().send.sequence_id, 5);
}

#[test]
fn schemas_are_declared_and_the_schema_version_is_reported_and_attached() {
    let mut sim = sim_at(0);
    sim.hook(SERVICE, |_, cmd| {
        let p = cmd.producer.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandProducerSuccess {
                request_id: p.request_id,
                producer_name: "s".into(),
                schema_version: p
                    .schema
                    .as_ref()
                    .map(|_| Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 4])),
                ..Default::default()
            }
            .into(),
        )])
    });
    let def = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#;
    let schemas = [
        SchemaInfo::bytes(),
        SchemaInfo::string(),
        SchemaInfo::json(def),
    ];
    let mut producers = Vec::new();
    for (i, schema) in schemas.into_iter().enumerate() {
        let opts = ProducerOptions::default()
            .with_schema(schema)
            .with_batching(BatchingOptions::enabled());
        let p = ready(&mut sim, &format!("t{i}"), opts);
        producers.push(p);
    }
    let regs = sim.received_of(Type::Producer);
    let kinds: Vec<Option<(i32, Bytes)>> = regs
        .iter()
        .map(|r| {
            r.command
                .producer
                .as_deref()
                .unwrap()
                .schema
                .as_ref()
                .map(|s| (s.r#type, s.schema_data.clone()))
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            None,
            Some((1, Bytes::new())),
            Some((2, Bytes::from_static(def.as_bytes())))
        ]
    );
    let versions: Vec<Option<Bytes>> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ProducerReady { schema_version, .. } => Some(schema_version.clone()),
            _ => None,
        })
        .collect();
    let v4 = Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 4]));
    assert_eq!(versions, vec![None, v4.clone(), v4.clone()]);
    #[derive(serde::Serialize)]
    struct User {
        id: i64,
    }
    let json = pulsar_core::producer::schema::json_payload(&User { id: 42 }).unwrap();
    sim.client
        .send(sim.now, producers[2], OutgoingMessage::new(json))
        .unwrap();
    sim.client
        .send_payload(sim.now, producers[1], "text")
        .unwrap();
    sim.run_for(Duration::from_millis(1));
    let s = sent(&sim);
    assert_eq!(s.len(), 2);
    for x in &s {
        assert_eq!(x.metadata.schema_version, v4);
    }
    let entries = s
        .iter()
        .find(|x| x.send.producer_id == producers[2].get())
        .unwrap()
        .entries();
    assert_eq!(&entries[0].1[..], br#"{"id":42}"#);
    let _ = Error::Closed;
}
