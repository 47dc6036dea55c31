//! Connection-level behaviour: handshake, timeouts, keep-alive, request correlation, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::BytesMut;
use pulsar_core::{
    ClientConfig, ConnectionState, Error, Event, IoRequest, ProtocolError, TokenAuth, UsageError,
};
use pulsar_proto::pb::{self, base_command::Type};
use pulsar_proto::{encode_command, FrameDecoder};
use support::{Reply, Sim, SERVICE};

fn metadata_result(sim: &mut Sim, max: Duration) -> Result<u32, Error> {
    match sim.run_until(max, |e| matches!(e, Event::PartitionedMetadata { .. })) {
        Event::PartitionedMetadata { result, .. } => result,
        _ => unreachable!(),
    }
}

#[test]
fn handshake_sends_connect_v21_with_auth_and_features_and_applies_max_message_size() {
    let config = ClientConfig::new("pulsar://svc:6650")
        .with_seed(3)
        .with_auth(TokenAuth::new("secret-token"));
    let mut sim = Sim::with_config(config);
    sim.broker(SERVICE).max_message_size = Some(10 * 1024 * 1024);
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    assert_eq!(metadata_result(&mut sim, Duration::from_secs(1)), Ok(0));

    let connects = sim.received_of(Type::Connect);
    assert_eq!(connects.len(), 1);
    let c = connects[0].command.connect.as_deref().unwrap();
    assert_eq!(c.protocol_version, Some(21));
    assert!(c.client_version.starts_with("pulsar-sansio-rust-"));
    assert_eq!(c.auth_method_name.as_deref(), Some("token"));
    assert_eq!(c.auth_data.as_deref(), Some(&b"secret-token"[..]));
    assert_eq!(c.proxy_to_broker_url, None);
    let f = c.feature_flags.as_ref().unwrap();
    assert_eq!(f.supports_auth_refresh, Some(true));
    assert_eq!(f.supports_broker_entry_metadata, Some(true));
    assert_eq!(f.supports_partial_producer, Some(true));
    assert_eq!(f.supports_topic_watchers, Some(true));

    let stats = sim.client.stats();
    assert_eq!(stats.connections.len(), 1);
    assert_eq!(stats.connections[0].state, ConnectionState::Ready);
    assert_eq!(stats.connections[0].max_message_size, 10 * 1024 * 1024);
    assert_eq!(
        stats.connections[0].server_version.as_deref(),
        Some("scripted-broker")
    );
    assert!(stats.connections[0].frames_in >= 2 && stats.connections[0].frames_out >= 2);
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::ConnectionOpened { .. })));
}

#[test]
fn connected_max_message_size_bounds_incoming_frames() {
    let mut sim = Sim::new();
    sim.broker(SERVICE).max_message_size = Some(1024);
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    metadata_result(&mut sim, Duration::from_secs(1)).unwrap();
    let conn = sim.conn_ids()[0];
    // a frame announcing 1 MiB is more than 1 KiB + header room: the connection is closed
    let mut raw = (1024u32 * 1024).to_be_bytes().to_vec();
    raw.extend_from_slice(&[0; 16]);
    sim.inject(conn, Reply::Raw(raw));
    let closed = sim.events.iter().find_map(|(_, e)| match e {
        Event::ConnectionClosed {
            conn: c, reason, ..
        } if *c == conn => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(
        closed,
        Some(Error::Protocol(ProtocolError::FrameTooLarge {
            size: 1024 * 1024,
            limit: 1024 + pulsar_proto::FRAME_HEADER_ROOM as u64,
        }))
    );
}

#[test]
fn handshake_timeout_closes_the_connection_and_fails_the_request() {
    let mut sim = Sim::new();
    sim.broker(SERVICE).silent = true;
    let req = sim.client.partitioned_metadata(sim.now, "t").unwrap();
    let e = sim.run_until(Duration::from_secs(60), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    });
    // default connection timeout: 10 s
    let (at, _) = sim.events.iter().find(|(_, ev)| *ev == e).unwrap();
    assert_eq!(*at, Duration::from_secs(10));
    match e {
        Event::PartitionedMetadata { request, result } => {
            assert_eq!(request, req);
            assert!(
                matches!(result, Err(Error::HandshakeTimeout(_))),
                "{result:?}"
            );
        }
        _ => unreachable!(),
    }
    assert!(sim
        .io_log
        .iter()
        .any(|(_, io)| matches!(io, IoRequest::Close { .. })));
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::ConnectionClosed {
            reason: Error::HandshakeTimeout(_),
            ..
        }
    )));
    assert!(sim.client.stats().connections.is_empty());
}

