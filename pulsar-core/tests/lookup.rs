//! Service discovery: LOOKUP redirects, redirect limit, proxying, failures, partitioned metadata, topic
//! lists, several service hosts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use pulsar_core::{BrokerAddress, ClientConfig, Error, Event, ServerErrorCode, TopicsMode};
use pulsar_proto::pb::{self, base_command::Type};
use support::{Reply, Sim, SERVICE};

fn addr(hp: &str) -> BrokerAddress {
    BrokerAddress::parse(&format!("pulsar://{hp}")).unwrap()
}

fn lookup_reply(
    request_id: u64,
    response: i32,
    url: &str,
    authoritative: bool,
    proxy: bool,
) -> Reply {
    Reply::Cmd(
        pb::CommandLookupTopicResponse {
            broker_service_url: Some(format!("pulsar://{url}")),
            response: Some(response),
            request_id,
            authoritative: Some(authoritative),
            proxy_through_service_url: Some(proxy),
            ..Default::default()
        }
        .into(),
    )
}

const REDIRECT: i32 = 0;
const CONNECT: i32 = 1;

#[test]
fn lookup_follows_a_redirect_with_the_authoritative_flag() {
    let mut sim = Sim::new();
    sim.add_broker("b2:6650");
    sim.hook(SERVICE, |_, cmd| {
        let l = cmd.lookup_topic.as_deref()?;
        Some(vec![lookup_reply(
            l.request_id,
            REDIRECT,
            "b2:6650",
            true,
            false,
        )])
    });
    let req = sim.client.lookup_topic(sim.now, "my-topic").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::LookupCompleted { .. })
    });
    let Event::LookupCompleted { request, result } = e else {
        unreachable!()
    };
    assert_eq!(request, req);
    let r = result.unwrap();
    assert_eq!(r.broker, addr("b2:6650"));
    assert_eq!(r.connect_to, addr("b2:6650"));
    assert_eq!(r.redirects, 1);
    assert!(!r.is_proxied());
    let lookups = sim.received_of(Type::Lookup);
    assert_eq!(lookups.len(), 2);
    assert_eq!(lookups[0].broker, SERVICE);
    let first = lookups[0].command.lookup_topic.as_deref().unwrap();
    assert_eq!(first.topic, "persistent://public/default/my-topic");
    assert_eq!(first.authoritative, Some(false));
    assert_eq!(lookups[1].broker, "b2:6650");
    assert_eq!(
        lookups[1]
            .command
            .lookup_topic
            .as_deref()
            .unwrap()
            .authoritative,
        Some(true)
    );
}

#[test]
fn lookup_gives_up_after_the_redirect_limit() {
    let mut config = ClientConfig::new("pulsar://svc:6650");
    config.max_lookup_redirects = 3;
    let mut sim = Sim::with_config(config);
    sim.add_broker("b2:6650");
    for b in [SERVICE, "b2:6650"] {
        let other = if b == SERVICE { "b2:6650" } else { SERVICE };
        sim.hook(b, move |_, cmd| {
            let l = cmd.lookup_topic.as_deref()?;
            Some(vec![lookup_reply(
                l.request_id,
                REDIRECT,
                other,
                false,
                false,
            )])
        });
    }
    sim.client.lookup_topic(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::LookupCompleted { .. })
    });
    let Event::LookupCompleted { result, .. } = e else {
        unreachable!()
    };
    assert_eq!(result, Err(Error::TooManyRedirects(3)));
    assert_eq!(
        sim.received_of(Type::Lookup).len(),
        4,
        "initial + 3 redirects"
    );
}

#[test]
fn lookup_failure_is_a_typed_server_error() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let l = cmd.lookup_topic.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandLookupTopicResponse {
                response: Some(2),
                request_id: l.request_id,
                error: Some(11),
                message: Some("no such topic".into()),
                ..Default::default()
            }
            .into(),
        )])
    });
    sim.client.lookup_topic(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::LookupCompleted { .. })
    });
    let Event::LookupCompleted { result, .. } = e else {
        unreachable!()
    };
    let err = result.unwrap_err();
    assert_eq!(err.server_code(), Some(ServerErrorCode::TopicNotFound));
    assert!(!err.is_retriable());
}

