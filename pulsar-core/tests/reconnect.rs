//! Reconnection: backoff growth and reset, transparent re-registration with in-order resend, broker
//! initiated close with an assigned broker, and topic migration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use pulsar_core::{
    BrokerAddress, ConsumerOptions, Error, Event, IoRequest, ProducerOptions, Resource,
};
use pulsar_proto::pb::{self, base_command::Type};
use support::{message, meta, Reply, Sim, SERVICE};

fn connect_times(sim: &Sim) -> Vec<Duration> {
    sim.io_log
        .iter()
        .filter(|(_, io)| matches!(io, IoRequest::Connect { .. }))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn backoff_grows_exponentially_with_jitter_then_resets_after_success() {
    let mut sim = Sim::new();
    sim.broker(SERVICE).refuse = true;
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    sim.run_for(Duration::from_millis(6_000));
    let times = connect_times(&sim);
    assert!(times.len() >= 6, "{times:?}");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let mut nominal = Duration::from_millis(100);
    for g in &gaps {
        assert!(
            *g <= nominal && *g >= nominal.mul_f64(0.8),
            "gap {g:?} vs nominal {nominal:?} in {gaps:?}"
        );
        nominal *= 2;
    }
    // the broker comes back: ready, then a drop reconnects after the initial delay again
    sim.broker(SERVICE).refuse = false;
    sim.run_until(Duration::from_secs(10), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    let conn = sim.conns_to(SERVICE)[0];
    let before = connect_times(&sim).len();
    let dropped_at = sim.elapsed();
    sim.broker_close(conn);
    let e = sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    assert_eq!(e, Event::ProducerReconnected { producer: p });
    let times = connect_times(&sim);
    assert_eq!(times.len(), before + 1);
    let delay = times[before] - dropped_at;
    assert!(
        delay <= Duration::from_millis(100) && delay >= Duration::from_millis(80),
        "{delay:?}"
    );
    assert_eq!(sim.client.stats().counters.reconnects, 1);
    assert_eq!(sim.client.stats().producers[0].reconnects, 1);
}

#[test]
fn reconnection_never_gives_up_for_a_ready_producer() {
    let mut sim = Sim::new();
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    sim.broker(SERVICE).refuse = true;
    let conn = sim.conn_ids()[0];
    sim.broker_close(conn);
    sim.run_for(Duration::from_secs(600));
    let times = connect_times(&sim);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let last = *gaps.last().unwrap();
    assert!(
        last <= Duration::from_secs(60) && last >= Duration::from_secs(48),
        "capped at 60 s: {last:?}"
    );
    assert!(!sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::ProducerClosed { .. })));
    sim.broker(SERVICE).refuse = false;
    let e = sim.run_until(Duration::from_secs(61), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    assert_eq!(e, Event::ProducerReconnected { producer: p });
}

#[test]
fn reconnection_reregisters_producer_and_consumer_and_resends_pending_in_order() {
    let mut sim = Sim::new();
    let swallow = Rc::new(RefCell::new(true));
    let sw = swallow.clone();
    sim.hook(SERVICE, move |_, cmd| {
        if cmd.send.is_some() && *sw.borrow() {
            return Some(vec![]); // no receipts: the messages stay pending
        }
        None
    });
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    let mut opts = ConsumerOptions::new("sub");
    opts.receiver_queue_size = 10;
    let c = sim.client.subscribe(sim.now, "t", opts).unwrap();
    sim.run_until_idle();
    let name = match sim
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::ProducerReady { .. }))
    {
        Some((_, Event::ProducerReady { name, .. })) => name.clone(),
        _ => panic!("producer not ready"),
    };
    let sends: Vec<_> = (0..3)
        .map(|i| sim.client.send_payload(sim.now, p, vec![b'a' + i]).unwrap())
        .collect();
    sim.run_until_idle();
    let conn = sim.conn_ids()[0];
    sim.inject(conn, message(c.get(), 1, b"queued-1", meta(1)));
    sim.inject(conn, message(c.get(), 2, b"queued-2", meta(2)));
    assert_eq!(sim.client.stats().consumers[0].queued_messages, 2);

    *swallow.borrow_mut() = false;
    sim.broker_close(conn);
    let events = sim.take_events();
    assert!(events.contains(&Event::ProducerReconnecting {
        producer: p,
        reason: Error::ConnectionClosed
    }));
    assert!(events.contains(&Event::ConsumerReconnecting {
        consumer: c,
        reason: Error::ConnectionClosed
    }));
    // locally queued messages are dropped: the broker redelivers them
    assert!(sim.client.receive(sim.now, c).is_none());
    // a send during the outage is queued behind the pending ones
    let s3 = sim.client.send_payload(sim.now, p, &b"d"[..]).unwrap();
    sim.run_until_seen(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    sim.run_until_seen(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerReconnected { .. })
    });
    sim.run_until_idle();

    let regs = sim.received_of(Type::Producer);
    assert_eq!(regs.len(), 2);
    let again = regs[1].command.producer.as_deref().unwrap();
    assert_eq!(
        again.producer_name.as_deref(),
        Some(name.as_str()),
        "same name on re-creation"
    );
    assert_eq!(again.producer_id, p.get());
    assert_eq!(again.epoch, Some(1));
    assert_ne!(regs[1].conn, conn);

    let after: Vec<(u64, Vec<u8>)> = sim
        .received_of(Type::Send)
        .iter()
        .filter(|r| r.conn != conn)
        .map(|r| {
            (
                r.command.send.as_deref().unwrap().sequence_id,
                r.payload.as_ref().unwrap().data.to_vec(),
            )
        })
        .collect();
    assert_eq!(
        after,
        vec![
            (0, b"a".to_vec()),
            (1, b"b".to_vec()),
            (2, b"c".to_vec()),
            (3, b"d".to_vec())
        ],
        "pending resent in order with the same sequence ids, before the new one"
    );
    let done: Vec<_> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::SendCompleted {
                send,
                result: Ok(_),
                ..
            } => Some(*send),
            _ => None,
        })
        .collect();
    let mut expected = sends.clone();
    expected.push(s3);
    assert_eq!(done, expected);

    let subs = sim.received_of(Type::Subscribe);
    assert_eq!(subs.len(), 2);
    assert_eq!(
        subs[1].command.subscribe.as_deref().unwrap().consumer_id,
        c.get()
    );
    let flows: Vec<u32> = sim
        .received_of(Type::Flow)
        .iter()
        .map(|f| f.command.flow.as_deref().unwrap().message_permits)
        .collect();
    assert_eq!(
        flows,
        vec![10, 10],
        "full permits again after resubscribing"
    );
    assert_eq!(sim.client.stats().counters.reconnects, 2);
}

