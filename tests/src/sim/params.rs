//! Everything a seed decides: the cluster, the network, the fault rates, the client settings and the
//! workload. Printed in full at the start of a run and in failure reports.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::sim::broker::Faults;
use crate::sim::net::NetParams;
use crate::sim::rng::SimRng;

/// How a consumer's subscription distributes messages (mirrors the core's type, printable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubKind {
    /// One consumer.
    Exclusive,
    /// Round robin.
    Shared,
    /// One active consumer.
    Failover,
    /// By key.
    KeyShared,
}

/// A topic of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Full name.
    pub name: String,
    /// Partitions (0: not partitioned).
    pub partitions: u32,
}

impl TopicSpec {
    /// The topics holding messages: the partitions, or the topic itself.
    pub fn physical(&self) -> Vec<String> {
        if self.partitions == 0 {
            vec![self.name.clone()]
        } else {
            (0..self.partitions)
                .map(|i| format!("{}-partition-{i}", self.name))
                .collect()
        }
    }
}

/// Producer batching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    /// Most messages per batch.
    pub max_messages: usize,
    /// Longest wait before a batch goes out.
    pub max_delay: Duration,
    /// One batch per key.
    pub key_based: bool,
}

/// How a consumer acknowledges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AckSpec {
    /// Cumulative acknowledgements (only on one-consumer Exclusive / Failover subscriptions).
    pub cumulative: bool,
    /// Share of first deliveries negatively acknowledged instead.
    pub nack_rate: f64,
    /// Ack timeout (unacknowledged messages redelivered).
    pub ack_timeout: Option<Duration>,
    /// Acknowledge batch messages one index at a time on the wire.
    pub batch_index_ack: bool,
    /// Ask for ACK_RESPONSE receipts.
    pub receipts: bool,
}

/// A producer of the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerSpec {
    /// Application label (payloads are `label#index`).
    pub label: String,
    /// Index into [`Params::topics`].
    pub topic: usize,
    /// Which client.
    pub client: usize,
    /// Producer name (`None`: the broker picks one).
    pub name: Option<String>,
    /// Messages to send during the chaos phase.
    pub messages: u32,
    /// Delay between two sends.
    pub interval: (Duration, Duration),
    /// When to close the producer and create it again (same name).
    pub recreate_at: Option<Duration>,
    /// Close the first incarnation this long after creating it (often while it registers).
    pub early_close: Option<Duration>,
    /// `max_pending_messages`.
    pub max_pending: usize,
    /// Batching (`None`: every message is its own entry).
    pub batching: Option<BatchSpec>,
    /// Compression codec (protocol number; 0: none).
    pub compression: i32,
    /// Send timeout (`None`: the core's default).
    pub send_timeout: Option<Duration>,
    /// Messages carry keys (`k0`..`k4`).
    pub keyed: bool,
    /// Chunking on (batching off): two messages in three are larger than the broker's maximum
    /// message size and leave in chunks.
    pub chunking: bool,
    /// Declares a STRING schema on PRODUCER (otherwise none: bytes).
    pub schema: bool,
}

/// A consumer's schema in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerSchema {
    /// STRING, the producers' kind.
    String,
    /// AUTO_CONSUME.
    AutoConsume,
}

/// A consumer of the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSpec {
    /// Application label.
    pub label: String,
    /// Index into [`Params::topics`].
    pub topic: usize,
    /// Which client.
    pub client: usize,
    /// Subscription name.
    pub subscription: String,
    /// Subscription type.
    pub kind: SubKind,
    /// Receiver queue size.
    pub queue_size: u32,
    /// Messages taken per poll of the receiver queue (a slow consumer leaves some queued).
    pub receive_batch: usize,
    /// Delay between polls while messages remain.
    pub poll_interval: (Duration, Duration),
    /// Delay before acknowledging a received message.
    pub ack_delay: (Duration, Duration),
    /// When to close the consumer and subscribe again.
    pub recreate_at: Option<Duration>,
    /// Close the first incarnation this long after subscribing (often while it registers).
    pub early_close: Option<Duration>,
    /// Durable subscription (`false`: a non-durable one, like a reader).
    pub durable: bool,
    /// Created with `create_reader` (non-durable, Exclusive, from the earliest message).
    pub reader: bool,
    /// Acknowledgement behaviour.
    pub acks: AckSpec,
    /// When to seek the subscription back to the earliest message.
    pub seek_at: Option<Duration>,
    /// The schema declared on SUBSCRIBE (`None`: none).
    pub schema: Option<ConsumerSchema>,
}