#[test]
fn proxy_through_service_url_connects_to_the_service_with_proxy_to_broker_url() {
    let mut sim = Sim::new();
    // b2 does not exist as a reachable address: everything must go through the service host.
    sim.hook(SERVICE, |ctx, cmd| {
        if let Some(l) = cmd.lookup_topic.as_deref() {
            return Some(vec![lookup_reply(
                l.request_id,
                CONNECT,
                "b2:6650",
                true,
                true,
            )]);
        }
        if let Some(p) = cmd.producer.as_deref() {
            // the proxy forwards to b2 only on the connection that asked for it
            let proxied = ctx
                .connect
                .as_ref()
                .and_then(|c| c.proxy_to_broker_url.clone());
            assert_eq!(proxied.as_deref(), Some("b2:6650"));
            return Some(vec![Reply::Cmd(
                pb::CommandProducerSuccess {
                    request_id: p.request_id,
                    producer_name: "via-proxy".into(),
                    ..Default::default()
                }
                .into(),
            )]);
        }
        None
    });
    let req = sim.client.lookup_topic(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::LookupCompleted { .. })
    });
    let Event::LookupCompleted { request, result } = e else {
        unreachable!()
    };
    assert_eq!(request, req);
    let r = result.unwrap();
    assert_eq!(r.broker, addr("b2:6650"));
    assert_eq!(r.connect_to, addr(SERVICE));
    assert!(r.is_proxied());

    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    assert_eq!(
        e,
        Event::ProducerReady {
            producer: p,
            name: "via-proxy".into(),
            last_sequence_id: -1,
            schema_version: None
        }
    );
    let connects = sim.received_of(Type::Connect);
    assert_eq!(connects.len(), 2, "service connection + proxied connection");
    assert_eq!(
        connects[0]
            .command
            .connect
            .as_deref()
            .unwrap()
            .proxy_to_broker_url,
        None
    );
    assert_eq!(
        connects[1]
            .command
            .connect
            .as_deref()
            .unwrap()
            .proxy_to_broker_url
            .as_deref(),
        Some("b2:6650")
    );
    assert!(connects.iter().all(|c| c.broker == SERVICE));
    let stats = sim.client.stats();
    assert_eq!(stats.connections.len(), 2);
    assert!(stats
        .connections
        .iter()
        .any(|c| c.logical_address == addr("b2:6650") && c.address == addr(SERVICE)));
}

#[test]
fn partitioned_metadata_and_topic_list() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let m = cmd.partition_metadata.as_deref()?;
        let n = if m.topic.ends_with("/parted") { 4 } else { 0 };
        Some(vec![support::partitioned_metadata(m.request_id, n)])
    });
    let a = sim.client.partitioned_metadata(sim.now, "parted").unwrap();
    let b = sim.client.partitioned_metadata(sim.now, "plain").unwrap();
    let c = sim
        .client
        .topics_of_namespace(sim.now, "acme/ns", TopicsMode::All)
        .unwrap();
    sim.run_until_idle();
    let events = sim.take_events();
    assert!(events.contains(&Event::PartitionedMetadata {
        request: a,
        result: Ok(4)
    }));
    assert!(events.contains(&Event::PartitionedMetadata {
        request: b,
        result: Ok(0)
    }));
    assert!(events.contains(&Event::TopicsOfNamespace {
        request: c,
        result: Ok(vec!["persistent://acme/ns/t1".to_string()])
    }));
    let q = sim.received_of(Type::GetTopicsOfNamespace);
    let q = q[0].command.get_topics_of_namespace.as_deref().unwrap();
    assert_eq!(q.namespace, "acme/ns");
    assert_eq!(q.mode, Some(2));
    assert_eq!(
        sim.received_of(Type::Connect).len(),
        1,
        "one shared service connection"
    );
}

#[test]
fn partitioned_metadata_error() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let m = cmd.partition_metadata.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandPartitionedTopicMetadataResponse {
                request_id: m.request_id,
                response: Some(1),
                error: Some(4),
                message: Some("not authorized".into()),
                ..Default::default()
            }
            .into(),
        )])
    });
    let r = sim.client.partitioned_metadata(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    });
    assert_eq!(
        e,
        Event::PartitionedMetadata {
            request: r,
            result: Err(Error::Server {
                code: ServerErrorCode::AuthorizationError,
                message: "not authorized".into()
            })
        }
    );
}