#[test]
fn connect_timeout_when_the_runtime_never_answers() {
    let mut sim = Sim::new();
    sim.hang_connects.insert(SERVICE.to_string());
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    let r = metadata_result(&mut sim, Duration::from_secs(60));
    assert!(matches!(r, Err(Error::ConnectFailed { .. })), "{r:?}");
    assert_eq!(sim.elapsed(), Duration::from_secs(10));
}

#[test]
fn answers_ping_with_pong() {
    let mut sim = Sim::new();
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    metadata_result(&mut sim, Duration::from_secs(1)).unwrap();
    let conn = sim.conn_ids()[0];
    let before = sim.received_of(Type::Pong).len();
    sim.inject(conn, Reply::Cmd(pb::CommandPing {}.into()));
    assert_eq!(sim.received_of(Type::Pong).len(), before + 1);
}

#[test]
fn keep_alive_pings_when_idle_and_stays_open_while_the_broker_answers() {
    let mut sim = Sim::new();
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    metadata_result(&mut sim, Duration::from_secs(1)).unwrap();
    sim.run_for(Duration::from_secs(29));
    assert!(sim.received_of(Type::Ping).is_empty());
    sim.run_for(Duration::from_secs(2));
    let pings = sim.received_of(Type::Ping);
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0].at, Duration::from_secs(30));
    sim.run_for(Duration::from_secs(300));
    assert_eq!(sim.received_of(Type::Ping).len(), 11, "one ping every 30 s");
    assert_eq!(sim.client.stats().connections.len(), 1);
}

#[test]
fn keep_alive_closes_a_half_open_connection_after_two_intervals() {
    let mut sim = Sim::new();
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    metadata_result(&mut sim, Duration::from_secs(1)).unwrap();
    let conn = sim.conn_ids()[0];
    sim.black_hole(conn);
    let e = sim.run_until(Duration::from_secs(120), |e| {
        matches!(e, Event::ConnectionClosed { .. })
    });
    assert!(
        matches!(
            e,
            Event::ConnectionClosed {
                reason: Error::KeepAliveTimeout(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(sim.elapsed(), Duration::from_secs(60));
    assert_eq!(sim.received_of(Type::Ping).len(), 1);
    assert!(sim
        .io_log
        .iter()
        .any(|(_, io)| *io == IoRequest::Close { conn }));
}

#[test]
fn request_timeout_fails_only_that_request_and_a_late_answer_is_ignored() {
    let mut sim = Sim::new();
    let held = std::rc::Rc::new(std::cell::RefCell::new(None));
    let h = held.clone();
    sim.hook(SERVICE, move |_, cmd| {
        let m = cmd.partition_metadata.as_deref()?;
        if m.topic.ends_with("/slow") {
            *h.borrow_mut() = Some(m.request_id);
            return Some(vec![]); // never answered (until later)
        }
        None
    });
    let slow = sim.client.partitioned_metadata(sim.now, "slow").unwrap();
    let fast = sim.client.partitioned_metadata(sim.now, "fast").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    });
    assert_eq!(
        e,
        Event::PartitionedMetadata {
            request: fast,
            result: Ok(0)
        }
    );
    let e = sim.run_until(Duration::from_secs(60), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    });
    // The operation's deadline: no cause to name, the broker was connected and silent.
    assert_eq!(
        e,
        Event::PartitionedMetadata {
            request: slow,
            result: Err(Error::TimedOut {
                after: Duration::from_secs(30),
                last_error: None
            })
        }
    );
    assert_eq!(sim.elapsed(), Duration::from_secs(30));
    assert_eq!(sim.client.stats().counters.requests_timed_out, 1);
    // the connection is still there and usable
    let conn = sim.conn_ids()[0];
    assert_eq!(sim.client.stats().connections.len(), 1);
    // a late answer to the timed-out request does not close it
    let rid = held.borrow().unwrap();
    sim.inject(conn, support::partitioned_metadata(rid, 3));
    assert_eq!(sim.client.stats().connections.len(), 1);
    let again = sim.client.partitioned_metadata(sim.now, "fast").unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    });
    assert_eq!(
        e,
        Event::PartitionedMetadata {
            request: again,
            result: Ok(0)
        }
    );
    assert_eq!(sim.received_of(Type::Connect).len(), 1, "no reconnection");
}

