//! Publishing the client's statistics through the [`metrics`] facade (feature `metrics`), under
//! the names and attributes of the Java client's OpenTelemetry metrics (PIP-342).
//!
//! The core counts and times (with the `now` it is given); nothing here runs per message. A
//! [`MetricsPublisher`] turns two successive [`ClientStats`] snapshots into counter increments,
//! gauge values and histogram observations for whatever recorder the application installed
//! (`metrics-exporter-prometheus`, an OpenTelemetry bridge, ...). Call
//! [`publish`](MetricsPublisher::publish) on a timer or before each scrape; it works the same on
//! every runtime, since it only reads `client.stats()`.
//!
//! | name | kind | unit | attributes |
//! | --- | --- | --- | --- |
//! | `pulsar.client.connection.opened` / `.closed` | counter | connections | |
//! | `pulsar.client.connection.failed` | counter | connections | `pulsar.failure.type` (`tcp-failed`, `handshake`) |
//! | `pulsar.client.lookup.duration` | histogram | s | `pulsar.lookup.transport-type`, `pulsar.lookup.type`, `pulsar.response.status` |
//! | `pulsar.client.producer.opened` / `.closed` | counter | sessions | topic attributes |
//! | `pulsar.client.producer.message.send.duration` | histogram | s | topic attributes, `pulsar.response.status` |
//! | `pulsar.client.producer.message.send.size` | counter | bytes | topic attributes |
//! | `pulsar.client.producer.message.send.failed` | counter | messages | topic attributes |
//! | `pulsar.client.producer.message.pending.count` / `.size` | gauge | messages / bytes | topic attributes |
//! | `pulsar.client.consumer.opened` / `.closed` | counter | sessions | topic attributes, `pulsar.subscription` |
//! | `pulsar.client.consumer.message.received.count` / `.size` | counter | messages / bytes | same |
//! | `pulsar.client.consumer.message.ack` / `.nack` / `.dlq` / `.ack.timeout` | counter | messages | same |
//! | `pulsar.client.consumer.receive_queue.count` / `.size` | gauge | messages / bytes | same |
//! | `pulsar.client.memory.buffer.usage` / `.limit` | gauge | bytes | |
//!
//! Topic attributes are `pulsar.tenant` and `pulsar.namespace` (`tenant/namespace`), as the Java
//! client aggregates by default; [`MetricsOptions::topic_attributes`] adds `pulsar.topic` (the
//! partitioned topic's name) and `pulsar.partition`. A Prometheus exporter writes the names with
//! `_` for `.`. `pulsar.client.producer.message.send.failed` has no Java counterpart (Java puts
//! failures on the duration's `pulsar.response.status`; the core does not time failed sends).
//!
//! Histograms are recorded from the core's buckets (at most 12.5 % wide): each bucket's count
//! is observed at the bucket's upper bound, so an exporter with the buckets of
//! [`LATENCY_BUCKETS_SECONDS`] (Java's) counts within one core bucket of the exact value, and
//! its sum is at most 12.5 % high.

use std::collections::{BTreeMap, BTreeSet};

use metrics::{Label, Unit};
use pulsar_core::stats::{LookupKind, ProducerStats, TopicConsumerStats};
use pulsar_core::topic::TopicName;
use pulsar_core::{ClientStats, ConsumerId, LatencyHistogram, ProducerId};

/// The Java client's latency histogram bounds, in seconds (its `LatencyHistogram`): give them
/// to the exporter for the `*.duration` histograms.
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A metric's attributes, as (key, value) pairs.
type Attributes = Vec<(String, String)>;

/// Gauge values by (name, attributes), summed over the producers or consumers they cover.
type Gauges = BTreeMap<(&'static str, Attributes), f64>;

/// What a [`MetricsPublisher`] attaches to the metrics.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MetricsOptions {
    /// Add `pulsar.topic` and `pulsar.partition` to producer and consumer metrics (one series
    /// per topic and partition: high cardinality). Off by default, as in Java.
    pub topic_attributes: bool,
    /// Attributes added to every metric (e.g. an application name).
    pub extra: Vec<(String, String)>,
}

