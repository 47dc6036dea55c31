//! Each runtime adapter against addresses that are not a working broker, with real sockets and
//! clocks:
//!
//! - a refused port: producer creation ends at the operation timeout (a correctness bound:
//!   deadline plus a small scheduling slack, not a benchmark) with the timeout naming the refusal;
//! - tiny local servers that answer random bytes, a frame header claiming 2 GiB, or
//!   `HTTP/1.1 400 Bad Request`: creation fails at once with the typed protocol error;
//! - the real broker's admin port (8080) instead of 6650: the HTTP error.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use pulsar_async::core::{Error as CoreError, ProtocolError};
use pulsar_async::Error;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Scheduling slack allowed after a deadline (threads and timers on a loaded 2-core machine).
const SLACK: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug)]
enum Rt {
    Tokio,
    Smol,
    Blocking,
}

/// Creates a producer for topic "x" on `rt`; returns how long it took and its error.
fn create(rt: Rt, url: &str, operation: Duration) -> (Duration, Result<(), Error>) {
    let start = Instant::now();
    let result = match rt {
        Rt::Tokio => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(async {
                let client = pulsar_tokio::Client::builder(url)
                    .operation_timeout(operation)
                    .build()?;
                client.producer("x").create().await.map(drop)
            }),
        Rt::Smol => smol::block_on(async {
            let client = pulsar_smol::Client::builder(url)
                .operation_timeout(operation)
                .build()?;
            client.producer("x").create().await.map(drop)
        }),
        Rt::Blocking => pulsar_blocking::Client::builder(url)
            .operation_timeout(operation)
            .build()
            .and_then(|client| client.producer("x").create().map(drop)),
    };
    (start.elapsed(), result)
}

/// A local port nobody listens on.
fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    port
}

fn creation_ends_at_the_deadline(rt: Rt) {
    let url = format!("pulsar://127.0.0.1:{}", refused_port());
    let operation = Duration::from_millis(1500);
    let (took, result) = create(rt, &url, operation);
    let e = result.expect_err("nothing listens there");
    assert!(
        took >= operation && took <= operation + SLACK,
        "{rt:?}: took {took:?} for an operation timeout of {operation:?}"
    );
    match &e {
        Error::Client(CoreError::TimedOut { after, last_error }) => {
            assert_eq!(*after, operation);
            assert!(
                matches!(last_error.as_deref(), Some(CoreError::ConnectFailed { .. })),
                "{rt:?}: {e:?}"
            );
        }
        other => panic!("{rt:?}: {other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.starts_with("operation timed out after 1.5s; last error: cannot connect to"),
        "{text}"
    );
}

#[test]
fn tokio_creation_against_a_refused_port_ends_at_the_operation_timeout() {
    creation_ends_at_the_deadline(Rt::Tokio);
}

#[test]
fn smol_creation_against_a_refused_port_ends_at_the_operation_timeout() {
    creation_ends_at_the_deadline(Rt::Smol);
}

#[test]
fn blocking_creation_against_a_refused_port_ends_at_the_operation_timeout() {
    creation_ends_at_the_deadline(Rt::Blocking);
}

/// A server on a local port that answers every connection with `answer` once something arrived
/// (the client's CONNECT), then closes it after a while. Runs until the process exits.
fn tiny_server(answer: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("pulsar://{}", listener.local_addr().expect("address"));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut first = [0u8; 256];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                if matches!(stream.read(&mut first), Ok(n) if n > 0) {
                    let _ = stream.write_all(answer);
                    let _ = stream.flush();
                }
                thread::sleep(Duration::from_secs(2));
            });
        }
    });
    url
}

/// Creation against a tiny server fails quickly (well before the 30 s operation timeout) with
/// `NotPulsar` whose cause passes `check`.
fn fails_at_once_with(rt: Rt, answer: &'static [u8], check: impl Fn(&ProtocolError) -> bool) {
    let url = tiny_server(answer);
    let (took, result) = create(rt, &url, Duration::from_secs(30));
    let e = result.expect_err("not a broker");
    assert!(took < Duration::from_secs(2), "{rt:?}: took {took:?}: {e}");
    match &e {
        Error::Client(CoreError::NotPulsar { cause, .. }) => {
            assert!(check(cause), "{rt:?}: {e:?}")
        }
        other => panic!("{rt:?}: {other:?}"),
    }
    assert!(!e.is_retriable());
    assert!(e.to_string().contains("is not a Pulsar broker"), "{e}");
}

const RANDOM: &[u8] = &[
    0x5a, 0x17, 0xc3, 0x9e, 0x01, 0x88, 0x42, 0xfe, 0x7d, 0x33, 0xb0, 0x6c, 0xd4, 0x29, 0x90, 0x0f,
];
const CLAIM_2_GIB: &[u8] = &[0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08];
const HTTP_400: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[test]
fn random_bytes_are_not_a_pulsar_broker() {
    for rt in [Rt::Tokio, Rt::Blocking] {
        // The first four bytes claim a frame of about 1.5 GB.
        fails_at_once_with(
            rt,
            RANDOM,
            |c| matches!(c, ProtocolError::FrameTooLarge { size, .. } if *size == 0x5a17_c39e),
        );
    }
}

#[test]
fn a_2_gib_frame_claim_names_the_size_and_the_limit() {
    for rt in [Rt::Tokio, Rt::Smol, Rt::Blocking] {
        fails_at_once_with(
            rt,
            CLAIM_2_GIB,
            |c| matches!(c, ProtocolError::FrameTooLarge { size: 2_147_483_648, limit } if *limit < 1 << 30),
        );
    }
}

#[test]
fn an_http_server_is_named_as_such() {
    for rt in [Rt::Tokio, Rt::Smol, Rt::Blocking] {
        fails_at_once_with(
            rt,
            HTTP_400,
            |c| matches!(c, ProtocolError::HttpResponse { status_line } if status_line == "HTTP/1.1 400 Bad Request"),
        );
    }
}

#[test]
fn the_brokers_admin_port_is_named_as_an_http_port() -> TestResult {
    let web = std::env::var("PULSAR_TEST_ADMIN_URL").unwrap_or("http://127.0.0.1:8080".into());
    let host_port = web
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if TcpStream::connect(&host_port).is_err() {
        eprintln!("skipped: no admin port at {host_port}");
        return Ok(());
    }
    let url = format!("pulsar://{host_port}");
    for rt in [Rt::Tokio, Rt::Blocking] {
        let (took, result) = create(rt, &url, Duration::from_secs(30));
        let Err(e) = result else {
            return Err(format!("{rt:?}: a producer on the admin port").into());
        };
        assert!(took < Duration::from_secs(5), "{rt:?}: took {took:?}");
        assert!(
            matches!(
                &e,
                Error::Client(CoreError::NotPulsar {
                    cause: ProtocolError::HttpResponse { status_line },
                    ..
                }) if status_line.starts_with("HTTP/1.1 4")
            ),
            "{rt:?}: {e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("admin port 8080") && text.contains("6650"),
            "{text}"
        );
    }
    Ok(())
}
