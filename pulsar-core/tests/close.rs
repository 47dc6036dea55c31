//! Graceful client close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use pulsar_core::{ConsumerOptions, Error, Event, IoRequest, SendError};
use pulsar_proto::pb::base_command::Type;
use support::{Sim, SERVICE};

#[test]
fn close_closes_producers_and_consumers_first_then_connections() {
    let mut sim = Sim::new();
    sim.add_broker("b2:6650");
    sim.hook(SERVICE, |_, cmd| {
        let l = cmd.lookup_topic.as_deref()?;
        let url = if l.topic.ends_with("/far") {
            "b2:6650"
        } else {
            SERVICE
        };
        Some(vec![support::Reply::Cmd(
            pulsar_proto::pb::CommandLookupTopicResponse {
                broker_service_url: Some(format!("pulsar://{url}")),
                response: Some(1),
                request_id: l.request_id,
                ..Default::default()
            }
            .into(),
        )])
    });
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    let c = sim
        .client
        .subscribe(sim.now, "far", ConsumerOptions::new("s"))
        .unwrap();
    sim.run_until_idle();
    assert_eq!(sim.conn_ids().len(), 2);
    let mark = sim.events.len();
    sim.client.close(sim.now);
    sim.run_until_idle();
    let events: Vec<Event> = sim.events[mark..].iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(events.last(), Some(&Event::ClientClosed));
    let pos = |want: &Event| events.iter().position(|e| e == want).unwrap();
    let closed_p = pos(&Event::ProducerClosed {
        producer: p,
        error: None,
    });
    let closed_c = pos(&Event::ConsumerClosed {
        consumer: c,
        error: None,
    });
    let first_conn_closed = events
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::ConnectionClosed {
                    reason: Error::ClientClosed,
                    ..
                }
            )
        })
        .unwrap();
    assert!(closed_p < first_conn_closed && closed_c < first_conn_closed);
    assert_eq!(sim.received_of(Type::CloseProducer).len(), 1);
    assert_eq!(sim.received_of(Type::CloseConsumer).len(), 1);
    let closes = sim
        .io_log
        .iter()
        .filter(|(_, io)| matches!(io, IoRequest::Close { .. }))
        .count();
    assert_eq!(closes, 2);
    assert!(sim.conn_ids().is_empty());
    assert!(sim.client.is_closed());
    assert_eq!(sim.client.poll_timeout(), None);
    assert!(matches!(
        sim.client.lookup_topic(sim.now, "t"),
        Err(Error::ClientClosed)
    ));
    assert!(matches!(
        sim.client.send_payload(sim.now, p, &b"x"[..]),
        Err(SendError::ClientClosed)
    ));
    // nothing happens afterwards
    sim.run_for(Duration::from_secs(600));
    assert_eq!(sim.events.last().map(|e| &e.1), Some(&Event::ClientClosed));
}

#[test]
fn close_is_bounded_by_the_operation_timeout() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        cmd.close_producer.as_ref().map(|_| vec![])
    });
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    sim.client.close(sim.now);
    let e = sim.run_until(Duration::from_secs(60), |e| *e == Event::ClientClosed);
    assert_eq!(e, Event::ClientClosed);
    assert_eq!(sim.elapsed(), Duration::from_secs(30));
    assert!(sim.events.iter().any(|(_, e)| *e
        == Event::ProducerClosed {
            producer: p,
            error: Some(Error::Timeout)
        }));
    assert!(sim.conn_ids().is_empty());
}

#[test]
fn close_with_nothing_open_and_with_requests_in_flight() {
    let mut sim = Sim::new();
    sim.broker(SERVICE).silent = true;
    let r = sim.client.lookup_topic(sim.now, "t").unwrap();
    sim.run_until_idle();
    sim.client.close(sim.now);
    sim.run_until_idle();
    let events = sim.take_events();
    assert!(events.contains(&Event::LookupCompleted {
        request: r,
        result: Err(Error::ClientClosed)
    }));
    assert_eq!(events.last(), Some(&Event::ClientClosed));
    assert!(sim.conn_ids().is_empty());
}