/// Publishes successive [`ClientStats`] snapshots of one client through the `metrics` facade
/// (see the [module](self) for the names). Keeps what it last published, to turn the core's
/// totals into increments: counters never go down when a producer or consumer goes away.
#[derive(Debug, Default)]
pub struct MetricsPublisher {
    opts: MetricsOptions,
    counters: pulsar_core::ClientCounters,
    lookups: pulsar_core::stats::LookupStats,
    producers: BTreeMap<(ProducerId, String), ProducerStats>,
    /// Each consumer's topics (partitions), with the subscription, as last published.
    consumers: BTreeMap<(ConsumerId, String), (String, TopicConsumerStats)>,
    /// Gauge series set last time (set to 0 when they disappear).
    gauges: BTreeSet<(&'static str, Attributes)>,
}

impl MetricsPublisher {
    /// A publisher with these options; it describes the metrics (units and help texts) to the
    /// installed recorder.
    pub fn new(opts: MetricsOptions) -> MetricsPublisher {
        describe();
        MetricsPublisher {
            opts,
            ..MetricsPublisher::default()
        }
    }

    /// Publishes what changed since the last call (everything on the first call). `stats` is a
    /// fresh `client.stats()` of the same client each time.
    pub fn publish(&mut self, stats: &ClientStats) {
        self.publish_client(stats);
        let mut gauges = Gauges::new();
        self.publish_producers(stats, &mut gauges);
        self.publish_consumers(stats, &mut gauges);
        gauges.insert(
            ("pulsar.client.memory.buffer.usage", Vec::new()),
            stats.memory_used as f64,
        );
        gauges.insert(
            ("pulsar.client.memory.buffer.limit", Vec::new()),
            stats.memory_limit as f64,
        );
        for (name, labels) in std::mem::take(&mut self.gauges) {
            if !gauges.contains_key(&(name, labels.clone())) {
                metrics::gauge!(name, to_labels(&labels)).set(0.0);
            }
        }
        for ((name, labels), value) in gauges {
            metrics::gauge!(name, to_labels(&labels)).set(value);
            self.gauges.insert((name, labels));
        }
    }

    fn publish_client(&mut self, stats: &ClientStats) {
        let c = &stats.counters;
        let p = &self.counters;
        let extra = to_labels(&self.opts.extra);
        for (name, now, then) in [
            (
                "pulsar.client.connection.opened",
                c.connections_opened,
                p.connections_opened,
            ),
            (
                "pulsar.client.connection.closed",
                c.connections_closed,
                p.connections_closed,
            ),
        ] {
            metrics::counter!(name, extra.clone()).increment(now.saturating_sub(then));
        }
        let tcp = |c: &pulsar_core::ClientCounters| {
            c.connect_failures.saturating_sub(c.handshake_failures)
        };
        for (kind, now, then) in [
            ("tcp-failed", tcp(c), tcp(p)),
            ("handshake", c.handshake_failures, p.handshake_failures),
        ] {
            let mut labels = extra.clone();
            labels.push(Label::new("pulsar.failure.type", kind));
            metrics::counter!("pulsar.client.connection.failed", labels)
                .increment(now.saturating_sub(then));
        }
        self.counters = *c;
        for kind in LookupKind::ALL {
            for ok in [true, false] {
                let (now, then) = (stats.lookups.of(kind, ok), self.lookups.of(kind, ok));
                if now.count() == then.count() {
                    continue; // no series for what never happened
                }
                let mut labels = extra.clone();
                labels.push(Label::new("pulsar.lookup.transport-type", "binary"));
                labels.push(Label::new("pulsar.lookup.type", kind.as_str()));
                labels.push(status(ok));
                let h = metrics::histogram!("pulsar.client.lookup.duration", labels);
                observe(&h, now, then);
            }
        }
        self.lookups = stats.lookups.clone();
    }