/// Drives one client by hand: returns the CONNECT+request bytes' decoded request id, and the reply
/// stream the broker would send.
fn manual_exchange(split: impl Fn(&[u8]) -> Vec<Vec<u8>>) -> Vec<Event> {
    let start = std::time::Instant::now();
    let mut client =
        pulsar_core::Client::new(ClientConfig::new("pulsar://svc:6650"), start).unwrap();
    let req = client.partitioned_metadata(start, "t").unwrap();
    let Some(IoRequest::Connect { conn, .. }) = client.poll_io() else {
        panic!("connect expected")
    };
    client.handle_connected(start, conn).unwrap();
    let mut out = BytesMut::new();
    while let Some(t) = client.poll_transmit() {
        out.extend_from_slice(&t.data);
    }
    let dec = FrameDecoder::default();
    let connect = dec.decode(&mut out).unwrap().unwrap();
    assert_eq!(connect.command.kind(), Some(Type::Connect));
    assert!(out.is_empty(), "the request waits for CONNECTED");

    let mut reply = BytesMut::new();
    encode_command(
        &pb::CommandConnected {
            server_version: "x".into(),
            ..Default::default()
        }
        .into(),
        &mut reply,
    );
    let mut stream = reply.to_vec();
    // feed CONNECTED split as asked, then learn the request id and answer it split as asked
    for part in split(&stream) {
        client.handle_bytes(start, conn, &part).unwrap();
    }
    let mut out = BytesMut::new();
    while let Some(t) = client.poll_transmit() {
        out.extend_from_slice(&t.data);
    }
    let request = dec.decode(&mut out).unwrap().unwrap();
    let rid = request
        .command
        .partition_metadata
        .as_deref()
        .unwrap()
        .request_id;
    let mut reply = BytesMut::new();
    encode_command(
        &pb::CommandPartitionedTopicMetadataResponse {
            partitions: Some(7),
            request_id: rid,
            response: Some(0),
            ..Default::default()
        }
        .into(),
        &mut reply,
    );
    encode_command(&pb::CommandPing {}.into(), &mut reply);
    stream = reply.to_vec();
    for part in split(&stream) {
        client.handle_bytes(start, conn, &part).unwrap();
    }
    let mut out = BytesMut::new();
    while let Some(t) = client.poll_transmit() {
        out.extend_from_slice(&t.data);
    }
    let pong = dec.decode(&mut out).unwrap().unwrap();
    assert_eq!(pong.command.kind(), Some(Type::Pong));
    let mut events = Vec::new();
    while let Some(e) = client.poll_event() {
        events.push(e);
    }
    assert!(
        events.contains(&Event::PartitionedMetadata {
            request: req,
            result: Ok(7)
        }),
        "{events:?}"
    );
    events
}

#[test]
fn partial_frames_split_at_every_byte_position() {
    let whole = manual_exchange(|s| vec![s.to_vec()]);
    let max_len = 64;
    for i in 0..max_len {
        let events = manual_exchange(|s| {
            let i = i.min(s.len());
            vec![s[..i].to_vec(), s[i..].to_vec()]
        });
        assert_eq!(events, whole, "split at {i}");
    }
    let bytewise = manual_exchange(|s| s.iter().map(|b| vec![*b]).collect());
    assert_eq!(bytewise, whole);
}

#[test]
fn partial_frames_through_the_simulator_one_byte_at_a_time() {
    let mut sim = Sim::new();
    sim.chunk = 1;
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    let s = sim.client.send_payload(sim.now, p, &b"hello"[..]).unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::SendCompleted { .. })
    });
    assert!(matches!(e, Event::SendCompleted { send, result: Ok(_), .. } if send == s));
}

