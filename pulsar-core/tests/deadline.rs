//! The operation timeout is a deadline: creating a producer or consumer, and the application's
//! lookups, fail exactly when it runs out (time is an input: the driver jumps from deadline to
//! deadline), whatever is in flight then, with [`Error::TimedOut`] naming the last failure. The
//! connection timeout bounds each connect + handshake attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use pulsar_core::{
    BrokerAddress, ClientConfig, ConsumerOptions, Error, Event, IoRequest, ProducerOptions,
};
use pulsar_proto::pb::{self, base_command::Type};
use support::{Reply, Sim, SERVICE};

fn config(operation: Duration, connection: Duration) -> ClientConfig {
    let mut c = ClientConfig::new("pulsar://svc:6650").with_seed(7);
    c.operation_timeout = operation;
    c.connection_timeout = connection;
    c
}

fn refused() -> Error {
    Error::ConnectFailed {
        address: BrokerAddress::parse("pulsar://svc:6650").unwrap(),
        proxy_for: None,
        reason: "connection refused".into(),
    }
}

/// Runs until the producer's creation ends; returns when (since the start) and how.
fn producer_outcome(sim: &mut Sim, max: Duration) -> (Duration, Result<(), Error>) {
    let e = sim.run_until(max, |e| {
        matches!(
            e,
            Event::ProducerReady { .. } | Event::ProducerFailed { .. }
        )
    });
    let result = match e {
        Event::ProducerFailed { error, .. } => Err(error),
        _ => Ok(()),
    };
    (sim.elapsed(), result)
}