#[test]
fn several_service_hosts_are_tried_in_turn() {
    let mut sim = Sim::with_config(ClientConfig::new("pulsar://down:6650,svc:6650"));
    sim.add_broker("down:6650").refuse = true;
    let r = sim.client.partitioned_metadata(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    });
    assert_eq!(
        e,
        Event::PartitionedMetadata {
            request: r,
            result: Ok(0)
        }
    );
    let connects: Vec<String> = sim
        .io_log
        .iter()
        .filter_map(|(_, io)| match io {
            pulsar_core::IoRequest::Connect { address, .. } => Some(address.host_port()),
            _ => None,
        })
        .collect();
    assert_eq!(connects, vec!["down:6650", "svc:6650"]);
    // the next request goes straight to the host that works
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    sim.run_until_idle();
    assert_eq!(sim.io_log.len(), 2);
}

#[test]
fn every_service_host_down_fails_the_request() {
    let mut sim = Sim::with_config(ClientConfig::new("pulsar://a:6650,b:6650"));
    sim.add_broker("a:6650").refuse = true;
    sim.add_broker("b:6650").refuse = true;
    sim.client.lookup_topic(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::LookupCompleted { .. })
    });
    let Event::LookupCompleted { result, .. } = e else {
        unreachable!()
    };
    assert!(
        matches!(result, Err(Error::ConnectFailed { .. })),
        "{result:?}"
    );
}

#[test]
fn connections_per_broker_spreads_producers() {
    let mut config = ClientConfig::new("pulsar://svc:6650");
    config.connections_per_broker = 2;
    let mut sim = Sim::with_config(config);
    for _ in 0..4 {
        sim.client
            .create_producer(sim.now, "t", Default::default())
            .unwrap();
    }
    sim.run_until_idle();
    let ready = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::ProducerReady { .. }))
        .count();
    assert_eq!(ready, 4);
    // service connection for lookups shares the pool key with the broker (same address): 2 slots
    assert_eq!(sim.client.stats().connections.len(), 2);
}

#[test]
fn proxy_through_service_url_connects_to_the_host_that_answered_the_lookup() {
    // Java (BinaryProtoLookupService): with proxyThroughServiceUrl the physical address is the one the
    // lookup was sent to. After a redirect to proxy p2, the topic is reached through p2, not through
    // the first service host.
    let mut sim = Sim::new();
    sim.add_broker("p2:6650");
    sim.hook(SERVICE, |_, cmd| {
        let l = cmd.lookup_topic.as_deref()?;
        Some(vec![lookup_reply(
            l.request_id,
            REDIRECT,
            "p2:6650",
            false,
            false,
        )])
    });
    sim.hook("p2:6650", |_, cmd| {
        let l = cmd.lookup_topic.as_deref()?;
        Some(vec![lookup_reply(
            l.request_id,
            CONNECT,
            "b9:6650",
            true,
            true,
        )])
    });
    sim.client.lookup_topic(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::LookupCompleted { .. })
    });
    let Event::LookupCompleted { result, .. } = e else {
        unreachable!()
    };
    let r = result.unwrap();
    assert_eq!(r.broker, addr("b9:6650"));
    assert_eq!(r.connect_to, addr("p2:6650"));
}