fn closed_reason(sim: &Sim, conn: pulsar_core::ConnectionId) -> Option<Error> {
    sim.events.iter().find_map(|(_, e)| match e {
        Event::ConnectionClosed {
            conn: c, reason, ..
        } if *c == conn => Some(reason.clone()),
        _ => None,
    })
}

fn ready_sim_with_producer() -> (Sim, pulsar_core::ProducerId, pulsar_core::ConnectionId) {
    let mut sim = Sim::new();
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    let conn = sim.conn_ids()[0];
    (sim, p, conn)
}

#[test]
fn garbage_closes_the_connection_with_a_typed_error_and_the_producer_reconnects() {
    let (mut sim, p, conn) = ready_sim_with_producer();
    sim.inject(
        conn,
        Reply::Raw(vec![0, 0, 0, 8, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]),
    );
    assert!(matches!(
        closed_reason(&sim, conn),
        Some(Error::Protocol(ProtocolError::Decode(_)))
    ));
    assert_eq!(sim.client.stats().counters.protocol_errors, 1);
    let e = sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    assert_eq!(e, Event::ProducerReconnected { producer: p });
    assert_eq!(sim.received_of(Type::Producer).len(), 2);
}

#[test]
fn unknown_command_type_closes_the_connection() {
    let (mut sim, _p, conn) = ready_sim_with_producer();
    let cmd = pb::BaseCommand {
        r#type: 999,
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    encode_command(&cmd, &mut buf);
    sim.inject(conn, Reply::Raw(buf.to_vec()));
    let reason = closed_reason(&sim, conn);
    assert!(matches!(reason, Some(Error::Protocol(_))), "{reason:?}");
}

#[test]
fn client_side_command_from_the_broker_closes_the_connection() {
    let (mut sim, _p, conn) = ready_sim_with_producer();
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandFlow {
                consumer_id: 1,
                message_permits: 1,
            }
            .into(),
        ),
    );
    let reason = closed_reason(&sim, conn);
    assert!(
        matches!(
            reason,
            Some(Error::Protocol(ProtocolError::UnexpectedCommand(_)))
        ),
        "{reason:?}"
    );
}

#[test]
fn response_to_unknown_request_id_closes_the_connection() {
    let (mut sim, _p, conn) = ready_sim_with_producer();
    sim.inject(conn, Reply::Cmd(support::success(123_456)));
    assert_eq!(
        closed_reason(&sim, conn),
        Some(Error::Protocol(ProtocolError::UnknownRequestId(123_456)))
    );
}

#[test]
fn oversized_frame_closes_the_connection() {
    let (mut sim, _p, conn) = ready_sim_with_producer();
    sim.inject(conn, Reply::Raw(u32::MAX.to_be_bytes().to_vec()));
    // After the handshake: the broker's frame is refused and the client reconnects.
    let reason = closed_reason(&sim, conn);
    assert_eq!(
        reason,
        Some(Error::Protocol(ProtocolError::FrameTooLarge {
            size: u64::from(u32::MAX),
            limit: (pulsar_proto::DEFAULT_MAX_MESSAGE_SIZE + pulsar_proto::FRAME_HEADER_ROOM)
                as u64,
        }))
    );
    assert!(reason.is_some_and(|r| r.is_retriable()));
}

