//! Topics that move while clients use them: bundle transfers by the extensible load manager (the
//! clients follow the broker's assigned URL without a lookup), and `kill -9` of the owning broker,
//! directly and behind the proxy, with deduplication: every acknowledged message stored exactly
//! once, in order, and consumers of every subscription type continue.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use pulsar_async::{ProducerOptions, SubscriptionType};
use pulsar_tests::facade::{Env, Rt, TClient, TProducer};
use pulsar_tests::support::{Cluster, JavaProgram};

use crate::load::{
    check_consumed, check_exactly_once_in_order, finish_and_check, numbers, stored, unix_ms_now,
    wait_for_all, Consuming, Producing,
};
use crate::TestResult;
use crate::{consumer_options, namespace, options_for, per_runtime, place_topics, take_cluster};

per_runtime!(transfer_while_producing_and_consuming);

/// Starts broker `index` again when dropped, unless it already runs: a failing test leaves the
/// cluster whole for the next.
struct Revive<'a> {
    cluster: &'a Cluster,
    index: usize,
}

impl Drop for Revive<'_> {
    fn drop(&mut self) {
        if !self.cluster.broker_healthy(self.index) {
            if let Err(e) = self.cluster.start_broker(self.index) {
                eprintln!("could not start broker {} again: {e}", self.index);
            }
        }
    }
}

/// A producer that waits as long as it takes (no send timeout) and blocks when its queue is full.
fn patient_producer(client: &TClient, topic: &str) -> Result<TProducer, pulsar_async::Error> {
    let options = ProducerOptions::default().with_send_timeout(Duration::ZERO);
    client.producer_with(topic, options, true)
}

/// A topic on broker 0 moves to broker 1 and then to broker 2 while a producer sends 200
/// messages a second and a Failover consumer receives them. The clients follow the broker's
/// assigned URL (no lookup), and nothing is lost, duplicated or reordered.
fn transfer_while_producing_and_consuming(env: Env) -> TestResult {
    let (cluster, _turn) = take_cluster();
    let ns = namespace(cluster, &format!("transfer-{:?}", env.rt).to_lowercase())?;
    let topic = place_topics(cluster, &ns, &[0])?.remove(0);
    let client = env.client(options_for(cluster, cluster.service_url()))?;
    let consumer = client.consumer(&topic, consumer_options("sub", SubscriptionType::Failover))?;
    let tag = "moved";
    let producing = Producing::start(
        patient_producer(&client, &topic)?,
        tag,
        Duration::from_millis(5),
    );
    let consuming = Consuming::start(consumer);
    sleep(Duration::from_secs(1));

    let lookups_before = client.stats().counters.lookups;
    let reconnects_before = client.stats().counters.reconnects;
    cluster.transfer(&topic, 1)?;
    sleep(Duration::from_secs(1));
    cluster.transfer(&topic, 2)?;
    sleep(Duration::from_secs(1));
    let moved = client.stats();
    let (_, consumer) = finish_and_check(&client, &topic, tag, producing, consuming)?;

    assert!(
        moved.counters.reconnects >= reconnects_before + 4,
        "the producer and the consumer re-registered after each transfer: {} -> {}",
        reconnects_before,
        moved.counters.reconnects
    );
    assert_eq!(
        moved.counters.lookups, lookups_before,
        "the clients followed the assigned broker URL without a lookup"
    );
    let on_broker_2: Vec<_> = moved
        .connections
        .iter()
        .filter(|c| {
            format!("pulsar://{}", c.address.host_port()) == cluster.brokers()[2].service_url
        })
        .collect();
    assert!(
        on_broker_2
            .iter()
            .any(|c| c.producers == 1 && c.consumers == 1),
        "producer and consumer now on broker 2: {:?}",
        moved.connections
    );
    consumer.close()?;
    client.close()?;
    Ok(())
}

/// The official Java client producing beside this one (tests/java/ResumeLag.java): its receipts
/// arrive as unix times in milliseconds.
struct JavaProducer {
    child: Child,
    receipts: mpsc::Receiver<String>,
}