/// Rates of network and cluster faults (per minute of simulated chaos).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRates {
    /// Connection resets.
    pub reset: f64,
    /// Half-open connections.
    pub half_open: f64,
    /// Clogged directions.
    pub clog: f64,
    /// Client–broker partitions.
    pub partition: f64,
    /// Broker crash-restarts.
    pub crash: f64,
    /// Topic ownership moves.
    pub move_topic: f64,
}

impl FaultRates {
    fn total(&self) -> f64 {
        self.reset + self.half_open + self.clog + self.partition + self.crash + self.move_topic
    }
}

/// Client core settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientParams {
    /// Operation timeout.
    pub operation_timeout: Duration,
    /// Connection timeout.
    pub connection_timeout: Duration,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// First reconnection delay.
    pub backoff_initial: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
}

/// Everything derived from a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The root seed.
    pub seed: u64,
    /// Fault intensity level (0: none … 3: heavy).
    pub intensity: u32,
    /// Brokers in the cluster.
    pub brokers: usize,
    /// Client instances.
    pub clients: usize,
    /// Broker deduplication.
    pub dedup: bool,
    /// Token authentication.
    pub auth: bool,
    /// Topics.
    pub topics: Vec<TopicSpec>,
    /// Producers.
    pub producers: Vec<ProducerSpec>,
    /// Consumers.
    pub consumers: Vec<ConsumerSpec>,
    /// Length of the chaos phase (faults and sends); then everything heals.
    pub chaos: Duration,
    /// Network.
    pub net: NetParams,
    /// Network / cluster fault rates.
    pub faults: FaultRates,
    /// Broker misbehaviour probabilities.
    pub broker_faults: Faults,
    /// Broker keep-alive interval.
    pub broker_keep_alive: Duration,
    /// Broker write latency.
    pub persist_latency: (Duration, Duration),
    /// Client settings.
    pub client: ClientParams,
    /// How long after healing everything must have settled.
    pub settle_bound: Duration,
    /// The brokers' `maxMessageSize` (small when some producer chunks).
    pub max_message_size: i32,
    /// Transaction coordinators of the cluster (0: transactions off; only the transaction
    /// simulation turns them on, see [`Params::for_transactions`]).
    pub transaction_coordinators: u32,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Params {
    /// The parameters of `seed`.
    pub fn from_seed(seed: u64) -> Params {
        let mut r = SimRng::new(seed ^ 0x5EED_5EED_5EED_5EED);
        let intensity = r.range(0, 3) as u32;
        let brokers = r.range(2, 3) as usize;
        let clients = r.range(1, 2) as usize;
        let dedup = r.chance(0.5);
        let auth = r.chance(0.25);
        let mut topics: Vec<TopicSpec> = (0..r.range(1, 2))
            .map(|i| TopicSpec {
                name: format!("persistent://public/default/sim-{i}"),
                partitions: 0,
            })
            .collect();
        let chaos = r.duration(ms(10_000), ms(40_000));

        let mut producers = Vec::new();
        for i in 0..r.range(1, 3) {
            let messages = r.range(5, 40) as u32;
            let spread = chaos.as_millis() as u64 * 7 / 10 / u64::from(messages);
            producers.push(ProducerSpec {
                label: format!("P{i}"),
                topic: r.index(topics.len()),
                client: r.index(clients),
                name: if dedup || r.chance(0.7) {
                    Some(format!("prod-{i}"))
                } else {
                    None
                },
                messages,
                interval: (ms(spread / 4), ms(spread.max(1) * 3 / 2)),
                recreate_at: r.chance(0.3).then(|| r.duration(chaos / 5, chaos * 4 / 5)),
                early_close: r.chance(0.15).then(|| r.duration(ms(0), ms(300))),
                max_pending: if r.chance(0.3) {
                    r.range(2, 10) as usize
                } else {
                    0
                },
                batching: None,
                compression: 0,
                send_timeout: None,
                keyed: false,
                chunking: false,
                schema: false,
            });
        }

        let mut consumers = Vec::new();
        let mut subs = 0;
        for t in 0..topics.len() {
            for _ in 0..r.range(0, 2) {
                let kind = match r.range(0, 3) {
                    0 => SubKind::Exclusive,
                    1 => SubKind::Shared,
                    2 => SubKind::Failover,
                    _ => SubKind::KeyShared,
                };
                let durable = kind != SubKind::Exclusive || r.chance(0.8);
                let members = if kind == SubKind::Exclusive {
                    1
                } else {
                    r.range(1, 3)
                };
                let subscription = format!("sub-{subs}");
                subs += 1;
                for _ in 0..members {
                    let i = consumers.len();
                    consumers.push(ConsumerSpec {
                        label: format!("C{i}"),
                        topic: t,
                        client: r.index(clients),
                        subscription: subscription.clone(),
                        kind,
                        queue_size: if r.chance(0.5) {
                            r.range(1, 8) as u32
                        } else {
                            r.range(10, 100) as u32
                        },
                        receive_batch: r.range(1, 10) as usize,
                        poll_interval: (ms(1), ms(r.range(2, 300))),
                        ack_delay: (ms(0), ms(r.range(1, 500))),
                        recreate_at: r.chance(0.25).then(|| r.duration(chaos / 5, chaos * 4 / 5)),
                        early_close: r.chance(0.15).then(|| r.duration(ms(0), ms(300))),
                        durable,
                        reader: false,
                        acks: AckSpec {
                            cumulative: false,
                            nack_rate: 0.0,
                            ack_timeout: None,
                            batch_index_ack: false,
                            receipts: false,
                        },
                        seek_at: None,
                        schema: None,
                    });
                }
            }
        }

        // Later additions draw from their own stream (append-only), so that the parameters drawn
        // above stay the same for a given seed when the workload grows.
        let mut x = SimRng::new(seed ^ 0xE47E_0000_0000_0001);
        for c in &mut consumers {
            if x.chance(0.3) {
                // a slow consumer: messages wait in its receiver queue
                c.poll_interval = (ms(200), ms(x.range(500, 2_500)));
                c.receive_batch = x.range(1, 2) as usize;
            }
        }

        // producer features of the core: batching, compression, send timeouts, keys
        for t in &mut topics {
            if x.chance(0.3) {
                t.partitions = x.range(2, 3) as u32;
            }
        }
        for p in &mut producers {
            if x.chance(0.4) {
                p.batching = Some(BatchSpec {
                    max_messages: x.range(2, 10) as usize,
                    max_delay: ms(x.range(1, 200)),
                    key_based: x.chance(0.3),
                });
            }
            if x.chance(0.2) {
                p.compression = x.range(1, 4) as i32;
            }
            if x.chance(0.3) {
                p.send_timeout = Some(ms(x.range(1_000, 10_000)));
            }
            p.keyed = x.chance(0.5);
        }
        // consumer features: readers, cumulative acks, nacks, ack timeouts, seeks
        let mut members: BTreeMap<String, usize> = BTreeMap::new();
        for c in &consumers {
            *members.entry(c.subscription.clone()).or_default() += 1;
        }
        for c in &mut consumers {
            let alone = members.get(&c.subscription).copied() == Some(1);
            let ordered = c.kind == SubKind::Exclusive || (c.kind == SubKind::Failover && alone);
            c.reader = !c.durable && x.chance(0.5);
            c.acks = AckSpec {
                cumulative: ordered && c.durable && x.chance(0.4),
                nack_rate: if c.durable && x.chance(0.2) {
                    x.next_f64() * 0.3
                } else {
                    0.0
                },
                ack_timeout: (c.durable && x.chance(0.15)).then(|| ms(x.range(1_000, 5_000))),
                batch_index_ack: x.chance(0.5),
                receipts: x.chance(0.3),
            };
            c.seek_at = (c.durable && !c.reader && x.chance(0.15))
                .then(|| x.duration(chaos / 5, chaos * 4 / 5));
        }

        // chunking (a stream of its own): only producers without batching (the Java client refuses
        // chunking with batching) whose topic has no Shared / Key_Shared subscription (chunked
        // messages are supported on Exclusive / Failover subscriptions and readers only)
        let mut k = SimRng::new(seed ^ 0xC4C4_0000_0000_0002);
        let mut max_message_size = 5 * 1024 * 1024;
        if k.chance(0.3) {
            for p in &mut producers {
                let shared = consumers.iter().any(|c| {
                    c.topic == p.topic && matches!(c.kind, SubKind::Shared | SubKind::KeyShared)
                });
                if p.batching.is_none() && !shared && k.chance(0.6) {
                    p.chunking = true;
                }
            }
            if producers.iter().any(|p| p.chunking) {
                max_message_size = k.range(2_048, 4_096) as i32;
            }
        }

        // schemas (a stream of its own): in about a third of the seeds the producers declare a
        // STRING schema (most of them; the others stay bytes) and the consumers STRING or
        // AUTO_CONSUME, so the model broker's registry sees versions, refusals never happen, and
        // every message of a schema'd producer must arrive with its version
        let mut sc = SimRng::new(seed ^ 0x5C4E_0000_0000_0003);
        if sc.chance(0.3) {
            for p in &mut producers {
                p.schema = sc.chance(0.8);
            }
            for c in &mut consumers {
                c.schema = match sc.range(0, 2) {
                    0 => Some(ConsumerSchema::String),
                    1 => Some(ConsumerSchema::AutoConsume),
                    _ => None,
                };
            }
        }

        let scale = f64::from(intensity);
        let faults = FaultRates {
            reset: scale * r.next_f64() * 4.0,
            half_open: scale * r.next_f64() * 2.0,
            clog: scale * r.next_f64() * 4.0,
            partition: scale * r.next_f64() * 2.0,
            crash: scale * r.next_f64() * 1.5,
            move_topic: scale * r.next_f64() * 3.0,
        };
        let p = |r: &mut SimRng, max: f64| {
            if intensity == 0 {
                0.0
            } else {
                r.next_f64() * max
            }
        };
        let mut broker_faults = Faults::none();
        broker_faults.lookup_error = p(&mut r, 0.15);
        broker_faults.producer_error = p(&mut r, 0.15);
        broker_faults.subscribe_error = p(&mut r, 0.15);
        broker_faults.persist_error = p(&mut r, 0.03);
        broker_faults.redirect = r.next_f64();
        broker_faults.stale_redirect = r.next_f64() * 0.3;
        broker_faults.auth_challenge = if auth { r.next_f64() } else { 0.0 };
        broker_faults.auth_refresh = if auth { r.next_f64() * 0.5 } else { 0.0 };

        let lat_lo = r.range(0, 20);
        let net = NetParams {
            latency: (ms(lat_lo), ms(lat_lo + r.range(0, 80))),
            split: r.next_f64(),
            max_splits: r.range(1, 6) as u32,
            refuse: p(&mut r, 0.2),
            rst_on_close: r.next_f64() * 0.5,
        };
        let client = ClientParams {
            operation_timeout: ms(r.range(3_000, 30_000)),
            connection_timeout: ms(r.range(1_000, 10_000)),
            keep_alive: ms(r.range(2_000, 30_000)),
            backoff_initial: ms(r.range(20, 500)),
            backoff_max: ms(r.range(1_000, 10_000)),
        };
        let broker_keep_alive = ms(r.range(5_000, 30_000));
        let persist_lo = r.range(0, 10);
        let persist_latency = (ms(persist_lo), ms(persist_lo + r.range(0, 50)));
        // time for everything to recover once healed: stale connections noticed by either keep-alive,
        // hung requests timing out, the longest backoff, a reconnection and the resends
        // (with chunking, plus the consumers' expiry of incomplete chunked messages: chunks of
        // copies that never complete are acknowledged only then, and with cumulative acks
        // everything after their first chunk waits for it)
        let chunk_expiry = if producers.iter().any(|p| p.chunking) {
            ms(60_000)
        } else {
            Duration::ZERO
        };
        // (and the slowest consumer's reading of everything sent to its topic, at most
        // `receive_batch` messages a poll and one poll every `poll_interval.1`: a slow consumer
        // may need minutes without any fault)
        let reading = consumers
            .iter()
            .map(|c| {
                let sent: u32 = producers
                    .iter()
                    .filter(|p| p.topic == c.topic)
                    .map(|p| p.messages)
                    .sum();
                let polls = sent as usize / c.receive_batch.max(1) + 1;
                c.poll_interval.1 * polls as u32
            })
            .max()
            .unwrap_or_default();
        let settle_bound = 2 * (2 * client.keep_alive + 2 * broker_keep_alive)
            + 2 * client.operation_timeout
            + 2 * client.connection_timeout
            + 3 * client.backoff_max
            + ms(30_000)
            + chunk_expiry
            + reading;
        Params {
            seed,
            intensity,
            brokers,
            clients,
            dedup,
            auth,
            topics,
            producers,
            consumers,
            chaos,
            net,
            faults,
            broker_faults,
            broker_keep_alive,
            persist_latency,
            client,
            settle_bound,
            max_message_size,
            transaction_coordinators: 0,
        }
    }

    /// Whether the run injects any fault at all.
    pub fn has_faults(&self) -> bool {
        self.faults.total() > 0.0
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} intensity {} brokers {} clients {} dedup {} auth {} chaos {:?} settle bound {:?} \
             max message size {} transaction coordinators {}",
            self.seed,
            self.intensity,
            self.brokers,
            self.clients,
            self.dedup,
            self.auth,
            self.chaos,
            self.settle_bound,
            self.max_message_size,
            self.transaction_coordinators
        )?;
        writeln!(f, "client {:?}", self.client)?;
        writeln!(f, "net {:?}", self.net)?;
        writeln!(f, "faults/min {:?}", self.faults)?;
        writeln!(
            f,
            "broker {:?} keep-alive {:?} persist {:?}",
            self.broker_faults, self.broker_keep_alive, self.persist_latency
        )?;
        for t in &self.topics {
            writeln!(f, "topic {} partitions {}", t.name, t.partitions)?;
        }
        for p in &self.producers {
            writeln!(f, "{p:?}")?;
        }
        for c in &self.consumers {
            writeln!(f, "{c:?}")?;
        }
        Ok(())
    }
}