#[test]
fn misuse_returns_usage_errors_and_changes_nothing() {
    let start = std::time::Instant::now();
    let mut client =
        pulsar_core::Client::new(ClientConfig::new("pulsar://svc:6650"), start).unwrap();
    let bogus = {
        // a handle of another kind is not a connection
        let r = client.partitioned_metadata(start, "t").unwrap();
        let Some(IoRequest::Connect { conn, .. }) = client.poll_io() else {
            panic!()
        };
        assert_ne!(r.get(), conn.get());
        conn
    };
    // bytes before connected
    assert_eq!(
        client.handle_bytes(start, bogus, b"x"),
        Err(UsageError::NotConnected(bogus))
    );
    assert_eq!(
        client.handle_closed(start, bogus),
        Err(UsageError::NotConnected(bogus))
    );
    client.handle_connected(start, bogus).unwrap();
    assert_eq!(
        client.handle_connected(start, bogus),
        Err(UsageError::AlreadyConnected(bogus))
    );
    assert_eq!(
        client.handle_connect_failed(start, bogus, "x".into()),
        Err(UsageError::AlreadyConnected(bogus))
    );
    client.handle_closed(start, bogus).unwrap();
    assert_eq!(
        client.handle_bytes(start, bogus, b"x"),
        Err(UsageError::UnknownConnection(bogus))
    );
    assert_eq!(
        client.handle_closed(start, bogus),
        Err(UsageError::UnknownConnection(bogus))
    );
    // spurious timeouts are harmless
    client.handle_timeout(start);
    client.handle_timeout(start);
    // invalid topic
    assert!(matches!(
        client.lookup_topic(start, "a/b"),
        Err(Error::InvalidTopic(_))
    ));
    assert!(matches!(
        pulsar_core::Client::new(ClientConfig::new("http://x"), start),
        Err(pulsar_core::ConfigError::ServiceUrl(_))
    ));
}

#[test]
fn auth_challenge_is_answered_with_fresh_data_without_dropping_the_connection() {
    let mut n = 0;
    let auth = TokenAuth::from_supplier(move || {
        n += 1;
        Ok(format!("token-{n}"))
    });
    let mut sim = Sim::with_config(ClientConfig::new("pulsar://svc:6650").with_auth(auth));
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    metadata_result(&mut sim, Duration::from_secs(1)).unwrap();
    let conn = sim.conn_ids()[0];
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandAuthChallenge {
                server_version: Some("b".into()),
                challenge: Some(pb::AuthData {
                    auth_method_name: Some("token".into()),
                    auth_data: Some(bytes::Bytes::from_static(b"refresh")),
                }),
                protocol_version: Some(21),
            }
            .into(),
        ),
    );
    let responses = sim.received_of(Type::AuthResponse);
    assert_eq!(responses.len(), 1);
    let r = responses[0].command.auth_response.as_deref().unwrap();
    let data = r.response.as_ref().unwrap();
    assert_eq!(data.auth_method_name.as_deref(), Some("token"));
    assert_eq!(data.auth_data.as_deref(), Some(&b"token-2"[..]));
    assert_eq!(sim.conn_ids(), vec![conn]);
    assert_eq!(sim.client.stats().connections.len(), 1);
    // still usable
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    metadata_result(&mut sim, Duration::from_secs(1)).unwrap();
}

#[test]
fn handshake_rejected_by_the_broker_gives_a_typed_fatal_error() {
    let mut sim =
        Sim::with_config(ClientConfig::new("pulsar://svc:6650").with_auth(TokenAuth::new("bad")));
    sim.hook(SERVICE, |_, cmd| {
        cmd.connect.as_ref()?;
        Some(vec![Reply::Cmd(
            pb::CommandError {
                request_id: u64::MAX,
                error: 3,
                message: "invalid token".into(),
            }
            .into(),
        )])
    });
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    let e = sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerFailed { .. })
    });
    match e {
        Event::ProducerFailed { producer, error } => {
            assert_eq!(producer, p);
            assert_eq!(
                error.server_code(),
                Some(pulsar_core::ServerErrorCode::AuthenticationError)
            );
            assert!(!error.is_retriable());
        }
        _ => unreachable!(),
    }
    assert_eq!(
        sim.received_of(Type::Connect).len(),
        1,
        "a fatal error is not retried"
    );
}