#[test]
fn broker_close_producer_with_assigned_broker_moves_without_lookup() {
    let mut sim = Sim::new();
    sim.add_broker("b2:6650");
    let p = sim
        .client
        .create_producer(sim.now, "t", ProducerOptions::with_name("mover"))
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    let lookups = sim.received_of(Type::Lookup).len();
    let conn = sim.conn_ids()[0];
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandCloseProducer {
                producer_id: p.get(),
                request_id: 77,
                assigned_broker_service_url: Some("pulsar://b2:6650".into()),
                ..Default::default()
            }
            .into(),
        ),
    );
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    assert_eq!(e, Event::ProducerReconnected { producer: p });
    let at = sim.events.iter().find(|(_, ev)| *ev == e).map(|(t, _)| *t);
    assert_eq!(
        at,
        Some(Duration::ZERO),
        "no backoff before moving to the assigned broker"
    );
    assert!(sim.events.iter().any(|(_, e)| *e
        == Event::TopicMoved {
            resource: Resource::Producer(p),
            to: BrokerAddress::parse("pulsar://b2:6650").unwrap()
        }));
    assert_eq!(
        sim.received_of(Type::Lookup).len(),
        lookups,
        "no new lookup"
    );
    let regs = sim.received_of(Type::Producer);
    assert_eq!(regs.last().unwrap().broker, "b2:6650");
    // the old connection stays (other users may be on it)
    assert!(sim.conn_ids().contains(&conn));
    let s = sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    sim.run_until_idle();
    assert_eq!(
        sim.received_of(Type::Send).last().unwrap().broker,
        "b2:6650"
    );
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::SendCompleted { send, result: Ok(_), .. } if *send == s)));
}

#[test]
fn broker_close_consumer_without_url_looks_up_again_and_resubscribes() {
    let mut sim = Sim::new();
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("s"))
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    let conn = sim.conn_ids()[0];
    sim.inject(conn, message(c.get(), 1, b"m", meta(1)));
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandCloseConsumer {
                consumer_id: c.get(),
                request_id: 5,
                ..Default::default()
            }
            .into(),
        ),
    );
    assert!(sim.take_events().contains(&Event::ConsumerReconnecting {
        consumer: c,
        reason: Error::ClosedByBroker
    }));
    assert!(sim.client.receive(sim.now, c).is_none(), "queue dropped");
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReconnected { .. })
    });
    assert_eq!(sim.received_of(Type::Lookup).len(), 2);
    assert_eq!(sim.received_of(Type::Subscribe).len(), 2);
    assert_eq!(
        sim.received_of(Type::Subscribe)[1].conn,
        conn,
        "same connection, still open"
    );
}

