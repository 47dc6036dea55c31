//! Consumer regressions found by the deterministic simulator and by review, each against a
//! scripted broker: closing during SUBSCRIBE, reader resubscription inside a batch, partly
//! acknowledged batches, lost acks, cleanup requests that never expire, hostile batch indexes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use pulsar_core::{ConsumerOptions, Event};
use pulsar_proto::pb::{self, base_command::Type};
use support::{Reply, Sim, SERVICE};

/// SUBSCRIBE requests held back by the broker (request ids), answered by the test.
fn hold_subscribes(sim: &mut Sim) -> Rc<RefCell<Vec<u64>>> {
    let held = Rc::new(RefCell::new(Vec::new()));
    let h = held.clone();
    sim.hook(SERVICE, move |_, cmd| {
        let s = cmd.subscribe.as_deref()?;
        h.borrow_mut().push(s.request_id);
        Some(vec![])
    });
    held
}

fn close_consumers(sim: &Sim) -> Vec<u64> {
    sim.received_of(Type::CloseConsumer)
        .iter()
        .map(|r| r.command.close_consumer.as_deref().unwrap().consumer_id)
        .collect()
}

#[test]
fn closing_during_subscribe_closes_the_broker_side_consumer_once_subscribed() {
    let mut sim = Sim::new();
    let held = hold_subscribes(&mut sim);
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("sub"))
        .unwrap();
    sim.run_until_idle();
    assert_eq!(held.borrow().len(), 1, "SUBSCRIBE in flight");
    sim.client.close_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    assert!(
        sim.events
            .iter()
            .any(|(_, e)| matches!(e, Event::ConsumerClosed { consumer, .. } | Event::ConsumerFailed { consumer, .. } if *consumer == c)),
        "close finishes locally at once: {:?}",
        sim.events
    );
    assert!(close_consumers(&sim).is_empty(), "nothing registered yet");
    // The broker registers it anyway: the client must close it there.
    let conn = sim.conn_ids()[0];
    let request_id = held.borrow()[0];
    sim.inject(conn, Reply::Cmd(support::success(request_id)));
    assert_eq!(close_consumers(&sim), vec![c.get()]);
}

#[test]
fn closing_during_a_subscribe_that_times_out_still_closes_the_broker_side_consumer() {
    let mut sim = Sim::new();
    let held = hold_subscribes(&mut sim);
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("sub"))
        .unwrap();
    sim.run_until_idle();
    sim.client.close_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    assert_eq!(held.borrow().len(), 1);
    // no answer at all: the SUBSCRIBE times out, the broker may have registered it
    sim.run_for(Duration::from_secs(60));
    assert_eq!(close_consumers(&sim), vec![c.get()]);
}

#[test]
fn a_failed_subscribe_of_a_closed_consumer_needs_no_close() {
    let mut sim = Sim::new();
    let held = hold_subscribes(&mut sim);
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("sub"))
        .unwrap();
    sim.run_until_idle();
    sim.client.close_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    let conn = sim.conn_ids()[0];
    let request_id = held.borrow()[0];
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandError {
                request_id,
                error: pb::ServerError::ConsumerBusy as i32,
                message: "busy".into(),
            }
            .into(),
        ),
    );
    sim.run_for(Duration::from_secs(60));
    assert!(close_consumers(&sim).is_empty());
}

#[test]
fn cleanup_close_of_a_failed_partitioned_consumer_expires_when_unanswered() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        if let Some(m) = cmd.partition_metadata.as_deref() {
            return Some(vec![Reply::Cmd(
                pb::CommandPartitionedTopicMetadataResponse {
                    partitions: Some(2),
                    request_id: m.request_id,
                    response: Some(0),
                    ..Default::default()
                }
                .into(),
            )]);
        }
        if let Some(s) = cmd.subscribe.as_deref() {
            if s.topic.ends_with("-partition-1") {
                return Some(vec![Reply::Cmd(
                    pb::CommandError {
                        request_id: s.request_id,
                        error: pb::ServerError::AuthorizationError as i32,
                        message: "no".into(),
                    }
                    .into(),
                )]);
            }
            return None;
        }
        // the broker never answers CLOSE_CONSUMER
        cmd.close_consumer.as_ref().map(|_| vec![])
    });
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("sub"))
        .unwrap();
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerFailed { .. })
    });
    let _ = c;
    assert_eq!(
        close_consumers(&sim).len(),
        1,
        "the subscribed partition is closed"
    );
    let pending = |sim: &Sim| -> usize {
        sim.client
            .stats()
            .connections
            .iter()
            .map(|c| c.pending_requests)
            .sum()
    };
    assert_eq!(pending(&sim), 1, "the CLOSE_CONSUMER waits for its answer");
    sim.run_for(Duration::from_secs(60));
    assert_eq!(pending(&sim), 0, "its request entry expired");
}