    fn publish_producers(&mut self, stats: &ClientStats, gauges: &mut Gauges) {
        let mut seen = BTreeMap::new();
        for s in &stats.producers {
            let attrs = self.topic_attributes(&s.topic, None);
            let labels = to_labels(&attrs);
            let key = (s.id, s.topic.clone());
            let empty;
            let prev = match self.producers.get(&key) {
                Some(p) => p,
                None => {
                    metrics::counter!("pulsar.client.producer.opened", labels.clone()).increment(1);
                    empty = empty_producer(s);
                    &empty
                }
            };
            let inc = |name: &'static str, now: u64, then: u64| {
                metrics::counter!(name, labels.clone()).increment(now.saturating_sub(then));
            };
            inc(
                "pulsar.client.producer.message.send.size",
                s.bytes_sent,
                prev.bytes_sent,
            );
            inc(
                "pulsar.client.producer.message.send.failed",
                s.messages_failed,
                prev.messages_failed,
            );
            if s.send_latency.count() != prev.send_latency.count() {
                let mut ok = labels.clone();
                ok.push(status(true));
                let h = metrics::histogram!("pulsar.client.producer.message.send.duration", ok);
                observe(&h, &s.send_latency, &prev.send_latency);
            }
            *gauges
                .entry((
                    "pulsar.client.producer.message.pending.count",
                    attrs.clone(),
                ))
                .or_default() += s.pending_messages as f64;
            *gauges
                .entry(("pulsar.client.producer.message.pending.size", attrs))
                .or_default() += s.pending_bytes as f64;
            seen.insert(key, s.clone());
        }
        for (key, _) in std::mem::replace(&mut self.producers, seen.clone()) {
            if !seen.contains_key(&key) {
                let labels = to_labels(&self.topic_attributes(&key.1, None));
                metrics::counter!("pulsar.client.producer.closed", labels).increment(1);
            }
        }
    }

    /// Per topic (partition) of each consumer, as Java's metrics are per `ConsumerImpl`: a
    /// multi-topic or partitioned consumer gets each topic's tenant and namespace (and with
    /// [`MetricsOptions::topic_attributes`] its topic and partition).
    fn publish_consumers(&mut self, stats: &ClientStats, gauges: &mut Gauges) {
        let mut seen = BTreeMap::new();
        for c in &stats.consumers {
            for s in &c.topics {
                let attrs = self.topic_attributes(&s.topic, Some(&c.subscription));
                let labels = to_labels(&attrs);
                let key = (c.id, s.topic.clone());
                let empty;
                let prev = match self.consumers.get(&key) {
                    Some((_, p)) => p,
                    None => {
                        metrics::counter!("pulsar.client.consumer.opened", labels.clone())
                            .increment(1);
                        empty = TopicConsumerStats::default();
                        &empty
                    }
                };
                for (name, now, then) in [
                    (
                        "pulsar.client.consumer.message.received.count",
                        s.messages_received,
                        prev.messages_received,
                    ),
                    (
                        "pulsar.client.consumer.message.received.size",
                        s.bytes_received,
                        prev.bytes_received,
                    ),
                    ("pulsar.client.consumer.message.ack", s.acks, prev.acks),
                    (
                        "pulsar.client.consumer.message.nack",
                        s.negative_acks,
                        prev.negative_acks,
                    ),
                    (
                        "pulsar.client.consumer.message.dlq",
                        s.dead_lettered,
                        prev.dead_lettered,
                    ),
                    (
                        "pulsar.client.consumer.message.ack.timeout",
                        s.ack_timeouts,
                        prev.ack_timeouts,
                    ),
                ] {
                    metrics::counter!(name, labels.clone()).increment(now.saturating_sub(then));
                }
                *gauges
                    .entry(("pulsar.client.consumer.receive_queue.count", attrs.clone()))
                    .or_default() += s.queued_messages as f64;
                *gauges
                    .entry(("pulsar.client.consumer.receive_queue.size", attrs))
                    .or_default() += s.queued_bytes as f64;
                seen.insert(key, (c.subscription.clone(), s.clone()));
            }
        }
        for (key, (sub, _)) in std::mem::replace(&mut self.consumers, seen) {
            if !self.consumers.contains_key(&key) {
                let attrs = self.topic_attributes(&key.1, Some(&sub));
                metrics::counter!("pulsar.client.consumer.closed", to_labels(&attrs)).increment(1);
            }
        }
    }

    /// `pulsar.tenant`, `pulsar.namespace` (and with the option `pulsar.topic`,
    /// `pulsar.partition`), `pulsar.subscription` for a consumer, then the extra attributes. A
    /// name that does not parse as one topic (a multi-topic consumer's label) gets none of the
    /// topic attributes.
    fn topic_attributes(&self, topic: &str, subscription: Option<&str>) -> Vec<(String, String)> {
        let mut attrs = Vec::with_capacity(5 + self.opts.extra.len());
        if let Ok(t) = TopicName::parse(topic) {
            attrs.push(("pulsar.tenant".to_owned(), t.tenant().to_owned()));
            attrs.push(("pulsar.namespace".to_owned(), t.namespace_name()));
            if self.opts.topic_attributes {
                attrs.push((
                    "pulsar.topic".to_owned(),
                    t.base_topic().as_str().to_owned(),
                ));
                if let Some(p) = t.partition() {
                    attrs.push(("pulsar.partition".to_owned(), p.to_string()));
                }
            }
        }
        if let Some(sub) = subscription {
            attrs.push(("pulsar.subscription".to_owned(), sub.to_owned()));
        }
        attrs.extend(self.opts.extra.iter().cloned());
        attrs
    }
}

