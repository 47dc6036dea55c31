//! Connections through an SNI proxy (the Java client's `proxyServiceUrl` with
//! `ProxyProtocol.SNI`): every socket goes to the proxy, TLS names the broker it is for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use pulsar_core::{
    BrokerAddress, Client, ClientConfig, ConfigError, Event, IoRequest, ProducerOptions,
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

#[test]
fn every_socket_goes_to_the_proxy_and_tls_names_the_broker() {
    let config = sni(
        "pulsar+ssl://svc:6651",
        Some("pulsar+ssl://proxy:4443"),
        Some(ProxyProtocol::Sni),
    );
    let mut sim = Sim::with_config(config);
    sim.add_broker(PROXY);
    // the topic lives on another broker, reached through the same proxy
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
