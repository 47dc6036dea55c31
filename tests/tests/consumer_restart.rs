//! A broker restart in the middle of consumption: the consumer resubscribes by itself, drops what
//! it had queued (the broker redelivers it), and every message is received: nothing is lost
//! (at-least-once: acknowledgements the broker had not persisted may come back). Uses a broker of
//! its own.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use pulsar_core::{ConsumerOptions, Event, InitialPosition, ProducerOptions};
use pulsar_tests::support::{unique_topic, BrokerOptions, BrokerProcess, CoreDriver};

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

#[test]
fn broker_restart_mid_consumption_loses_nothing() -> R {
    let mut own = BrokerProcess::start(BrokerOptions::new())?;
    let url = own.info().service_url.clone();
    let topic = unique_topic("cons-restart");
    let mut d = CoreDriver::new(&url, 11)?;
    let c = d.subscribe(
        &topic,
        ConsumerOptions::new("s")
            .with_initial_position(InitialPosition::Earliest)
            .with_receiver_queue_size(20)
            .with_ack_group_time(Duration::ZERO),
    )?;
    let p = d.producer(&topic, ProducerOptions::default())?;
    let payloads: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
    d.send_payloads(p, &refs)?;
    // consume and acknowledge the first 50; more are queued locally
    let first = d.take(c, 50, Duration::from_secs(30))?;
    for m in &first {
        d.client.ack_message(Instant::now(), m)?;
    }
    while d.turn()? {}
    let acked: BTreeSet<String> = first
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();

    let restart = std::thread::spawn(move || -> Result<BrokerProcess, String> {
        own.restart().map_err(|e| e.to_string())?;
        Ok(own)
    });
    d.wait(
        Duration::from_secs(120),
        |e| matches!(e, Event::ConsumerReconnecting { consumer, .. } if *consumer == c),
    )?;
    d.wait(
        Duration::from_secs(240),
        |e| matches!(e, Event::ConsumerReconnected { consumer } if *consumer == c),
    )?;
    let own = restart.join().map_err(|_| "restart thread panicked")??;
    let mut rest: BTreeSet<String> = BTreeSet::new();
    let mut redelivered_acked = 0;
    let unacked: BTreeSet<String> = payloads
        .iter()
        .filter(|p| !acked.contains(*p))
        .cloned()
        .collect();
    let end = Instant::now() + Duration::from_secs(120);
    while !unacked.is_subset(&rest) && Instant::now() < end {
        while let Some(m) = d.client.receive(Instant::now(), c) {
            let t = String::from_utf8_lossy(&m.payload).into_owned();
            // at-least-once: an acknowledgement the broker had not persisted when it stopped may
            // be redelivered; it is counted, never a reason to lose anything
            if acked.contains(&t) {
                redelivered_acked += 1;
            }
            d.client.ack_message(Instant::now(), &m)?;
            rest.insert(t);
        }
        d.idle()?;
    }
    let all: BTreeSet<String> = acked.union(&rest).cloned().collect();
    let want: BTreeSet<String> = payloads.iter().cloned().collect();
    assert_eq!(all, want, "every message received");
    assert!(unacked.is_subset(&rest), "nothing unacknowledged lost");
    println!("acknowledged before the restart and redelivered after it: {redelivered_acked}");
    assert!(d.client.stats().consumers[0].reconnects >= 1);
    d.close()?;
    drop(own);
    Ok(())
}