#[test]
fn handshake_rejected_by_the_owning_broker_fails_the_producer_without_retrying() {
    let mut sim =
        Sim::with_config(ClientConfig::new("pulsar://svc:6650").with_auth(TokenAuth::new("t")));
    sim.add_broker("b2:6650");
    sim.hook(SERVICE, |_, cmd| {
        let l = cmd.lookup_topic.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandLookupTopicResponse {
                broker_service_url: Some("pulsar://b2:6650".into()),
                response: Some(1),
                request_id: l.request_id,
                ..Default::default()
            }
            .into(),
        )])
    });
    sim.hook("b2:6650", |_, cmd| {
        cmd.connect.as_ref()?;
        Some(vec![Reply::Cmd(
            pb::CommandError {
                request_id: u64::MAX,
                error: 4,
                message: "not authorized".into(),
            }
            .into(),
        )])
    });
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ProducerFailed { .. })
    });
    let Event::ProducerFailed { producer, error } = e else {
        unreachable!()
    };
    assert_eq!(producer, p);
    assert_eq!(
        error.server_code(),
        Some(pulsar_core::ServerErrorCode::AuthorizationError)
    );
    assert_eq!(sim.elapsed(), Duration::ZERO);
    assert_eq!(
        sim.received_of(Type::Connect)
            .iter()
            .filter(|c| c.broker == "b2:6650")
            .count(),
        1
    );
}

#[test]
fn auth_challenge_without_a_provider_is_answered_with_method_none() {
    let mut sim = Sim::new();
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    metadata_result(&mut sim, Duration::from_secs(1)).unwrap();
    let conn = sim.conn_ids()[0];
    sim.inject(conn, Reply::Cmd(pb::CommandAuthChallenge::default().into()));
    let responses = sim.received_of(Type::AuthResponse);
    assert_eq!(responses.len(), 1);
    let r = responses[0].command.auth_response.as_deref().unwrap();
    let data = r.response.as_ref().unwrap();
    assert_eq!(data.auth_method_name.as_deref(), Some("none"));
    assert_eq!(data.auth_data.as_deref(), Some(&b""[..]));
    assert_eq!(sim.conn_ids(), vec![conn]);
}

#[test]
fn keep_alive_after_a_late_timer_pings_and_waits_a_full_interval_for_the_answer() {
    // The runtime was stalled (suspended laptop, blocked thread) far past two keep-alive intervals.
    // The first timer after that must ping and give the broker a whole interval to answer, with a
    // deadline in the future, instead of closing a healthy connection at the next call.
    let mut sim = Sim::new();
    sim.client.partitioned_metadata(sim.now, "t").unwrap();
    metadata_result(&mut sim, Duration::from_secs(1)).unwrap();
    let conn = sim.conn_ids()[0];
    sim.now += Duration::from_secs(500);
    let late = sim.now;
    sim.client.handle_timeout(late);
    let next = sim.client.poll_timeout().expect("the ping has a deadline");
    assert!(
        next > late,
        "deadline {:?} not after the late timer",
        next - late
    );
    sim.run_until_idle();
    assert_eq!(sim.received_of(Type::Ping).len(), 1);
    // the broker's PONG arrived: the connection stays
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.client.stats().connections.len(), 1);
    assert!(sim
        .events
        .iter()
        .all(|(_, e)| !matches!(e, Event::ConnectionClosed { conn: c, .. } if *c == conn)));
}

#[test]
fn many_late_answers_after_timeouts_never_poison_the_connection() {
    // A broker stalls (GC pause, overloaded) and more requests time out on one connection than any
    // fixed-size memory of timed-out ids holds; when it recovers it answers all of them late. None
    // of these answers may close the connection (and every producer and consumer on it).
    let mut sim = Sim::new();
    let held = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let h = held.clone();
    sim.hook(SERVICE, move |_, cmd| {
        let m = cmd.partition_metadata.as_deref()?;
        if m.topic.ends_with("/slow") {
            h.borrow_mut().push(m.request_id);
            return Some(vec![]);
        }
        None
    });
    for _ in 0..1500 {
        sim.client.partitioned_metadata(sim.now, "slow").unwrap();
    }
    sim.run_for(Duration::from_secs(31));
    assert_eq!(sim.client.stats().counters.requests_timed_out, 1500);
    let conn = sim.conn_ids()[0];
    let late: Vec<u64> = held.borrow().clone();
    assert_eq!(late.len(), 1500);
    for rid in late {
        sim.inject(conn, support::partitioned_metadata(rid, 1));
    }
    assert_eq!(closed_reason(&sim, conn), None);
    assert_eq!(sim.client.stats().connections.len(), 1);
    assert_eq!(sim.received_of(Type::Connect).len(), 1, "no reconnection");
}