fn connects(sim: &Sim) -> Vec<Duration> {
    sim.io_log
        .iter()
        .filter(|(_, io)| matches!(io, IoRequest::Connect { .. }))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn creation_against_a_refusing_host_fails_exactly_at_the_deadline() {
    // Before: the backoff wait that crossed the deadline ran to its end, so 3 s ended after
    // 5.4 s, 10 s after 11.9 s and 30 s after 45.7 s, with the bare connect error.
    for seconds in [1, 3, 10, 30] {
        let timeout = Duration::from_secs(seconds);
        let mut sim = Sim::with_config(config(timeout, Duration::from_secs(10)));
        sim.broker(SERVICE).refuse = true;
        sim.client
            .create_producer(sim.now, "t", ProducerOptions::default())
            .unwrap();
        let (at, result) = producer_outcome(&mut sim, Duration::from_secs(120));
        assert_eq!(at, timeout, "operation timeout {timeout:?}");
        assert_eq!(
            result,
            Err(Error::TimedOut {
                after: timeout,
                last_error: Some(Box::new(refused())),
            })
        );
        // It kept its retry semantics: attempts with growing backoff until the deadline.
        let attempts = connects(&sim);
        assert!(attempts.len() >= 3, "{attempts:?}");
        assert!(attempts.iter().all(|t| *t < timeout), "{attempts:?}");
        let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
    }
}

#[test]
fn the_error_reads_as_a_timeout_with_its_cause() {
    let mut sim = Sim::with_config(config(Duration::from_secs(3), Duration::from_secs(10)));
    sim.broker(SERVICE).refuse = true;
    sim.client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    let (_, result) = producer_outcome(&mut sim, Duration::from_secs(60));
    let e = result.unwrap_err();
    assert!(e.is_timeout() && e.is_retriable());
    assert_eq!(
        e.to_string(),
        "operation timed out after 3s; last error: cannot connect to pulsar://svc:6650: \
         connection refused"
    );
    let source = std::error::Error::source(&e).map(ToString::to_string);
    assert_eq!(source, Some(refused().to_string()));
}

#[test]
fn a_connect_that_never_completes_ends_at_the_operation_deadline() {
    // The connection timeout (10 s) is longer than the operation timeout (3 s): the operation
    // does not wait for it.
    let mut sim = Sim::with_config(config(Duration::from_secs(3), Duration::from_secs(10)));
    sim.hang_connects.insert(SERVICE.to_string());
    sim.client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    let (at, result) = producer_outcome(&mut sim, Duration::from_secs(60));
    assert_eq!(at, Duration::from_secs(3));
    assert_eq!(
        result,
        Err(Error::TimedOut {
            after: Duration::from_secs(3),
            last_error: None,
        })
    );
}

#[test]
fn the_connection_timeout_bounds_connect_and_handshake_together() {
    // The broker accepts TCP connections and never answers CONNECT; each attempt is given up one
    // connection timeout after it started (before, the handshake got a second full timeout).
    let mut sim = Sim::with_config(config(Duration::from_secs(5), Duration::from_secs(1)));
    sim.broker(SERVICE).silent = true;
    sim.client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    let (at, result) = producer_outcome(&mut sim, Duration::from_secs(60));
    assert_eq!(at, Duration::from_secs(5));
    let address = BrokerAddress::parse("pulsar://svc:6650").unwrap();
    assert_eq!(
        result,
        Err(Error::TimedOut {
            after: Duration::from_secs(5),
            last_error: Some(Box::new(Error::HandshakeTimeout(address))),
        })
    );
    let opened = connects(&sim);
    let closed: Vec<Duration> = sim
        .io_log
        .iter()
        .filter(|(_, io)| matches!(io, IoRequest::Close { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert!(opened.len() >= 2, "{opened:?}");
    for (open, close) in opened.iter().zip(&closed) {
        assert_eq!(
            *close - *open,
            Duration::from_secs(1),
            "{opened:?} {closed:?}"
        );
    }
}

#[test]
fn a_registration_without_answer_ends_at_the_deadline_and_is_cleaned_up() {
    let mut sim = Sim::with_config(config(Duration::from_secs(3), Duration::from_secs(10)));
    // PRODUCER is never answered: the registration request's own timeout (the operation timeout
    // after it was sent, after the lookup) would end after the creation deadline.
    sim.hook(SERVICE, |_, cmd| match cmd.kind() {
        Some(Type::Producer) => Some(vec![]),
        _ => None,
    });
    sim.client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    let (at, result) = producer_outcome(&mut sim, Duration::from_secs(60));
    assert_eq!(at, Duration::from_secs(3));
    assert_eq!(
        result,
        Err(Error::TimedOut {
            after: Duration::from_secs(3),
            last_error: None,
        })
    );
    // The broker may hold the registration: it is closed there.
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.received_of(Type::CloseProducer).len(), 1);
}

#[test]
fn the_deadline_covers_the_partition_count_and_the_registration_together() {
    // PARTITIONED_METADATA is answered after 2 s; the lookup then names a broker that refuses.
    // The creation fails 3 s after it started, not 3 s after the lookup.
    let mut sim = Sim::with_config(config(Duration::from_secs(3), Duration::from_secs(10)));
    sim.add_broker("b2:6650").refuse = true;
    let held = std::rc::Rc::new(std::cell::RefCell::new(None));
    let h = held.clone();
    sim.hook(SERVICE, move |ctx, cmd| match cmd.kind() {
        Some(Type::PartitionedMetadata) => {
            let m = cmd.partition_metadata.as_deref()?;
            *h.borrow_mut() = Some((ctx.conn, m.request_id));
            Some(vec![])
        }
        Some(Type::Lookup) => {
            let l = cmd.lookup_topic.as_deref()?;
            Some(vec![Reply::Cmd(
                pb::CommandLookupTopicResponse {
                    broker_service_url: Some("pulsar://b2:6650".into()),
                    response: Some(1),
                    request_id: l.request_id,
                    authoritative: Some(true),
                    ..Default::default()
                }
                .into(),
            )])
        }
        _ => None,
    });
    sim.client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    sim.run_for(Duration::from_secs(2));
    let (conn, request_id) = held.borrow().expect("metadata asked");
    sim.inject(conn, support::partitioned_metadata(request_id, 0));
    let (at, result) = producer_outcome(&mut sim, Duration::from_secs(60));
    assert_eq!(at, Duration::from_secs(3));
    let b2 = BrokerAddress::parse("pulsar://b2:6650").unwrap();
    assert_eq!(
        result,
        Err(Error::TimedOut {
            after: Duration::from_secs(3),
            last_error: Some(Box::new(Error::ConnectFailed {
                address: b2,
                proxy_for: None,
                reason: "connection refused".into(),
            })),
        })
    );
}

#[test]
fn subscribing_against_a_refusing_host_fails_exactly_at_the_deadline() {
    for seconds in [3, 10] {
        let timeout = Duration::from_secs(seconds);
        let mut sim = Sim::with_config(config(timeout, Duration::from_secs(10)));
        sim.broker(SERVICE).refuse = true;
        sim.client
            .subscribe(sim.now, "t", ConsumerOptions::new("s"))
            .unwrap();
        let e = sim.run_until(Duration::from_secs(120), |e| {
            matches!(
                e,
                Event::ConsumerReady { .. } | Event::ConsumerFailed { .. }
            )
        });
        assert_eq!(sim.elapsed(), timeout);
        let Event::ConsumerFailed { error, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            error,
            Error::TimedOut {
                after: timeout,
                last_error: Some(Box::new(refused())),
            }
        );
    }
}

#[test]
fn an_application_lookup_waiting_for_a_connection_ends_at_its_deadline() {
    let mut sim = Sim::with_config(config(Duration::from_secs(3), Duration::from_secs(10)));
    sim.hang_connects.insert(SERVICE.to_string());
    let request = sim.client.lookup_topic(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(60), |e| {
        matches!(e, Event::LookupCompleted { .. })
    });
    assert_eq!(sim.elapsed(), Duration::from_secs(3));
    assert_eq!(
        e,
        Event::LookupCompleted {
            request,
            result: Err(Error::TimedOut {
                after: Duration::from_secs(3),
                last_error: None,
            })
        }
    );
}

#[test]
fn a_producer_created_in_time_is_not_affected() {
    let mut sim = Sim::with_config(config(Duration::from_secs(3), Duration::from_secs(10)));
    // Refused twice, then accepted: ready before the deadline, and still there long after it.
    sim.broker(SERVICE).refuse = true;
    let p = sim
        .client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    sim.run_for(Duration::from_millis(250));
    assert!(connects(&sim).len() >= 2);
    sim.broker(SERVICE).refuse = false;
    let (at, result) = producer_outcome(&mut sim, Duration::from_secs(3));
    assert!(at < Duration::from_secs(3), "{at:?}");
    assert_eq!(result, Ok(()));
    sim.run_for(Duration::from_secs(60));
    assert!(!sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::ProducerFailed { producer, .. } | Event::ProducerClosed { producer, .. } if *producer == p)));
}

#[test]
fn a_huge_operation_timeout_means_never() {
    // Before: the deadline `now + Duration::MAX` did not fit in an Instant and was put at `now`,
    // so every creation failed at once with TimedOut (and a request deadline would panic).
    let mut sim = Sim::with_config(config(Duration::MAX, Duration::from_secs(10)));
    sim.broker(SERVICE).refuse = true;
    let p = sim
        .client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("s"))
        .unwrap();
    sim.run_for(Duration::from_secs(3600));
    assert!(
        !sim.events.iter().any(|(_, e)| matches!(
            e,
            Event::ProducerFailed { .. } | Event::ConsumerFailed { .. }
        )),
        "{:#?}",
        sim.events
    );
    // still retrying, with the backoff capped at its one-minute default
    let attempts = connects(&sim);
    assert!(attempts.len() >= 60, "{}", attempts.len());
    assert!(attempts.last().unwrap() > &Duration::from_secs(3500));
    // and it all completes once the broker answers
    sim.broker(SERVICE).refuse = false;
    sim.run_until_seen(
        Duration::from_secs(120),
        |e| matches!(e, Event::ProducerReady { producer, .. } if *producer == p),
    );
    sim.run_until_seen(
        Duration::from_secs(120),
        |e| matches!(e, Event::ConsumerReady { consumer, .. } if *consumer == c),
    );
    // an application lookup (not retried on a refused connection) has its request deadline
    let lookup = sim.client.lookup_topic(sim.now, "t").unwrap();
    sim.run_until_seen(
        Duration::from_secs(5),
        |e| matches!(e, Event::LookupCompleted { request, result: Ok(_) } if *request == lookup),
    );
}

