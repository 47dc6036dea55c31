//! The client's deadlines follow tokio's clock: with the clock paused, a timeout of an hour
//! fires as soon as tokio's time gets there, without waiting for it.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulsar_tokio::{Client, Error};

/// Ends the test process if the test has not finished after `limit` of real time: a client
/// whose deadlines were not on tokio's clock would spin (its timer ready, its deadline not
/// reached) instead of failing.
fn watchdog(limit: Duration) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let seen = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        if !seen.load(Ordering::Relaxed) {
            eprintln!("paused_time: no outcome after {limit:?} of real time");
            std::process::exit(1);
        }
    });
    done
}

#[tokio::test(start_paused = true)]
async fn an_hour_long_operation_timeout_fires_on_the_paused_clock() {
    let done = watchdog(Duration::from_secs(60));
    // A broker that accepts connections (the kernel's backlog does) and never answers: every
    // handshake times out, and the creation fails at its operation timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("pulsar://{}", silent.local_addr().unwrap());
    let operation_timeout = Duration::from_secs(3600);
    let client = Client::builder(url)
        .operation_timeout(operation_timeout)
        .connection_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let real = std::time::Instant::now();
    let paused = tokio::time::Instant::now();
    let result = client.producer("paused").create().await;
    let on_tokio_clock = paused.elapsed();
    let on_real_clock = real.elapsed();
    done.store(true, Ordering::Relaxed);
    assert!(
        matches!(&result, Err(Error::Client(e)) if e.is_timeout()),
        "{result:?}"
    );
    assert!(
        on_tokio_clock >= operation_timeout && on_tokio_clock < 2 * operation_timeout,
        "timed out after {on_tokio_clock:?} of tokio time"
    );
    assert!(
        on_real_clock < Duration::from_secs(30),
        "timed out after {on_real_clock:?} of real time"
    );
}