impl JavaProducer {
    fn start(
        cluster: &Cluster,
        topic: &str,
        interval_ms: u64,
    ) -> Result<JavaProducer, Box<dyn std::error::Error>> {
        let program = JavaProgram::compile("ResumeLag")?;
        let mut args = vec![
            cluster.service_url().to_owned(),
            topic.to_owned(),
            interval_ms.to_string(),
        ];
        if let Some(file) = &cluster.credentials().client_token_file {
            args.push(file.display().to_string());
        }
        let mut child = program
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Its log lines share standard output with the protocol: wait for "ready".
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "ready" => {
                    return Ok(JavaProducer {
                        child,
                        receipts: rx,
                    })
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = child.kill();
                    return Err(format!("the Java producer did not start: {e}").into());
                }
            }
        }
    }

    /// Stops it; returns the unix ms of each receipt, and the number sent and failed.
    fn finish(mut self) -> Result<(Vec<u64>, u64, u64), Box<dyn std::error::Error>> {
        drop(self.child.stdin.take());
        let mut receipts = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.receipts.recv_timeout(left)?;
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["receipt", _, at] => receipts.push(at.parse()?),
                ["done", sent, failed] => {
                    let value = |w: &str| w.split('=').nth(1).unwrap_or("x").parse::<u64>();
                    self.child.wait()?;
                    return Ok((receipts, value(sent)?, value(failed)?));
                }
                _ => {}
            }
        }
    }
}

/// Polls lookups of `topics` until each is owned by a broker other than `dead`; returns the unix
/// ms at which each was first seen there.
fn wait_moved(
    cluster: &Cluster,
    topics: &[&str],
    dead: usize,
    within: Duration,
) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + within;
    let mut moved: Vec<Option<u64>> = vec![None; topics.len()];
    while moved.iter().any(Option::is_none) {
        if Instant::now() >= deadline {
            return Err(format!("topics not moved off broker {dead} within {within:?}").into());
        }
        for (topic, at) in topics.iter().zip(moved.iter_mut()) {
            if at.is_none() && cluster.owner(topic).is_ok_and(|owner| owner != dead) {
                *at = Some(unix_ms_now());
            }
        }
        sleep(Duration::from_millis(50));
    }
    Ok(moved.into_iter().flatten().collect())
}

