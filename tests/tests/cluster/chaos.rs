//! A chaos run of a few minutes that stops by itself: random `kill -9` and restarts of brokers,
//! bundle unloads and transfers, and proxy kills and restarts, under load from a producer and a
//! consumer per runtime (tokio, smol, blocking), each both direct and through the proxy. Then a
//! checker: every acknowledged message stored exactly once (deduplication) and in order, every
//! consumer caught up, no client stuck. It prints the counts.
//!
//! `PULSAR_TEST_CHAOS_SECS` sets the length of the fault phase (default 120 s) and
//! `PULSAR_TEST_CHAOS_SEED` the seed of the fault schedule (default: the clock; printed).

use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use pulsar_async::{ProducerOptions, SubscriptionType};
use pulsar_tests::facade::{Env, Rt, TClient};
use pulsar_tests::sim::rng::SimRng;
use pulsar_tests::support::Cluster;

use crate::load::{
    check_consumed, check_exactly_once_in_order, stored, unix_ms_now, Consuming, Producing,
    Timeline,
};
use crate::{consumer_options, namespace, options_for, place_topics, take_cluster, TestResult};

/// One producer and one consumer on a topic of their own, on one client.
struct Lane {
    name: String,
    client: TClient,
    topic: String,
    producing: Producing,
    consuming: Consuming,
    timeline: Timeline,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Faults injected so far: counts by kind, and a log with times (to explain long pauses).
#[derive(Default)]
struct Faults {
    counts: BTreeMap<&'static str, u32>,
    log: Vec<(Instant, String)>,
}

impl Faults {
    fn note(&mut self, kind: &'static str, detail: String) {
        *self.counts.entry(kind).or_default() += 1;
        self.log.push((Instant::now(), format!("{kind}: {detail}")));
    }
}

/// What is down and when it comes back.
#[derive(Default)]
struct Outages {
    broker: Option<(usize, Instant)>,
    proxy: Option<Instant>,
}

impl Outages {
    /// Restarts what is due (everything when `all`).
    fn restore(&mut self, cluster: &Cluster, all: bool, faults: &mut Faults) -> TestResult {
        let now = Instant::now();
        if let Some((broker, at)) = self.broker {
            if all || now >= at {
                cluster.start_broker(broker)?;
                faults.note("broker restarts", format!("broker {broker}"));
                self.broker = None;
            }
        }
        if let Some(at) = self.proxy {
            if all || now >= at {
                cluster.start_proxy()?;
                faults.note("proxy restarts", String::new());
                self.proxy = None;
            }
        }
        Ok(())
    }
}

/// Injects one random fault (a broker kill when `kill` is set).
fn inject(
    cluster: &Cluster,
    kill: bool,
    rng: &mut SimRng,
    topics: &[String],
    outages: &mut Outages,
    faults: &mut Faults,
) -> TestResult {
    let brokers = cluster.brokers().len();
    let topic = rng.pick(topics).ok_or("no topics")?;
    let choice = if kill { 0 } else { rng.index(4) };
    match choice {
        0 if outages.broker.is_none() => {
            let broker = rng.index(brokers);
            cluster.kill_broker(broker)?;
            let back =
                Instant::now() + rng.duration(Duration::from_secs(3), Duration::from_secs(12));
            outages.broker = Some((broker, back));
            faults.note("broker kills (-9)", format!("broker {broker}"));
        }
        1 => {
            // The owner may be the dead broker: the unload is then refused, and counted so.
            match cluster.unload_bundle(topic, None) {
                Ok(()) => faults.note("bundle unloads", topic.clone()),
                Err(_) => faults.note("unloads refused (owner down)", topic.clone()),
            }
        }
        2 => {
            let down = outages.broker.map(|(b, _)| b);
            let to = rng.index(brokers);
            if Some(to) != down {
                let id = cluster.brokers()[to].id.clone();
                match cluster.unload_bundle(topic, Some(&id)) {
                    Ok(()) => faults.note("bundle transfers", format!("{topic} to broker {to}")),
                    Err(_) => faults.note("transfers refused (owner down)", topic.clone()),
                }
            }
        }
        3 if outages.proxy.is_none() => {
            cluster.kill_proxy()?;
            outages.proxy =
                Some(Instant::now() + rng.duration(Duration::from_secs(1), Duration::from_secs(6)));
            faults.note("proxy kills (-9)", String::new());
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn chaos() -> TestResult {
    let (cluster, _turn) = take_cluster();
    let seconds = env_u64("PULSAR_TEST_CHAOS_SECS").unwrap_or(120);
    let seed = env_u64("PULSAR_TEST_CHAOS_SEED").unwrap_or_else(unix_ms_now);
    eprintln!("chaos: {seconds} s of faults, seed {seed} (PULSAR_TEST_CHAOS_SEED={seed} repeats the schedule)");
    let ns = namespace(cluster, "chaos")?;
    let topics = place_topics(cluster, &ns, &[0, 1, 2, 0, 1, 2])?;

    let mut lanes = Vec::new();
    for (i, rt) in [Rt::Tokio, Rt::Smol, Rt::Blocking].into_iter().enumerate() {
        for (j, via) in ["direct", "proxy"].into_iter().enumerate() {
            let url = if via == "proxy" {
                cluster.proxy_url()
            } else {
                cluster.service_url()
            };
            let client = Env::new(rt).client(options_for(cluster, url))?;
            let topic = topics[i * 2 + j].clone();
            let name = format!("{rt:?}-{via}").to_lowercase();
            let consuming = Consuming::start(client.consumer(
                &topic,
                consumer_options("chaos", SubscriptionType::Failover),
            )?);
            let producer = client.producer_with(
                &topic,
                ProducerOptions::default().with_send_timeout(Duration::ZERO),
                true,
            )?;
            let producing = Producing::start(producer, &name, Duration::from_millis(10));
            let timeline = Timeline::record(client.events());
            lanes.push(Lane {
                name,
                client,
                topic,
                producing,
                consuming,
                timeline,
            });
        }
    }

    let started = Instant::now();
    let mut rng = SimRng::new(seed);
    let mut outages = Outages::default();
    let mut faults = Faults::default();
    while started.elapsed() < Duration::from_secs(seconds) {
        sleep(rng.duration(Duration::from_secs(2), Duration::from_secs(5)));
        outages.restore(cluster, false, &mut faults)?;
        let first = faults.counts.is_empty();
        inject(cluster, first, &mut rng, &topics, &mut outages, &mut faults)?;
    }
    outages.restore(cluster, true, &mut faults)?;
    let faulty = started.elapsed();

    // Checker: every producer finishes (no client stuck), every consumer catches up, and the
    // topics hold every message exactly once, in order.
    let mut total = 0;
    let mut reconnects = 0;
    for lane in lanes {
        let produced = lane.producing.finish()?;
        let timeline = lane.timeline.finish();
        assert!(
            lane.consuming
                .wait_for_all(&lane.name, produced.sent, Duration::from_secs(120)),
            "{}: the consumer caught up",
            lane.name
        );
        let (consumer, seen) = lane.consuming.finish()?;
        check_consumed(&lane.name, produced.sent, &seen, true)?;
        check_exactly_once_in_order(&lane.name, &produced, &stored(&lane.client, &lane.topic)?)?;
        reconnects += lane.client.stats().counters.reconnects;
        total += produced.sent;
        eprintln!(
            "chaos: {}: {} messages, longest pause between receipts {:?}",
            lane.name,
            produced.sent,
            produced.longest_pause()
        );
        // A pause longer than the longest outage the schedule makes (12 s for a broker, plus its
        // session timeout and a restart) is explained with the client's events meanwhile.
        if let Some((from, to)) = produced
            .longest_pause_at()
            .filter(|(from, to)| to.duration_since(*from) > Duration::from_secs(25))
        {
            eprintln!("chaos: {}: events during its longest pause:", lane.name);
            let mut moments: Vec<&(Instant, String)> = timeline
                .iter()
                .chain(&faults.log)
                .filter(|(at, _)| *at >= from && *at <= to)
                .collect();
            moments.sort_by_key(|(at, _)| *at);
            for (at, what) in moments {
                eprintln!("  +{:>6} ms {what}", at.duration_since(from).as_millis());
            }
        }
        consumer.close()?;
        lane.client.close()?;
    }
    eprintln!(
        "chaos: {total} messages over {:.0} s of faults ({:.0} s in all), faults {:?}, \
         {reconnects} producer and consumer re-registrations, seed {seed}",
        faulty.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        faults.counts
    );
    assert!(
        faults.counts.contains_key("broker kills (-9)"),
        "the run killed a broker: {:?}",
        faults.counts
    );
    Ok(())
}