#[test]
fn a_tls_client_never_falls_back_to_a_plaintext_broker_url() {
    // The Java client takes brokerServiceUrlTls when the service URL is TLS, and TLS is client-wide:
    // a lookup answer without a TLS URL must fail instead of silently downgrading to plaintext.
    let mut sim = Sim::with_config(ClientConfig::new("pulsar+ssl://svc:6651").with_seed(1));
    sim.add_broker("svc:6651");
    sim.hook("svc:6651", |_, cmd| {
        let l = cmd.lookup_topic.as_deref()?;
        let tls = l.topic.ends_with("with-tls");
        Some(vec![Reply::Cmd(
            pb::CommandLookupTopicResponse {
                broker_service_url: Some("pulsar://b1:6650".into()),
                // a TLS URL written with the plain scheme still means TLS for a TLS client
                broker_service_url_tls: tls.then(|| "pulsar://b1:6651".into()),
                response: Some(CONNECT),
                request_id: l.request_id,
                authoritative: Some(true),
                ..Default::default()
            }
            .into(),
        )])
    });
    let plain_only = sim.client.lookup_topic(sim.now, "plain-only").unwrap();
    let with_tls = sim.client.lookup_topic(sim.now, "with-tls").unwrap();
    sim.run_until_idle();
    let result_of = |req| {
        sim.events.iter().find_map(|(_, e)| match e {
            Event::LookupCompleted { request, result } if *request == req => Some(result.clone()),
            _ => None,
        })
    };
    let r = result_of(plain_only).expect("answered");
    assert!(
        r.is_err(),
        "plaintext broker URL accepted by a TLS client: {r:?}"
    );
    let r = result_of(with_tls).expect("answered").unwrap();
    assert_eq!(r.connect_to.host_port(), "b1:6651");
    assert!(r.connect_to.tls, "the connection must use TLS");
}

#[test]
fn a_lookup_waiting_for_a_handshake_is_sent_on_that_connection() {
    // With several connections per broker, an operation queued on a connection until its handshake
    // is sent there once it is ready, instead of picking another slot (opening another connection)
    // each time a handshake completes.
    let mut config = ClientConfig::new("pulsar://svc:6650").with_seed(1);
    config.connections_per_broker = 4;
    let mut sim = Sim::with_config(config);
    let req = sim.client.partitioned_metadata(sim.now, "t").unwrap();
    sim.run_until_idle();
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::PartitionedMetadata { request, result: Ok(0) } if *request == req)));
    let connects = sim
        .io_log
        .iter()
        .filter(|(_, io)| matches!(io, pulsar_core::IoRequest::Connect { .. }))
        .count();
    assert_eq!(connects, 1, "one connection is enough for one request");
}

#[test]
fn operations_pick_a_pool_slot_at_random_from_the_seed() {
    // Java picks a random connection of the pool per request; here the pick is seeded: the same
    // seed gives the same slots, and several requests spread over the slots.
    let slots = |seed: u64| {
        let mut config = ClientConfig::new("pulsar://svc:6650").with_seed(seed);
        config.connections_per_broker = 8;
        let mut sim = Sim::with_config(config);
        for _ in 0..16 {
            sim.client.partitioned_metadata(sim.now, "t").unwrap();
            sim.run_until_idle();
        }
        sim.received_of(Type::PartitionedMetadata)
            .iter()
            .map(|r| r.conn)
            .collect::<Vec<_>>()
    };
    let a = slots(3);
    assert_eq!(a, slots(3), "same seed, same picks");
    let distinct: std::collections::BTreeSet<_> = a.iter().collect();
    assert!(distinct.len() > 2, "requests spread over the pool: {a:?}");
    // not a plain rotation: some consecutive requests share a connection or skip around
    assert_ne!(a, slots(4), "the seed decides");
}

#[test]
fn listener_name_goes_in_every_lookup_and_must_not_be_blank() {
    let mut config = ClientConfig::new("pulsar://svc:6650").with_seed(1);
    config.listener_name = Some("internal".into());
    let mut sim = Sim::with_config(config);
    sim.client.lookup_topic(sim.now, "t").unwrap();
    sim.run_until_idle();
    let lookups = sim.received_of(Type::Lookup);
    assert_eq!(lookups.len(), 1);
    assert_eq!(
        lookups[0]
            .command
            .lookup_topic
            .as_deref()
            .unwrap()
            .advertised_listener_name
            .as_deref(),
        Some("internal")
    );
    // Java's ClientBuilder.listenerName refuses a blank name
    for blank in ["", "  "] {
        let mut config = ClientConfig::new("pulsar://svc:6650");
        config.listener_name = Some(blank.into());
        assert!(matches!(
            pulsar_core::Client::new(config, sim.now),
            Err(pulsar_core::ConfigError::Invalid {
                field: "listener_name",
                ..
            })
        ));
    }
}