/// `kill -9` of the broker that owns a topic while this client (tokio) and the Java client
/// produce with deduplication, and consumers of every subscription type receive. The topic moves
/// to a survivor once the dead broker's session expires; every acknowledged message is stored
/// exactly once, in order; every subscription receives everything; a Failover subscription whose
/// active consumer goes away switches to the other one. Prints the resume lag of both clients:
/// from the topic's availability on the survivor to the first receipt there.
#[test]
fn kill_owner_with_dedup() -> TestResult {
    let (cluster, _turn) = take_cluster();
    let env = Env::new(Rt::Tokio);
    let ns = namespace(cluster, "kill")?;
    let placed = place_topics(cluster, &ns, &[1, 1])?;
    let (topic, java_topic) = (placed[0].as_str(), placed[1].as_str());
    let _revive = Revive { cluster, index: 1 };

    let client = env.client(options_for(cluster, cluster.service_url()))?;
    let subscribe =
        |client: &TClient, name: &str, kind| -> Result<Consuming, pulsar_async::Error> {
            Ok(Consuming::start(
                client.consumer(topic, consumer_options(name, kind))?,
            ))
        };
    let groups = [
        (
            "exclusive",
            vec![subscribe(
                &client,
                "exclusive",
                SubscriptionType::Exclusive,
            )?],
        ),
        (
            "shared",
            vec![
                subscribe(&client, "shared", SubscriptionType::Shared)?,
                subscribe(&client, "shared", SubscriptionType::Shared)?,
            ],
        ),
        (
            "key-shared",
            vec![
                subscribe(&client, "key-shared", SubscriptionType::KeyShared)?,
                subscribe(&client, "key-shared", SubscriptionType::KeyShared)?,
            ],
        ),
    ];
    // Failover: two consumers on clients of their own; the active one's client goes away.
    let failover_clients = [
        env.client(options_for(cluster, cluster.service_url()))?,
        env.client(options_for(cluster, cluster.service_url()))?,
    ];
    let failover = [
        subscribe(&failover_clients[0], "failover", SubscriptionType::Failover)?,
        subscribe(&failover_clients[1], "failover", SubscriptionType::Failover)?,
    ];

    let java = JavaProducer::start(cluster, java_topic, 5)?;
    let tag = "killed";
    let producing = Producing::start(
        patient_producer(&client, topic)?,
        tag,
        Duration::from_millis(5),
    );
    sleep(Duration::from_secs(2));

    let killed_at = unix_ms_now();
    cluster.kill_broker(1)?;
    // The active failover consumer (the one receiving) goes away with its client.
    let active = usize::from(failover[0].count() == 0);
    assert!(
        failover[active].count() > 0,
        "a failover consumer was active before the kill"
    );
    let [first, second] = failover;
    let (gone, standby) = if active == 0 {
        (first, second)
    } else {
        (second, first)
    };
    let (gone_consumer, gone_seen) = gone.finish()?;
    drop(gone_consumer);
    failover_clients[active].close()?;

    let moved = wait_moved(
        cluster,
        &[topic, java_topic],
        1,
        cluster.session_timeout() * 6,
    )?;
    // Both clients resume and send a while on the survivor.
    sleep(Duration::from_secs(5));
    let produced = producing.finish()?;
    let (java_receipts, java_sent, java_failed) = java.finish()?;

    let ours = produced.first_receipt_after(moved[0]);
    let theirs = java_receipts.iter().copied().find(|at| *at >= moved[1]);
    let lag = |first: Option<u64>, available: u64| first.map(|f| f.saturating_sub(available));
    eprintln!(
        "kill -9 of the owner: the topics were on a survivor {} ms (this client's) and {} ms \
         (the Java client's) after the kill; resume lag from then to the first receipt: this \
         client {:?} ms, Java client {:?} ms; this client's longest pause between receipts {:?}",
        moved[0].saturating_sub(killed_at),
        moved[1].saturating_sub(killed_at),
        lag(ours, moved[0]),
        lag(theirs, moved[1]),
        produced.longest_pause(),
    );
    assert!(ours.is_some(), "this client resumed on the survivor");
    assert!(theirs.is_some(), "the Java client resumed on the survivor");
    assert_eq!(java_failed, 0, "no Java send failed");
    assert!(java_sent > 0, "the Java client sent");

    check_exactly_once_in_order(tag, &produced, &stored(&client, topic)?)?;
    for (name, group) in &groups {
        let members: Vec<&Consuming> = group.iter().collect();
        assert!(
            wait_for_all(&members, tag, produced.sent, Duration::from_secs(60)),
            "{name}: the subscription received every message"
        );
    }
    // The standby became active: with what the closed consumer saw (and did not acknowledge in
    // time), it saw everything.
    let before_switch: BTreeSet<u64> = numbers(tag, &gone_seen).into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let covered = loop {
        let mut all = before_switch.clone();
        all.extend(standby.numbers_seen(tag));
        if (0..produced.sent).all(|n| all.contains(&n)) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        sleep(Duration::from_millis(50));
    };
    assert!(covered, "failover: the standby consumer received the rest");
    assert!(
        standby.count() > 0,
        "failover: the standby consumer became active"
    );
    let (standby_consumer, _) = standby.finish()?;
    standby_consumer.close()?;
    failover_clients[1 - active].close()?;
    for (name, group) in groups {
        let mut seen = Vec::new();
        for consuming in group {
            let (consumer, got) = consuming.finish()?;
            consumer.close()?;
            seen.extend(got);
        }
        check_consumed(tag, produced.sent, &seen, name == "exclusive")?;
    }
    Ok(())
}

/// Through the proxy (smol): the broker behind the proxy that owns the topic is killed while a
/// producer sends and an Exclusive consumer receives. Both resume through the proxy on the
/// survivor; every message is stored exactly once in order and received in order.
#[test]
fn proxy_broker_killed_mid_stream() -> TestResult {
    let (cluster, _turn) = take_cluster();
    let env = Env::new(Rt::Smol);
    let ns = namespace(cluster, "proxy-kill")?;
    let topic = place_topics(cluster, &ns, &[2])?.remove(0);
    let _revive = Revive { cluster, index: 2 };

    let client = env.client(options_for(cluster, cluster.proxy_url()))?;
    let consuming = Consuming::start(
        client.consumer(&topic, consumer_options("sub", SubscriptionType::Exclusive))?,
    );
    let tag = "proxied";
    let producing = Producing::start(
        patient_producer(&client, &topic)?,
        tag,
        Duration::from_millis(5),
    );
    sleep(Duration::from_secs(2));
    cluster.kill_broker(2)?;
    wait_moved(cluster, &[&topic], 2, cluster.session_timeout() * 6)?;
    sleep(Duration::from_secs(3));
    let (_, consumer) = finish_and_check(&client, &topic, tag, producing, consuming)?;
    let proxy = crate::host_port(cluster.proxy_url());
    assert!(
        client
            .stats()
            .connections
            .iter()
            .all(|c| c.address.host_port() == proxy),
        "every socket still goes to the proxy"
    );
    consumer.close()?;
    client.close()?;
    Ok(())
}
