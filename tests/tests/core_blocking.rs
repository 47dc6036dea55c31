//! pulsar-core driven by a minimal blocking driver (std sockets, one thread) against a real broker:
//! connect, lookup, partitioned metadata of a partitioned topic created over REST, a produce/consume
//! round trip, and reconnection (producer and consumer re-registered) after the broker is restarted.

use std::time::{Duration, Instant};

use pulsar_core::{Client, ClientConfig, ConsumerOptions, Event, InitialPosition, TopicsMode};
use pulsar_tests::support::{
    broker, create_partitioned, unique_topic, unix_ms, BrokerOptions, BrokerProcess, StdSockets,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The smallest useful runtime: non-blocking std sockets polled in one loop.
struct Driver {
    client: Client,
    io: StdSockets,
    events: Vec<Event>,
    seen: usize,
}

impl Driver {
    fn new(service_url: &str) -> Result<Driver, Box<dyn std::error::Error>> {
        let mut config = ClientConfig::new(service_url);
        config.unix_time_ms = unix_ms();
        config.seed = 7;
        Ok(Driver {
            client: Client::new(config, Instant::now())?,
            io: StdSockets::new(),
            events: Vec::new(),
            seen: 0,
        })
    }

    /// Drains every output and feeds every input once. Returns whether anything happened.
    fn turn(&mut self) -> Result<bool, Box<dyn std::error::Error>> {
        let events = &mut self.events;
        Ok(self.io.turn(&mut self.client, |e| events.push(e))?)
    }

    /// Runs until an event matching `pred` arrives (events before it stay in `events`).
    fn run_until(
        &mut self,
        limit: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Result<Event, Box<dyn std::error::Error>> {
        let end = Instant::now() + limit;
        loop {
            while self.seen < self.events.len() {
                let e = self.events[self.seen].clone();
                self.seen += 1;
                if pred(&e) {
                    return Ok(e);
                }
            }
            if Instant::now() > end {
                return Err(format!(
                    "no matching event within {limit:?}; events: {:#?}",
                    self.events
                )
                .into());
            }
            if !self.turn()? {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn seen(&self, pred: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(pred)
    }

    /// Runs until an event matching `pred` has arrived at any time (already or later).
    fn run_until_seen(
        &mut self,
        limit: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Result<(), Box<dyn std::error::Error>> {
        if self.seen(&pred) {
            return Ok(());
        }
        self.run_until(limit, pred).map(|_| ())
    }
}

#[test]
fn connect_lookup_and_partitioned_metadata() -> TestResult {
    let info = broker();
    let topic = unique_topic("core-meta");
    create_partitioned(&topic, 3)?;
    let mut d = Driver::new(&info.service_url)?;

    let r = d.client.partitioned_metadata(Instant::now(), &topic)?;
    let e = d.run_until(Duration::from_secs(30), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    })?;
    assert_eq!(
        e,
        Event::PartitionedMetadata {
            request: r,
            result: Ok(3)
        }
    );

    let plain = unique_topic("core-plain");
    let r = d.client.partitioned_metadata(Instant::now(), &plain)?;
    let e = d.run_until(Duration::from_secs(30), |e| {
        matches!(e, Event::PartitionedMetadata { .. })
    })?;
    assert_eq!(
        e,
        Event::PartitionedMetadata {
            request: r,
            result: Ok(0)
        }
    );

    let r = d
        .client
        .lookup_topic(Instant::now(), &format!("{topic}-partition-1"))?;
    let e = d.run_until(Duration::from_secs(30), |e| {
        matches!(e, Event::LookupCompleted { .. })
    })?;
    let Event::LookupCompleted { request, result } = e else {
        unreachable!()
    };
    assert_eq!(request, r);
    let found = result?;
    assert!(found.broker.port > 0 && !found.broker.host.is_empty());

    let r =
        d.client
            .topics_of_namespace(Instant::now(), "public/default", TopicsMode::Persistent)?;
    let e = d.run_until(Duration::from_secs(30), |e| {
        matches!(e, Event::TopicsOfNamespace { .. })
    })?;
    let Event::TopicsOfNamespace { request, result } = e else {
        unreachable!()
    };
    assert_eq!(request, r);
    assert!(result.is_ok(), "{result:?}");

    let stats = d.client.stats();
    assert!(!stats.connections.is_empty());
    assert!(stats.connections.iter().all(|c| c.server_version.is_some()));

    d.client.close(Instant::now());
    d.run_until(Duration::from_secs(30), |e| *e == Event::ClientClosed)?;
    assert!(d.io.is_empty());
    Ok(())
}

#[test]
fn produce_and_consume_round_trip() -> TestResult {
    let info = broker();
    let topic = unique_topic("core-roundtrip");
    let mut d = Driver::new(&info.service_url)?;
    let c = d.client.subscribe(
        Instant::now(),
        &topic,
        ConsumerOptions::new("sub").with_initial_position(InitialPosition::Earliest),
    )?;
    d.run_until(Duration::from_secs(30), |e| {
        matches!(e, Event::ConsumerReady { .. })
    })?;
    let p = d
        .client
        .create_producer(Instant::now(), &topic, Default::default())?;
    d.run_until(Duration::from_secs(30), |e| {
        matches!(e, Event::ProducerReady { .. })
    })?;
    let sends: Vec<_> = (0..20)
        .map(|i| {
            d.client
                .send_payload(Instant::now(), p, format!("msg-{i}").into_bytes())
        })
        .collect::<Result<_, _>>()?;
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while got.len() < 20 && Instant::now() < end {
        if !d.turn()? {
            std::thread::sleep(Duration::from_millis(1));
        }
        while let Some(m) = d.client.receive(Instant::now(), c) {
            d.client.ack(Instant::now(), c, &m.id)?;
            got.push(String::from_utf8(m.payload.to_vec())?);
        }
    }
    let expected: Vec<String> = (0..20).map(|i| format!("msg-{i}")).collect();
    assert_eq!(got, expected);
    let last = *sends.last().ok_or("no sends")?;
    d.run_until_seen(
        Duration::from_secs(30),
        |e| matches!(e, Event::SendCompleted { send, .. } if *send == last),
    )?;
    let done: Vec<_> = d
        .events
        .iter()
        .filter_map(|e| match e {
            Event::SendCompleted {
                send,
                result: Ok(_),
                ..
            } => Some(*send),
            _ => None,
        })
        .collect();
    assert_eq!(done, sends);
    d.client.close(Instant::now());
    d.run_until(Duration::from_secs(30), |e| *e == Event::ClientClosed)?;
    Ok(())
}

#[test]
fn reconnects_after_the_broker_restarts() -> TestResult {
    let mut own = BrokerProcess::start(BrokerOptions::new())?;
    let url = own.info().service_url.clone();
    let topic = unique_topic("core-restart");
    let mut d = Driver::new(&url)?;
    let c = d.client.subscribe(
        Instant::now(),
        &topic,
        ConsumerOptions::new("sub").with_initial_position(InitialPosition::Earliest),
    )?;
    d.run_until(Duration::from_secs(30), |e| {
        matches!(e, Event::ConsumerReady { .. })
    })?;
    let p = d
        .client
        .create_producer(Instant::now(), &topic, Default::default())?;
    d.run_until(Duration::from_secs(30), |e| {
        matches!(e, Event::ProducerReady { .. })
    })?;
    d.client.send_payload(Instant::now(), p, &b"before"[..])?;
    d.run_until(Duration::from_secs(30), |e| {
        matches!(e, Event::SendCompleted { .. })
    })?;

    // Stop and start the broker in another thread while the driver keeps running.
    let restart = std::thread::spawn(move || -> Result<BrokerProcess, String> {
        own.stop().map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_secs(2));
        own.start_again().map_err(|e| e.to_string())?;
        Ok(own)
    });
    d.run_until(Duration::from_secs(60), |e| {
        matches!(e, Event::ProducerReconnecting { .. })
    })?;
    d.run_until_seen(Duration::from_secs(240), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    })?;
    d.run_until_seen(Duration::from_secs(120), |e| {
        matches!(e, Event::ConsumerReconnected { .. })
    })?;
    let after = d.client.send_payload(Instant::now(), p, &b"after"[..])?;
    let e = d.run_until(
        Duration::from_secs(60),
        |e| matches!(e, Event::SendCompleted { send, .. } if *send == after),
    )?;
    assert!(
        matches!(e, Event::SendCompleted { result: Ok(_), .. }),
        "{e:?}"
    );
    let own = restart.join().map_err(|_| "restart thread panicked")??;
    assert!(d.client.stats().counters.reconnects >= 2);
    assert!(
        d.client.stats().counters.connect_failures >= 1,
        "it tried while the broker was down"
    );

    // the consumer gets both messages (at least once; "before" may be redelivered)
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while !got.contains(&"after".to_string()) && Instant::now() < end {
        if !d.turn()? {
            std::thread::sleep(Duration::from_millis(1));
        }
        while let Some(m) = d.client.receive(Instant::now(), c) {
            d.client.ack(Instant::now(), c, &m.id)?;
            got.push(String::from_utf8(m.payload.to_vec())?);
        }
    }
    assert!(
        got.contains(&"before".to_string()) && got.contains(&"after".to_string()),
        "{got:?}"
    );
    d.client.close(Instant::now());
    d.run_until(Duration::from_secs(30), |e| *e == Event::ClientClosed)?;
    drop(own);
    Ok(())
}
