//! Whatever a broker sends, the core never panics: bad input closes that connection with a typed error
//! and everything else goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::BytesMut;
use proptest::prelude::*;
use pulsar_core::{Error, Event};
use pulsar_proto::encode_command;
use pulsar_proto::pb;
use support::{Reply, Sim};

fn ready() -> (Sim, pulsar_core::ConnectionId) {
    let mut sim = Sim::new();
    sim.client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    sim.client
        .subscribe(sim.now, "t", pulsar_core::ConsumerOptions::new("s"))
        .unwrap();
    sim.run_until_idle();
    let conn = sim.conn_ids()[0];
    (sim, conn)
}

fn check_consistent(sim: &mut Sim, conn: pulsar_core::ConnectionId) {
    let closed = sim.events.iter().find_map(|(_, e)| match e {
        Event::ConnectionClosed {
            conn: c, reason, ..
        } if *c == conn => Some(reason.clone()),
        _ => None,
    });
    if let Some(reason) = closed {
        assert!(
            matches!(reason, Error::Protocol(_) | Error::Auth(_)),
            "{reason:?}"
        );
        // and the client recovers on a new connection
        sim.run_for(Duration::from_secs(2));
        assert!(sim.client.stats().connections.iter().any(|c| c.id != conn));
    }
    sim.run_for(Duration::from_secs(1));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256), chunk in 1usize..64) {
        let (mut sim, conn) = ready();
        sim.chunk = chunk;
        sim.inject(conn, Reply::Raw(data));
        check_consistent(&mut sim, conn);
    }

    #[test]
    fn random_commands_never_panic(
        kind in 0i32..80,
        request_id in prop_oneof![Just(0u64), 0u64..64, any::<u64>()],
        id in 0u64..16,
    ) {
        let (mut sim, conn) = ready();
        // a command of any type with plausible bodies for the common ones
        let mut cmd = pb::BaseCommand { r#type: kind, ..Default::default() };
        cmd.success = Some(Box::new(pb::CommandSuccess { request_id, ..Default::default() }));
        cmd.error = Some(Box::new(pb::CommandError { request_id, error: (id % 30) as i32, message: "x".into() }));
        cmd.send_receipt = Some(Box::new(pb::CommandSendReceipt { producer_id: id, sequence_id: request_id, ..Default::default() }));
        cmd.close_producer = Some(Box::new(pb::CommandCloseProducer { producer_id: id, request_id, ..Default::default() }));
        cmd.close_consumer = Some(Box::new(pb::CommandCloseConsumer { consumer_id: id, request_id, ..Default::default() }));
        cmd.topic_migrated = Some(Box::new(pb::CommandTopicMigrated { resource_id: id, resource_type: (id % 2) as i32, broker_service_url: Some("pulsar://svc:6650".into()), ..Default::default() }));
        cmd.lookup_topic_response = Some(Box::new(pb::CommandLookupTopicResponse { request_id, response: Some((id % 4) as i32), ..Default::default() }));
        cmd.producer_success = Some(Box::new(pb::CommandProducerSuccess { request_id, producer_name: "n".into(), ..Default::default() }));
        cmd.ping = Some(Box::new(pb::CommandPing {}));
        cmd.auth_challenge = Some(Box::new(pb::CommandAuthChallenge::default()));
        let mut buf = BytesMut::new();
        encode_command(&cmd, &mut buf);
        sim.inject(conn, Reply::Raw(buf.to_vec()));
        check_consistent(&mut sim, conn);
    }
}

/// A broker claiming `partitions` for every topic.
fn claims_partitions(sim: &mut Sim, partitions: u32) {
    sim.hook(support::SERVICE, move |_, cmd| {
        let m = cmd.partition_metadata.as_deref()?;
        Some(vec![support::partitioned_metadata(
            m.request_id,
            partitions,
        )])
    });
}

#[test]
fn an_absurd_partition_count_is_refused_instead_of_allocated() {
    // Producers and consumers allocate per partition: a broker claiming 4 billion partitions must
    // not make the client try.
    let mut sim = Sim::new();
    claims_partitions(&mut sim, u32::MAX);
    let r = sim.client.partitioned_metadata(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    });
    let Event::PartitionedMetadata { request, result } = e else {
        unreachable!()
    };
    assert_eq!(request, r);
    assert!(
        matches!(result, Err(Error::Protocol(_))),
        "accepted {result:?}"
    );
    // the largest accepted count still works
    let mut sim = Sim::new();
    claims_partitions(&mut sim, pulsar_core::config::MAX_PARTITIONS);
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    });
    assert!(matches!(
        e,
        Event::PartitionedMetadata { result: Ok(n), .. } if n == pulsar_core::config::MAX_PARTITIONS
    ));
}

#[test]
fn a_producer_on_an_absurdly_partitioned_topic_does_not_allocate_it() {
    let mut sim = Sim::new();
    claims_partitions(&mut sim, u32::MAX);
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    sim.run_until(
        Duration::from_secs(60),
        |e| matches!(e, Event::ProducerFailed { producer, .. } if *producer == p),
    );
}
