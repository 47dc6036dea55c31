//! The consumer epoch of Exclusive / Failover subscriptions against a scripted broker: a
//! redelivery of everything that comes due while the consumer resubscribes must not leave the
//! client on an epoch the broker never heard of (bug G, simulation seeds 40452 and 52794).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use pulsar_core::{ConsumerOptions, Event, SubscriptionType};
use pulsar_proto::pb::base_command::Type;
use support::{message_with, meta, success, Reply, Sim, SERVICE};

/// SUBSCRIBE requests held back by the broker: request id and consumer epoch.
type Held = Rc<RefCell<Vec<(u64, Option<u64>)>>>;

/// A MESSAGE frame stamped with the broker's consumer epoch.
fn msg_with_epoch(consumer: u64, entry: u64, payload: &[u8], epoch: u64) -> Reply {
    message_with(consumer, entry, payload, meta(entry), |m| {
        m.consumer_epoch = Some(epoch);
    })
}

/// A negative ack that comes due while the resubscription's SUBSCRIBE is in flight: the SUBSCRIBE
/// carried the epoch of its time, the broker stamps that epoch on what it dispatches, and the
/// client must deliver those messages. It used to bump its epoch without sending the REDELIVER
/// (there was no ready registration to send it on) and then dropped every message of the new
/// registration as stale: the subscription never moved again.
#[test]
fn a_negative_ack_due_during_resubscription_does_not_make_the_new_registration_stale() {
    for kind in [SubscriptionType::Exclusive, SubscriptionType::Failover] {
        let mut sim = Sim::new();
        // the first SUBSCRIBE is answered at once, the second (the resubscription) is held
        let held: Held = Rc::default();
        let h = held.clone();
        sim.hook(SERVICE, move |ctx, cmd| {
            let s = cmd.subscribe.as_deref()?;
            if ctx.nth == 0 {
                return None;
            }
            h.borrow_mut().push((s.request_id, s.consumer_epoch));
            Some(vec![])
        });
        let c = sim
            .client
            .subscribe(
                sim.now,
                "t",
                ConsumerOptions::new("sub")
                    .with_type(kind)
                    .with_negative_ack_delay(Duration::from_secs(1)),
            )
            .unwrap();
        sim.run_until(Duration::from_secs(1), |e| {
            matches!(e, Event::ConsumerReady { .. })
        });
        let conn = sim.conn_ids()[0];
        sim.inject(conn, msg_with_epoch(c.get(), 1, b"a", 0));
        let m = sim.client.receive(sim.now, c).expect("first delivery");

        // the connection drops; the resubscription waits for its answer
        sim.broker_close(conn);
        sim.run_for(Duration::from_millis(500));
        assert_eq!(held.borrow().len(), 1, "{kind:?}: resubscription in flight");
        let (request_id, epoch) = held.borrow()[0];
        // the application negatively acknowledges what it received before; the nack comes due
        // with no registration to send a REDELIVER on
        sim.client.negative_ack(sim.now, c, &m.id).unwrap();
        sim.run_for(Duration::from_secs(2));
        assert!(
            sim.received_of(Type::RedeliverUnacknowledgedMessages)
                .is_empty(),
            "{kind:?}: nothing to send the redelivery on"
        );

        let conn = sim.conn_ids()[0];
        sim.inject(conn, Reply::Cmd(success(request_id)));
        sim.run_until_idle();
        // the broker redelivers everything unacknowledged under the SUBSCRIBE's epoch
        let epoch = epoch.expect("SUBSCRIBE carries the epoch");
        sim.inject(conn, msg_with_epoch(c.get(), 1, b"a", epoch));
        sim.inject(conn, msg_with_epoch(c.get(), 2, b"b", epoch));
        let got: Vec<Vec<u8>> = std::iter::from_fn(|| sim.client.receive(sim.now, c))
            .map(|m| m.payload.to_vec())
            .collect();
        assert_eq!(
            got,
            vec![b"a".to_vec(), b"b".to_vec()],
            "{kind:?}: the new registration's messages (epoch {epoch}) are delivered"
        );
    }
}