#[test]
fn topic_migration_moves_producer_and_consumer_to_the_new_cluster() {
    let mut sim = Sim::new();
    sim.add_broker("c2:6650");
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("s"))
        .unwrap();
    sim.run_until_idle();
    let conn = sim.conn_ids()[0];
    for (id, kind) in [(p.get(), 0), (c.get(), 1)] {
        sim.inject(
            conn,
            Reply::Cmd(
                pb::CommandTopicMigrated {
                    resource_id: id,
                    resource_type: kind,
                    broker_service_url: Some("pulsar://c2:6650".into()),
                    ..Default::default()
                }
                .into(),
            ),
        );
    }
    let to = BrokerAddress::parse("pulsar://c2:6650").unwrap();
    let events = sim.take_events();
    assert!(events.contains(&Event::TopicMoved {
        resource: Resource::Producer(p),
        to: to.clone()
    }));
    assert!(events.contains(&Event::TopicMoved {
        resource: Resource::Consumer(c),
        to
    }));
    sim.run_until_seen(Duration::from_secs(2), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    sim.run_until_seen(Duration::from_secs(2), |e| {
        matches!(e, Event::ConsumerReconnected { .. })
    });
    // the lookups went to the new cluster, at once
    let lookups = sim.received_of(Type::Lookup);
    assert!(lookups
        .iter()
        .filter(|l| l.broker == "c2:6650")
        .all(|l| l.at == Duration::ZERO));
    assert_eq!(lookups.iter().filter(|l| l.broker == "c2:6650").count(), 2);
    assert_eq!(
        sim.received_of(Type::Producer).last().unwrap().broker,
        "c2:6650"
    );
    assert_eq!(
        sim.received_of(Type::Subscribe).last().unwrap().broker,
        "c2:6650"
    );
    // and keep going there after a later drop
    let c2 = sim.conns_to("c2:6650")[0];
    sim.broker_close(c2);
    sim.run_until(Duration::from_secs(2), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    assert_eq!(
        sim.received_of(Type::Producer).last().unwrap().broker,
        "c2:6650"
    );
}

#[test]
fn a_keep_alive_failure_reconnects_everything_on_the_connection() {
    let mut sim = Sim::new();
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    let conn = sim.conn_ids()[0];
    sim.black_hole(conn);
    let e = sim.run_until(Duration::from_secs(120), |e| {
        matches!(e, Event::ProducerReconnecting { .. })
    });
    assert!(matches!(e, Event::ProducerReconnecting { producer, .. } if producer == p));
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    assert!(!sim.conn_ids().contains(&conn));
}

#[test]
fn after_migration_behind_a_proxy_the_producer_stays_behind_the_new_clusters_proxy() {
    // Cluster 2 is reached through its proxy c2. Its lookups answer proxy_through_service_url, so the
    // producer connects to c2 with proxy_to_broker_url; an assigned broker named later by
    // CLOSE_PRODUCER is reached through c2 as well, never through the first cluster's service URL.
    let mut sim = Sim::new();
    sim.add_broker("c2:6650");
    sim.hook("c2:6650", |_, cmd| {
        let l = cmd.lookup_topic.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandLookupTopicResponse {
                broker_service_url: Some("pulsar://b7:6650".into()),
                response: Some(1),
                request_id: l.request_id,
                authoritative: Some(true),
                proxy_through_service_url: Some(true),
                ..Default::default()
            }
            .into(),
        )])
    });
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    let conn = sim.conn_ids()[0];
    sim.inject(
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
    );
    sim.run_until(Duration::from_secs(2), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    let proxy_to = |sim: &Sim, r: &support::Received| {
        r.connect_of(sim)
            .and_then(|c| c.proxy_to_broker_url.clone())
    };
    let reg = sim.received_of(Type::Producer).last().unwrap().clone();
    assert_eq!(reg.broker, "c2:6650");
    assert_eq!(proxy_to(&sim, &reg).as_deref(), Some("b7:6650"));
    let on = reg.conn;
    sim.inject(
        on,
        Reply::Cmd(
            pb::CommandCloseProducer {
                producer_id: p.get(),
                request_id: 5,
                assigned_broker_service_url: Some("pulsar://b8:6650".into()),
                ..Default::default()
            }
            .into(),
        ),
    );
    sim.run_until(Duration::from_secs(2), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    let reg = sim.received_of(Type::Producer).last().unwrap().clone();
    assert_eq!(reg.broker, "c2:6650", "through the new cluster's proxy");
    assert_eq!(proxy_to(&sim, &reg).as_deref(), Some("b8:6650"));
}

#[test]
fn a_new_service_url_moves_producers_and_consumers_to_the_other_cluster() {
    let mut sim = Sim::new();
    sim.add_broker("other:6650");
    let p = sim
        .client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    let c = sim.subscribed(ConsumerOptions::new("s"));
    assert!(!sim.conns_to(SERVICE).is_empty());

    // The URL in use changes nothing; a bad one is refused and changes nothing either.
    assert!(!sim
        .client
        .set_service_url(sim.now, "pulsar://svc:6650")
        .unwrap());
    assert!(matches!(
        sim.client.set_service_url(sim.now, "http://x"),
        Err(Error::InvalidUrl(_))
    ));
    assert!(sim
        .client
        .set_service_url(sim.now, "pulsar://other:6650")
        .unwrap());
    sim.run_until_seen(
        Duration::from_secs(1),
        |e| matches!(e, Event::ServiceUrlChanged { url } if url == "pulsar://other:6650"),
    );
    sim.run_until_seen(Duration::from_secs(5), |e| {
        *e == Event::ProducerReconnected { producer: p }
    });
    sim.run_until_seen(Duration::from_secs(5), |e| {
        *e == Event::ConsumerReconnected { consumer: c }
    });
    // Everything now goes to the other cluster, looked up there; nothing to the old one.
    assert!(sim.conns_to(SERVICE).is_empty(), "old connections closed");
    assert!(!sim.conns_to("other:6650").is_empty());
    let reconnecting = sim.events.iter().any(|(_, e)| {
        matches!(e, Event::ProducerReconnecting { reason: Error::ServiceUrlChanged(url), .. }
            if url == "pulsar://other:6650")
    });
    assert!(reconnecting, "the reason names the new service URL");
    let lookups_on_other = sim
        .received_of(Type::Lookup)
        .iter()
        .filter(|r| r.broker == "other:6650")
        .count();
    assert!(
        lookups_on_other >= 2,
        "both looked up again in the new cluster"
    );

    sim.client.close(sim.now);
    assert_eq!(
        sim.client.set_service_url(sim.now, "pulsar://svc:6650"),
        Err(Error::ClientClosed)
    );
}

#[test]
fn a_link_waiting_on_an_unreachable_broker_retries_when_a_connection_reaches_it_again() {
    let mut sim = Sim::new();
    let p = sim
        .client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    // The broker goes away and refuses connections: the producer's backoff grows past 3 s.
    sim.broker(SERVICE).refuse = true;
    let conn = sim.conns_to(SERVICE)[0];
    sim.broker_close(conn);
    sim.run_for(Duration::from_millis(6_500));
    let attempts = connect_times(&sim);
    let last_attempt = *attempts.last().unwrap();
    assert!(attempts.len() >= 6, "{attempts:?}");

    // The broker is back; a new consumer reaches it at once (its first attempt has no backoff).
    sim.broker(SERVICE).refuse = false;
    let back_at = sim.elapsed();
    let c = sim
        .client
        .subscribe(sim.now, "t2", ConsumerOptions::new("s"))
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        *e == Event::ConsumerReady { consumer: c }
    });
    // The waiting producer did not wait for its backoff (over 3 s since its last attempt): the
    // connection that reached the broker woke it.
    sim.run_until_seen(Duration::from_millis(100), |e| {
        *e == Event::ProducerReconnected { producer: p }
    });
    let reconnected_at = sim
        .events
        .iter()
        .find(|(_, e)| *e == Event::ProducerReconnected { producer: p })
        .map(|(t, _)| *t)
        .unwrap();
    assert!(
        reconnected_at - back_at < Duration::from_millis(100),
        "reconnected {reconnected_at:?}, broker back {back_at:?}, last attempt {last_attempt:?}"
    );
    // Six failed attempts put the next one at least 2.56 s (3.2 s less 20 % jitter) after the
    // last: it was not due when the broker came back.
    assert!(
        back_at - last_attempt < Duration::from_millis(2_500),
        "the next attempt was due already: last {last_attempt:?}, back {back_at:?}"
    );
}
