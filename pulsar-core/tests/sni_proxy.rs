//! Connections through an SNI proxy (the Java client's `proxyServiceUrl` with
//! `ProxyProtocol.SNI`): every socket goes to the proxy, TLS names the broker it is for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use pulsar_core::{
    BrokerAddress, Client, ClientConfig, ConfigError, Error, Event, IoRequest, ProducerOptions,
    ProxyProtocol,
};
use pulsar_proto::pb::{self, base_command::Type};
use support::{Reply, Sim};

const PROXY: &str = "proxy:4443";

fn sni(service: &str, proxy: Option<&str>, protocol: Option<ProxyProtocol>) -> ClientConfig {
    let mut config = ClientConfig::new(service);
    config.proxy_service_url = proxy.map(str::to_string);
    config.proxy_protocol = protocol;
    config
}

fn address(host: &str, port: u16) -> BrokerAddress {
    BrokerAddress {
        host: host.into(),
        port,
        tls: true,
    }
}

/// A client whose lookups through the proxy name `broker-2`.
fn through_proxy(operation_timeout: Duration) -> Sim {
    let mut config = sni(
        "pulsar+ssl://svc:6651",
        Some("pulsar+ssl://proxy:4443"),
        Some(ProxyProtocol::Sni),
    );
    config.operation_timeout = operation_timeout;
    let mut sim = Sim::with_config(config);
    sim.add_broker(PROXY);
    sim.hook(PROXY, |_, cmd| {
        let l = cmd.lookup_topic.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandLookupTopicResponse {
                broker_service_url_tls: Some("pulsar+ssl://broker-2:6651".into()),
                response: Some(1),
                request_id: l.request_id,
                authoritative: Some(true),
                ..Default::default()
            }
            .into(),
        )])
    });
    sim
}

#[test]
fn every_socket_goes_to_the_proxy_and_tls_names_the_broker() {
    // the topic lives on another broker, reached through the same proxy
    let mut sim = through_proxy(Duration::from_secs(30));
    sim.client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    let connects: Vec<_> = sim
        .io_log
        .iter()
        .filter_map(|(_, io)| match io {
            IoRequest::Connect { conn, address } => Some((*conn, address.clone())),
            _ => None,
        })
        .collect();
    let proxy = BrokerAddress {
        host: "proxy".into(),
        port: 4443,
        tls: true,
    };
    assert_eq!(connects.len(), 2, "{connects:?}");
    assert!(connects.iter().all(|(_, a)| *a == proxy), "{connects:?}");
    // the lookup's connection names the service host, the producer's the broker it owns
    assert_eq!(sim.client.tls_server_name(connects[0].0), Some("svc"));
    assert_eq!(sim.client.tls_server_name(connects[1].0), Some("broker-2"));
    // the proxy routes on the TLS name: CONNECT names no target broker
    let connect_frames = sim.received_of(Type::Connect);
    assert_eq!(connect_frames.len(), 2);
    for c in connect_frames {
        assert_eq!(
            c.command.connect.as_deref().unwrap().proxy_to_broker_url,
            None
        );
    }
}

#[test]
fn a_refusing_proxy_is_named_with_the_broker_it_was_for() {
    // Before: the error and the event named the broker (`svc`), which the client never tried to
    // reach: the socket went to the proxy.
    let mut sim = through_proxy(Duration::from_secs(3));
    sim.broker(PROXY).refuse = true;
    sim.client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    let e = sim.run_until(Duration::from_secs(10), |e| {
        matches!(e, Event::ProducerFailed { .. })
    });
    let Event::ProducerFailed { error, .. } = e else {
        unreachable!()
    };
    let refused = Error::ConnectFailed {
        address: address("proxy", 4443),
        proxy_for: Some(address("svc", 6651)),
        reason: "connection refused".into(),
    };
    assert_eq!(
        error,
        Error::TimedOut {
            after: Duration::from_secs(3),
            last_error: Some(Box::new(refused.clone())),
        }
    );
    assert_eq!(
        refused.to_string(),
        "cannot connect to pulsar+ssl://proxy:4443 (proxy for pulsar+ssl://svc:6651): \
         connection refused"
    );
    let closed: Vec<_> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ConnectionClosed {
                address, reason, ..
            } => Some((address.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    assert!(!closed.is_empty());
    assert!(
        closed
            .iter()
            .all(|(a, r)| *a == address("proxy", 4443) && *r == refused),
        "{closed:?}"
    );
}

#[test]
fn a_proxied_connection_is_reported_at_the_proxy() {
    let mut sim = through_proxy(Duration::from_secs(30));
    sim.client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    let opened: Vec<_> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ConnectionOpened { address, .. } => Some(address.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(opened, vec![address("proxy", 4443); 2]);
    // the stats tell both: where the socket goes and the broker it serves
    let mut stats: Vec<_> = sim
        .client
        .stats()
        .connections
        .into_iter()
        .map(|c| (c.address, c.logical_address))
        .collect();
    stats.sort();
    assert_eq!(
        stats,
        vec![
            (address("proxy", 4443), address("broker-2", 6651)),
            (address("proxy", 4443), address("svc", 6651)),
        ]
    );
    // the proxy drops the producer's connection: the event names the proxy
    let conn = *sim.conn_ids().last().unwrap();
    assert_eq!(sim.client.tls_server_name(conn), Some("broker-2"));
    sim.broker_close(conn);
    let closed = sim.events.iter().find_map(|(_, e)| match e {
        Event::ConnectionClosed {
            conn: c, address, ..
        } if *c == conn => Some(address.clone()),
        _ => None,
    });
    assert_eq!(closed, Some(address("proxy", 4443)));
}

#[test]
fn without_a_proxy_tls_names_the_address_connected_to() {
    let mut sim = Sim::with_config(ClientConfig::new("pulsar://svc:6650"));
    sim.client.lookup_topic(sim.now, "t").unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::LookupCompleted { .. })
    });
    let conn = sim.conn_ids()[0];
    assert_eq!(sim.client.tls_server_name(conn), None);
}

#[test]
fn proxy_settings_are_checked() {
    let invalid = |config: ClientConfig| match Client::new(config, Instant::now()) {
        Err(ConfigError::Invalid { field, reason }) => {
            assert_eq!(field, "proxy_service_url");
            reason
        }
        other => panic!("expected an invalid proxy setting: {other:?}"),
    };
    let ssl = "pulsar+ssl://svc:6651";
    let reason = invalid(sni(ssl, Some("pulsar+ssl://p:1"), None));
    assert!(reason.contains("together"), "{reason}");
    invalid(sni(ssl, None, Some(ProxyProtocol::Sni)));
    let reason = invalid(sni(
        "pulsar://svc:6650",
        Some("pulsar+ssl://p:1"),
        Some(ProxyProtocol::Sni),
    ));
    assert!(reason.contains("TLS"), "{reason}");
    invalid(sni(ssl, Some("https://p:1"), Some(ProxyProtocol::Sni)));
    invalid(sni(
        ssl,
        Some("pulsar+ssl://p:1,q:2"),
        Some(ProxyProtocol::Sni),
    ));
    assert!(Client::new(
        sni(ssl, Some("pulsar+ssl://p:1"), Some(ProxyProtocol::Sni)),
        Instant::now()
    )
    .is_ok());
}