/// Records the durations of `now` not in `then` (an earlier snapshot of the same histogram),
/// each bucket's count at the bucket's upper bound, in seconds.
fn observe(h: &metrics::Histogram, now: &LatencyHistogram, then: &LatencyHistogram) {
    if now.count() == then.count() {
        return;
    }
    for (bound_us, n) in now.since(then).buckets() {
        h.record_many(
            bound_us as f64 / 1e6,
            usize::try_from(n).unwrap_or(usize::MAX),
        );
    }
}

fn status(ok: bool) -> Label {
    Label::new(
        "pulsar.response.status",
        if ok { "success" } else { "failed" },
    )
}

fn to_labels(attrs: &[(String, String)]) -> Vec<Label> {
    attrs
        .iter()
        .map(|(k, v)| Label::new(k.clone(), v.clone()))
        .collect()
}

/// A producer's stats with every counter at zero (its state before the first snapshot).
fn empty_producer(s: &ProducerStats) -> ProducerStats {
    let mut e = s.clone();
    e.messages_sent = 0;
    e.batches_sent = 0;
    e.bytes_sent = 0;
    e.messages_acked = 0;
    e.receipts_received = 0;
    e.messages_failed = 0;
    e.send_latency = LatencyHistogram::new();
    e
}

/// Units and help texts.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    for (name, help) in [
        (
            "pulsar.client.connection.opened",
            "Connections the client opened",
        ),
        (
            "pulsar.client.connection.closed",
            "Connections that were closed",
        ),
        (
            "pulsar.client.connection.failed",
            "Connection attempts that failed",
        ),
        ("pulsar.client.producer.opened", "Producer sessions opened"),
        ("pulsar.client.producer.closed", "Producer sessions closed"),
        (
            "pulsar.client.producer.message.send.failed",
            "Messages whose send failed",
        ),
        ("pulsar.client.consumer.opened", "Consumer sessions opened"),
        ("pulsar.client.consumer.closed", "Consumer sessions closed"),
        (
            "pulsar.client.consumer.message.received.count",
            "Messages handed to the consumer",
        ),
        (
            "pulsar.client.consumer.message.ack",
            "Acknowledgements by the application",
        ),
        (
            "pulsar.client.consumer.message.nack",
            "Messages acknowledged negatively",
        ),
        (
            "pulsar.client.consumer.message.dlq",
            "Messages set aside for the dead-letter topic",
        ),
        (
            "pulsar.client.consumer.message.ack.timeout",
            "Messages asked again after the acknowledgement timeout",
        ),
    ] {
        describe_counter!(name, help);
    }
    for (name, help) in [
        (
            "pulsar.client.producer.message.send.size",
            "Payload bytes written by producers",
        ),
        (
            "pulsar.client.consumer.message.received.size",
            "Payload bytes handed to the consumer",
        ),
    ] {
        describe_counter!(name, Unit::Bytes, help);
    }
    for (name, help) in [
        (
            "pulsar.client.lookup.duration",
            "Time from the start of a lookup operation to its end",
        ),
        (
            "pulsar.client.producer.message.send.duration",
            "Time from a send call to the broker's receipt, batching included",
        ),
    ] {
        describe_histogram!(name, Unit::Seconds, help);
    }
    for (name, help) in [
        (
            "pulsar.client.producer.message.pending.count",
            "Messages held by producers, not confirmed yet",
        ),
        (
            "pulsar.client.consumer.receive_queue.count",
            "Messages waiting in the receiver queues",
        ),
    ] {
        describe_gauge!(name, help);
    }
    for (name, help) in [
        (
            "pulsar.client.producer.message.pending.size",
            "Payload bytes of the messages held by producers",
        ),
        (
            "pulsar.client.consumer.receive_queue.size",
            "Payload bytes waiting in the receiver queues",
        ),
        (
            "pulsar.client.memory.buffer.usage",
            "Bytes counted against the client memory limit",
        ),
        (
            "pulsar.client.memory.buffer.limit",
            "The client memory limit (0: none)",
        ),
    ] {
        describe_gauge!(name, Unit::Bytes, help);
    }
}
