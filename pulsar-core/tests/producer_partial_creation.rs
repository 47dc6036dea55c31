//! A partitioned producer whose creation fails after some partitions registered: those partitions
//! are closed on the broker (CLOSE_PRODUCER), so the producer name is free for the next creation
//! (bug L of docs/simulation.md; the Java client closes the partitions that started).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use producer_util::sim_at;
use pulsar_core::{Error, Event, ProducerId, ProducerOptions, ServerErrorCode};
use pulsar_proto::pb::{self, base_command::Type};
use support::{success, HookCtx, Reply, Sim, SERVICE};

const TOPIC: &str = "persistent://public/default/pt";
const NAME: &str = "pp";

/// What the scripted broker holds: producer id -> (partition topic, name), and whether partition 0
/// refuses registrations (ServiceNotReady, retriable).
#[derive(Default)]
struct Registry {
    producers: BTreeMap<u64, (String, String)>,
}

fn error(request_id: u64, code: pb::ServerError, message: &str) -> Reply {
    Reply::Cmd(
        pb::CommandError {
            request_id,
            error: code as i32,
            message: message.into(),
        }
        .into(),
    )
}

/// A broker where `pt` has two partitions and a producer name can be registered once per
/// partition (ProducerBusy otherwise, as a real broker answers); partition 0 refuses while
/// `refuse_partition_0` is set.
fn broker(
    registry: Rc<RefCell<Registry>>,
    refuse_partition_0: Rc<Cell<bool>>,
) -> impl FnMut(&HookCtx, &pb::BaseCommand) -> Option<Vec<Reply>> + 'static {
    move |_, cmd| {
        if let Some(m) = cmd.partition_metadata.as_deref() {
            let n = if m.topic == TOPIC { 2 } else { 0 };
            return Some(vec![support::partitioned_metadata(m.request_id, n)]);
        }
        if let Some(c) = cmd.close_producer.as_deref() {
            registry.borrow_mut().producers.remove(&c.producer_id);
            return Some(vec![Reply::Cmd(success(c.request_id))]);
        }
        let p = cmd.producer.as_deref()?;
        if p.topic.ends_with("-partition-0") && refuse_partition_0.get() {
            return Some(vec![error(
                p.request_id,
                pb::ServerError::ServiceNotReady,
                "not ready",
            )]);
        }
        let name = p.producer_name.clone().expect("a named producer");
        let mut reg = registry.borrow_mut();
        let busy = reg
            .producers
            .iter()
            .any(|(id, (topic, n))| *id != p.producer_id && *topic == p.topic && *n == name);
        if busy {
            return Some(vec![error(
                p.request_id,
                pb::ServerError::ProducerBusy,
                "producer with that name is already connected",
            )]);
        }
        reg.producers
            .insert(p.producer_id, (p.topic.clone(), name.clone()));
        Some(vec![Reply::Cmd(
            pb::CommandProducerSuccess {
                request_id: p.request_id,
                producer_name: name,
                last_sequence_id: Some(-1),
                ..Default::default()
            }
            .into(),
        )])
    }
}

/// The wire producer id of each PRODUCER command for `partition` (retries repeat the id).
fn registrations(sim: &Sim, partition: u32) -> Vec<u64> {
    let suffix = format!("-partition-{partition}");
    sim.received_of(Type::Producer)
        .iter()
        .filter_map(|r| r.command.producer.as_deref())
        .filter(|p| p.topic.ends_with(&suffix))
        .map(|p| p.producer_id)
        .collect()
}

fn close_producers(sim: &Sim) -> Vec<u64> {
    sim.received_of(Type::CloseProducer)
        .iter()
        .map(|r| r.command.close_producer.as_deref().unwrap().producer_id)
        .collect()
}

fn create(sim: &mut Sim) -> ProducerId {
    sim.client
        .create_producer(sim.now, "pt", ProducerOptions::with_name(NAME))
        .unwrap()
}

#[test]
fn a_partitioned_creation_timing_out_closes_the_partitions_that_registered() {
    let mut sim = sim_at(1_000_000);
    let registry = Rc::new(RefCell::new(Registry::default()));
    let refuse = Rc::new(Cell::new(true));
    sim.hook(SERVICE, broker(registry.clone(), refuse.clone()));

    let first = create(&mut sim);
    let e = sim.run_until(
        Duration::from_secs(60),
        |e| matches!(e, Event::ProducerFailed { producer, .. } if *producer == first),
    );
    let Event::ProducerFailed { error, .. } = e else {
        unreachable!()
    };
    assert!(
        matches!(
            &error,
            Error::TimedOut { last_error: Some(e), .. }
                if e.server_code() == Some(ServerErrorCode::ServiceNotReady)
        ),
        "the creation timed out on partition 0's refusals: {error:?}"
    );
    let registered = registrations(&sim, 1);
    assert_eq!(registered.len(), 1, "partition 1 registered once");
    assert!(
        registrations(&sim, 0).len() > 1,
        "partition 0 was retried until the operation timeout"
    );
    sim.run_until_idle();
    assert!(
        close_producers(&sim).contains(&registered[0]),
        "partition 1's producer is closed on the broker: {:?}",
        close_producers(&sim)
    );
    assert!(registry.borrow().producers.is_empty());

    // The name is free: the next producer of that name is created.
    refuse.set(false);
    let second = create(&mut sim);
    sim.run_until(
        Duration::from_secs(5),
        |e| matches!(e, Event::ProducerReady { producer, .. } if *producer == second),
    );
    assert_eq!(registry.borrow().producers.len(), 2);
}

#[test]
fn a_partition_registering_when_the_creation_fails_is_closed_once_the_broker_answers() {
    let mut sim = sim_at(1_000_000);
    let registry = Rc::new(RefCell::new(Registry::default()));
    let refuse = Rc::new(Cell::new(false));
    let inner = Rc::new(RefCell::new(broker(registry.clone(), refuse.clone())));
    // Partition 0 fails fatally at once; partition 1's PRODUCER_SUCCESS is held back until then.
    let held: Rc<RefCell<Vec<Reply>>> = Rc::default();
    let (h, i) = (held.clone(), inner.clone());
    sim.hook(SERVICE, move |ctx, cmd| {
        if let Some(p) = cmd.producer.as_deref() {
            if p.topic.ends_with("-partition-0") {
                return Some(vec![error(
                    p.request_id,
                    pb::ServerError::AuthorizationError,
                    "not authorized",
                )]);
            }
            if h.borrow().is_empty() {
                let replies = (i.borrow_mut())(ctx, cmd)?;
                h.borrow_mut().extend(replies);
                return Some(vec![]);
            }
        }
        (i.borrow_mut())(ctx, cmd)
    });
    let first = create(&mut sim);
    sim.run_until(
        Duration::from_secs(5),
        |e| matches!(e, Event::ProducerFailed { producer, .. } if *producer == first),
    );
    let in_flight = registrations(&sim, 1);
    assert_eq!(in_flight.len(), 1);
    assert!(close_producers(&sim).is_empty(), "nothing registered yet");
    // The broker registers partition 1 after all: the client closes it.
    let conn = sim.conns_to(SERVICE)[0];
    let replies = std::mem::take(&mut *held.borrow_mut());
    assert_eq!(replies.len(), 1);
    for r in replies {
        sim.inject(conn, r);
    }
    assert_eq!(close_producers(&sim), in_flight);
    assert!(registry.borrow().producers.is_empty());
}
