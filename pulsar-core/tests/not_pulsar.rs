//! A server that is not a Pulsar broker (random bytes, a frame header claiming 2 GiB, an HTTP
//! answer): the connection closes with a typed error naming what was received, and the operations
//! waiting for it fail at once with that error instead of retrying until the operation timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use pulsar_core::{
    BrokerAddress, ClientConfig, Error, Event, IoRequest, ProducerOptions, ProtocolError,
};
use pulsar_proto::pb::base_command::Type;
use support::{Reply, Sim, SERVICE};

const HTTP_400: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The service host answers CONNECT with `bytes`.
fn answering(sim: &mut Sim, addr: &str, bytes: &'static [u8]) {
    sim.hook(addr, move |_, cmd| {
        (cmd.kind() == Some(Type::Connect)).then(|| vec![Reply::Raw(bytes.to_vec())])
    });
}

fn not_pulsar(cause: ProtocolError) -> Error {
    Error::NotPulsar {
        address: BrokerAddress::parse("pulsar://svc:6650").unwrap(),
        cause,
    }
}

fn producer_failure(sim: &mut Sim) -> Error {
    sim.client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    match sim.run_until(Duration::from_secs(60), |e| {
        matches!(
            e,
            Event::ProducerReady { .. } | Event::ProducerFailed { .. }
        )
    }) {
        Event::ProducerFailed { error, .. } => error,
        e => panic!("{e:?}"),
    }
}

fn connects(sim: &Sim) -> usize {
    sim.io_log
        .iter()
        .filter(|(_, io)| matches!(io, IoRequest::Connect { .. }))
        .count()
}

#[test]
fn an_http_answer_fails_creation_at_once_and_says_so() {
    let mut sim = Sim::new();
    answering(&mut sim, SERVICE, HTTP_400);
    let e = producer_failure(&mut sim);
    assert_eq!(sim.elapsed(), Duration::ZERO, "no waiting for a timeout");
    assert_eq!(connects(&sim), 1, "not retried");
    assert_eq!(
        e,
        not_pulsar(ProtocolError::HttpResponse {
            status_line: "HTTP/1.1 400 Bad Request".into()
        })
    );
    assert!(!e.is_retriable());
    let text = e.to_string();
    assert!(
        text.starts_with("pulsar://svc:6650 is not a Pulsar broker: it answered in HTTP"),
        "{text}"
    );
    assert!(
        text.contains("HTTP/1.1 400 Bad Request") && text.contains("6650"),
        "{text}"
    );
    let source = std::error::Error::source(&e).expect("the protocol error is the source");
    assert!(source.to_string().starts_with("it answered in HTTP"));
}

#[test]
fn an_http_answer_in_small_pieces_is_still_recognised() {
    let mut sim = Sim::new();
    sim.chunk = 3;
    answering(&mut sim, SERVICE, HTTP_400);
    let e = producer_failure(&mut sim);
    // The decoder refuses the frame as soon as it has four bytes; what arrived of the status
    // line by then is reported.
    assert!(
        matches!(&e, Error::NotPulsar { cause: ProtocolError::HttpResponse { status_line }, .. }
            if status_line.starts_with("HTTP/")),
        "{e:?}"
    );
}

#[test]
fn a_frame_claiming_2_gib_names_the_size_and_the_limit() {
    let mut sim = Sim::new();
    answering(&mut sim, SERVICE, &[0x80, 0, 0, 0, 1, 2, 3]);
    let e = producer_failure(&mut sim);
    assert_eq!(sim.elapsed(), Duration::ZERO);
    let limit = (pulsar_proto::DEFAULT_MAX_MESSAGE_SIZE + pulsar_proto::FRAME_HEADER_ROOM) as u64;
    assert_eq!(
        e,
        not_pulsar(ProtocolError::FrameTooLarge {
            size: 2 << 30,
            limit
        })
    );
    assert_eq!(
        e.to_string(),
        format!(
            "pulsar://svc:6650 is not a Pulsar broker: frame of 2147483648 bytes claimed, over \
             the limit of {limit} bytes"
        )
    );
}

#[test]
fn undecodable_bytes_say_not_a_pulsar_broker() {
    // A plausible size, then bytes that are no protobuf command.
    let mut sim = Sim::new();
    answering(
        &mut sim,
        SERVICE,
        &[
            0, 0, 0, 12, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    let e = producer_failure(&mut sim);
    assert_eq!(sim.elapsed(), Duration::ZERO);
    assert!(
        matches!(
            &e,
            Error::NotPulsar {
                cause: ProtocolError::Decode(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retriable());
}

#[test]
fn random_bytes_never_panic_and_always_fail_promptly() {
    // Seeded pseudo-random answers of every length up to 64 bytes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for len in 4..64usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let mut sim = Sim::new();
        answering(&mut sim, SERVICE, bytes);
        sim.client
            .create_producer(sim.now, "t", ProducerOptions::default())
            .unwrap();
        let e = sim.run_until(Duration::from_secs(60), |e| {
            matches!(
                e,
                Event::ProducerReady { .. } | Event::ProducerFailed { .. }
            )
        });
        let Event::ProducerFailed { error, .. } = e else {
            panic!("{bytes:?}: {e:?}")
        };
        // Either refused at once, or (a frame still incomplete) the handshake timeout, retried
        // until the deadline.
        match error {
            Error::NotPulsar { .. } => assert_eq!(sim.elapsed(), Duration::ZERO, "{bytes:?}"),
            Error::TimedOut { .. } => assert_eq!(sim.elapsed(), Duration::from_secs(30)),
            other => panic!("{bytes:?}: {other:?}"),
        }
    }
}

#[test]
fn an_application_lookup_fails_at_once_too() {
    let mut sim = Sim::new();
    answering(&mut sim, SERVICE, HTTP_400);
    let request = sim.client.partitioned_metadata(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(60), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    });
    assert_eq!(sim.elapsed(), Duration::ZERO);
    assert_eq!(
        e,
        Event::PartitionedMetadata {
            request,
            result: Err(not_pulsar(ProtocolError::HttpResponse {
                status_line: "HTTP/1.1 400 Bad Request".into()
            }))
        }
    );
}

#[test]
fn another_service_host_is_still_tried() {
    let mut sim = Sim::with_config(ClientConfig::new("pulsar://svc:6650,b2:6650").with_seed(1));
    sim.add_broker("b2:6650");
    answering(&mut sim, SERVICE, HTTP_400);
    sim.client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    let e = sim.run_until(Duration::from_secs(60), |e| {
        matches!(
            e,
            Event::ProducerReady { .. } | Event::ProducerFailed { .. }
        )
    });
    assert!(matches!(e, Event::ProducerReady { .. }), "{e:?}");
}

#[test]
fn a_producer_registered_before_keeps_reconnecting() {
    // The broker's address answers HTTP for a while (a load balancer in front of a restarting
    // broker): a producer that was registered keeps trying and comes back.
    let mut sim = Sim::new();
    let p = sim
        .client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    answering(&mut sim, SERVICE, HTTP_400);
    let conn = sim.conn_ids()[0];
    sim.broker_close(conn);
    sim.run_for(Duration::from_secs(2));
    assert!(connects(&sim) >= 3, "reconnects meet the HTTP answer");
    sim.hook(SERVICE, |_, _| None);
    let e = sim.run_until(Duration::from_secs(120), |e| {
        matches!(
            e,
            Event::ProducerReconnected { .. } | Event::ProducerClosed { .. }
        )
    });
    assert_eq!(e, Event::ProducerReconnected { producer: p });
}