#[test]
fn every_configured_duration_may_be_huge() {
    // Duration::MAX everywhere a duration is configured: nothing panics on `Instant + Duration`
    // overflow, nothing fires early, and explicit requests (flush, ack flush on close) still go.
    let mut config = config(Duration::MAX, Duration::MAX);
    config.keep_alive_interval = Duration::MAX;
    config.backoff_max = Duration::MAX;
    let mut sim = Sim::with_config(config);
    let mut producer_options = ProducerOptions::default()
        .with_send_timeout(Duration::MAX)
        .with_batching(pulsar_core::BatchingOptions::enabled().with_limits(
            1000,
            1 << 20,
            Duration::MAX,
        ));
    producer_options.partitions_check_interval = Duration::MAX;
    let p = sim
        .client
        .create_producer(sim.now, "t", producer_options)
        .unwrap();
    let mut consumer_options = ConsumerOptions::new("s")
        .with_ack_group_time(Duration::MAX)
        .with_ack_timeout(Duration::MAX)
        .with_negative_ack_delay(Duration::MAX);
    consumer_options.expire_incomplete_chunked_message = Duration::MAX;
    consumer_options.partitions_update_interval = Some(Duration::MAX);
    let c = sim
        .client
        .subscribe(sim.now, "t", consumer_options)
        .unwrap();
    sim.run_until_seen(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    sim.run_until_seen(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });

    // a batch that waits "forever" is sent by a flush, and its send never times out
    let send = sim
        .client
        .send(sim.now, p, pulsar_core::OutgoingMessage::new("m"))
        .unwrap();
    sim.run_for(Duration::from_secs(3600));
    assert!(sim.received_of(Type::Send).is_empty());
    sim.client.flush(sim.now, p).unwrap();
    sim.run_until_seen(
        Duration::from_secs(5),
        |e| matches!(e, Event::SendCompleted { send: s, result: Ok(_), .. } if *s == send),
    );

    // a message neither acknowledged nor negatively acknowledged "in time" is not redelivered;
    // a negative ack waits "forever"; an acknowledgement is grouped until the close
    let conn = *sim.conns_to(SERVICE).last().unwrap();
    sim.inject(conn, support::message(c.get(), 1, b"a", support::meta(1)));
    sim.inject(conn, support::message(c.get(), 2, b"b", support::meta(2)));
    let a = sim.client.receive(sim.now, c).expect("first message");
    let b = sim.client.receive(sim.now, c).expect("second message");
    sim.client.negative_ack_message(sim.now, &b).unwrap();
    sim.run_for(Duration::from_secs(3600));
    assert!(sim
        .received_of(Type::RedeliverUnacknowledgedMessages)
        .is_empty());
    assert!(sim.received_of(Type::Ping).is_empty(), "keep-alive is off");
    sim.client.ack_message(sim.now, &a).unwrap();
    sim.run_for(Duration::from_secs(3600));
    assert!(sim.received_of(Type::Ack).is_empty());
    sim.client.close(sim.now);
    sim.run_until_seen(Duration::from_secs(5), |e| matches!(e, Event::ClientClosed));
    assert_eq!(sim.received_of(Type::Ack).len(), 1);
}
