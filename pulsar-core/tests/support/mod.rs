//! A scripted broker and a deterministic driver for pulsar-core tests.
//!
//! The driver drains the client's outputs after every input, hands transmits to in-memory brokers
//! (built on pulsar-proto) that decode them and answer, and jumps time to the next deadline instead
//! of sleeping. Every loop is bounded so a livelock fails the test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pulsar_core::{
    Client, ClientConfig, ConnectionId, ConsumerId, ConsumerOptions, Event, IoRequest, Message,
    MessageId, ReaderOptions,
};
use pulsar_proto::pb::{self, base_command::Type};
use pulsar_proto::{encode_command, encode_payload_command, Frame, FrameDecoder};

/// What a broker sends back.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A simple command.
    Cmd(pb::BaseCommand),
    /// A payload command (MESSAGE).
    Payload(pb::BaseCommand, Box<pb::MessageMetadata>, Bytes),
    /// Raw bytes (garbage, hand-made frames).
    Raw(Vec<u8>),
    /// Close the connection (broker side).
    Close,
}

/// Context given to hooks.
#[derive(Debug, Clone)]
pub struct HookCtx {
    pub conn: ConnectionId,
    /// The broker's address (`host:port`).
    pub broker: String,
    /// How many commands of this type this broker received before this one.
    pub nth: usize,
    /// The CONNECT of this connection.
    pub connect: Option<pb::CommandConnect>,
}

/// Overrides the default behaviour: `None` = default, `Some(replies)` = exactly these replies.
pub type Hook = Box<dyn FnMut(&HookCtx, &pb::BaseCommand) -> Option<Vec<Reply>>>;

/// A received command.
#[derive(Debug, Clone)]
pub struct Received {
    pub conn: ConnectionId,
    pub broker: String,
    pub command: pb::BaseCommand,
    pub payload: Option<pulsar_proto::Payload>,
    pub at: Duration,
}

/// A scripted broker.
pub struct Broker {
    pub addr: String,
    pub max_message_size: Option<i32>,
    /// Answer nothing at all (not even CONNECT).
    pub silent: bool,
    /// Refuse TCP connections.
    pub refuse: bool,
    pub hook: Option<Hook>,
    counts: BTreeMap<i32, usize>,
    next_entry: u64,
}

impl Broker {
    fn new(addr: &str) -> Broker {
        Broker {
            addr: addr.to_string(),
            max_message_size: None,
            silent: false,
            refuse: false,
            hook: None,
            counts: BTreeMap::new(),
            next_entry: 0,
        }
    }

    /// The default answer to a client command.
    fn default_reply(&mut self, cmd: &pb::BaseCommand) -> Vec<Reply> {
        let c = |x: pb::BaseCommand| vec![Reply::Cmd(x)];
        match cmd.kind() {
            Some(Type::Connect) => c(pb::CommandConnected {
                server_version: "scripted-broker".into(),
                protocol_version: Some(21),
                max_message_size: self.max_message_size,
                ..Default::default()
            }
            .into()),
            Some(Type::Ping) => c(pb::CommandPong {}.into()),
            Some(Type::Lookup) => {
                let l = cmd.lookup_topic.as_deref().unwrap();
                c(pb::CommandLookupTopicResponse {
                    broker_service_url: Some(format!("pulsar://{}", self.addr)),
                    response: Some(1),
                    request_id: l.request_id,
                    authoritative: Some(true),
                    ..Default::default()
                }
                .into())
            }
            Some(Type::PartitionedMetadata) => {
                let m = cmd.partition_metadata.as_deref().unwrap();
                vec![partitioned_metadata(m.request_id, 0)]
            }
            Some(Type::GetTopicsOfNamespace) => {
                let m = cmd.get_topics_of_namespace.as_deref().unwrap();
                c(pb::CommandGetTopicsOfNamespaceResponse {
                    request_id: m.request_id,
                    topics: vec![format!("persistent://{}/t1", m.namespace)],
                    ..Default::default()
                }
                .into())
            }
            Some(Type::Producer) => {
                let p = cmd.producer.as_deref().unwrap();
                c(pb::CommandProducerSuccess {
                    request_id: p.request_id,
                    producer_name: p
                        .producer_name
                        .clone()
                        .unwrap_or_else(|| format!("standalone-{}", p.producer_id)),
                    last_sequence_id: Some(-1),
                    ..Default::default()
                }
                .into())
            }
            Some(Type::Send) => {
                let s = cmd.send.as_deref().unwrap();
                let entry = self.next_entry;
                self.next_entry += 1;
                c(pb::CommandSendReceipt {
                    producer_id: s.producer_id,
                    sequence_id: s.sequence_id,
                    message_id: Some(pb::MessageIdData {
                        ledger_id: 7,
                        entry_id: entry,
                        ..Default::default()
                    }),
                    ..Default::default()
                }
                .into())
            }
            Some(Type::Subscribe) => {
                let s = cmd.subscribe.as_deref().unwrap();
                c(pb::CommandSuccess {
                    request_id: s.request_id,
                    ..Default::default()
                }
                .into())
            }
            Some(Type::CloseProducer) => {
                let s = cmd.close_producer.as_deref().unwrap();
                c(success(s.request_id))
            }
            Some(Type::CloseConsumer) => {
                let s = cmd.close_consumer.as_deref().unwrap();
                c(success(s.request_id))
            }
            _ => vec![],
        }
    }
}

pub fn success(request_id: u64) -> pb::BaseCommand {
    pb::CommandSuccess {
        request_id,
        ..Default::default()
    }
    .into()
}

/// One simulated TCP connection.
struct SimConn {
    broker: String,
    decoder: FrameDecoder,
    inbound: BytesMut,
    connect: Option<pb::CommandConnect>,
    /// The broker ignores everything on this connection (half-open).
    black_hole: bool,
}

/// The driver.
pub struct Sim {
    pub client: Client,
    pub start: Instant,
    pub now: Instant,
    pub brokers: BTreeMap<String, Broker>,
    conns: BTreeMap<ConnectionId, SimConn>,
    /// Bytes from brokers waiting to be delivered to the client.
    to_client: VecDeque<(ConnectionId, Bytes)>,
    pub events: Vec<(Duration, Event)>,
    pub received: Vec<Received>,
    pub io_log: Vec<(Duration, IoRequest)>,
    pub trace: String,
    /// Deliver broker bytes in chunks of this size (0: whole).
    pub chunk: usize,
    /// Hold back connection establishment (the runtime never answers).
    pub hang_connects: BTreeSet<String>,
    /// Events taken with `take_events`.
    cursor: usize,
}

pub const SERVICE: &str = "svc:6650";

impl Sim {
    /// A client on `pulsar://svc:6650` with one default broker behind it.
    pub fn new() -> Sim {
        Self::with_config(ClientConfig::new("pulsar://svc:6650").with_seed(1))
    }

    pub fn with_config(config: ClientConfig) -> Sim {
        let start = Instant::now();
        let client = Client::new(config, start).expect("valid config");
        let mut sim = Sim {
            client,
            start,
            now: start,
            brokers: BTreeMap::new(),
            conns: BTreeMap::new(),
            to_client: VecDeque::new(),
            events: Vec::new(),
            received: Vec::new(),
            io_log: Vec::new(),
            trace: String::new(),
            chunk: 0,
            hang_connects: BTreeSet::new(),
            cursor: 0,
        };
        sim.add_broker(SERVICE);
        sim
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn add_broker(&mut self, addr: &str) -> &mut Broker {
        self.brokers
            .entry(addr.to_string())
            .or_insert_with(|| Broker::new(addr))
    }

    pub fn broker(&mut self, addr: &str) -> &mut Broker {
        self.brokers.get_mut(addr).expect("broker exists")
    }

    pub fn hook(
        &mut self,
        addr: &str,
        hook: impl FnMut(&HookCtx, &pb::BaseCommand) -> Option<Vec<Reply>> + 'static,
    ) {
        self.broker(addr).hook = Some(Box::new(hook));
    }

    /// Open simulated connections, by id.
    pub fn conn_ids(&self) -> Vec<ConnectionId> {
        self.conns.keys().copied().collect()
    }

    /// Open connections to `addr`.
    pub fn conns_to(&self, addr: &str) -> Vec<ConnectionId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.broker == addr)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn black_hole(&mut self, conn: ConnectionId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.black_hole = true;
        }
    }

    /// The broker sends something unprompted.
    pub fn inject(&mut self, conn: ConnectionId, reply: Reply) {
        self.broker_send(conn, reply);
        self.run_until_idle();
    }

    /// The broker closes a connection.
    pub fn broker_close(&mut self, conn: ConnectionId) {
        self.broker_send(conn, Reply::Close);
        self.run_until_idle();
    }

    fn log(&mut self, line: std::fmt::Arguments<'_>) {
        let t = self.elapsed().as_micros();
        let _ = writeln!(self.trace, "{t:>12} {line}");
    }

    fn broker_send(&mut self, conn: ConnectionId, reply: Reply) {
        let mut buf = BytesMut::new();
        match reply {
            Reply::Cmd(c) => encode_command(&c, &mut buf),
            Reply::Payload(c, m, p) => encode_payload_command(&c, &m, &p, &mut buf),
            Reply::Raw(r) => buf.extend_from_slice(&r),
            Reply::Close => {
                if self.conns.remove(&conn).is_some() {
                    self.to_client.retain(|(c, _)| *c != conn);
                    self.log(format_args!("broker closes {conn}"));
                    self.client
                        .handle_closed(self.now, conn)
                        .expect("known connection");
                }
                return;
            }
        }
        self.to_client.push_back((conn, buf.freeze()));
    }

    /// One round: returns whether anything happened.
    fn step(&mut self) -> bool {
        let mut progress = false;
        while let Some(io) = self.client.poll_io() {
            progress = true;
            self.log(format_args!("io {io:?}"));
            self.io_log.push((self.elapsed(), io.clone()));
            match io {
                IoRequest::Connect { conn, address } => self.connect(conn, address),
                IoRequest::Close { conn } => {
                    self.conns.remove(&conn);
                    self.to_client.retain(|(c, _)| *c != conn);
                }
                _ => {}
            }
        }
        while let Some(t) = self.client.poll_transmit() {
            progress = true;
            self.log(format_args!(
                "tx {} {} bytes {:016x}",
                t.conn,
                t.data.len(),
                fnv(&t.data)
            ));
            self.broker_receive(t.conn, &t.data);
        }
        while let Some(e) = self.client.poll_event() {
            progress = true;
            self.log(format_args!("event {e:?}"));
            self.events.push((self.elapsed(), e));
        }
        if let Some((conn, data)) = self.to_client.pop_front() {
            progress = true;
            if self.conns.contains_key(&conn) {
                let parts: Vec<Bytes> = if self.chunk == 0 {
                    vec![data]
                } else {
                    data.chunks(self.chunk)
                        .map(Bytes::copy_from_slice)
                        .collect()
                };
                for p in parts {
                    self.log(format_args!("rx {conn} {} bytes", p.len()));
                    // After the client closed it (bad input), later chunks are refused: fine.
                    let _ = self.client.handle_bytes(self.now, conn, &p);
                }
            }
        }
        progress
    }

    fn connect(&mut self, conn: ConnectionId, address: pulsar_core::BrokerAddress) {
        let addr = address.host_port();
        if self.hang_connects.contains(&addr) {
            return;
        }
        match self.brokers.get(&addr) {
            Some(b) if !b.refuse => {
                self.conns.insert(
                    conn,
                    SimConn {
                        broker: addr,
                        decoder: FrameDecoder::default(),
                        inbound: BytesMut::new(),
                        connect: None,
                        black_hole: false,
                    },
                );
                self.client
                    .handle_connected(self.now, conn)
                    .expect("connect");
            }
            _ => self
                .client
                .handle_connect_failed(self.now, conn, "connection refused".into())
                .expect("connect failed"),
        }
    }

    fn broker_receive(&mut self, conn: ConnectionId, data: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.inbound.extend_from_slice(data);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let frame: Frame = match c.decoder.decode(&mut c.inbound) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => panic!("the client sent an undecodable frame: {e}"),
            };
            let black_hole = c.black_hole;
            let addr = c.broker.clone();
            if let Some(connect) = frame.command.connect.as_deref() {
                c.connect = Some(connect.clone());
            }
            let connect = c.connect.clone();
            let at = self.elapsed();
            self.received.push(Received {
                conn,
                broker: addr.clone(),
                command: frame.command.clone(),
                payload: frame.payload.clone(),
                at,
            });
            let Some(b) = self.brokers.get_mut(&addr) else {
                return;
            };
            if black_hole || b.silent {
                continue;
            }
            let n = b.counts.entry(frame.command.r#type).or_insert(0);
            let ctx = HookCtx {
                conn,
                broker: addr.clone(),
                nth: *n,
                connect,
            };
            *n += 1;
            let replies = match b.hook.as_mut().and_then(|h| h(&ctx, &frame.command)) {
                Some(r) => r,
                None => b.default_reply(&frame.command),
            };
            for r in replies {
                self.broker_send(conn, r);
            }
        }
    }

    /// Steps until nothing happens (bounded).
    pub fn run_until_idle(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!(
            "livelock: still busy after 100000 steps\n{}",
            self.tail_trace()
        );
    }

    fn tail_trace(&self) -> String {
        let lines: Vec<&str> = self.trace.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Jumps to the client's next deadline (if any, and not after `limit`) and handles it.
    pub fn advance(&mut self, limit: Instant) -> bool {
        self.run_until_idle();
        match self.client.poll_timeout() {
            Some(t) if t <= limit => {
                if t > self.now {
                    self.now = t;
                }
                self.log(format_args!("timeout"));
                self.client.handle_timeout(self.now);
                if let Some(next) = self.client.poll_timeout() {
                    assert!(
                        next > self.now,
                        "after handle_timeout(t) the next deadline must be later than t"
                    );
                }
                self.run_until_idle();
                true
            }
            _ => false,
        }
    }

    /// Runs for `d` of simulated time, handling every deadline on the way.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            if !self.advance(end) {
                self.now = end;
                self.client.handle_timeout(self.now);
                self.run_until_idle();
                return;
            }
        }
        panic!(
            "livelock: too many deadlines within {d:?}\n{}",
            self.tail_trace()
        );
    }

    /// Runs until `pred` holds on the new events (jumping over deadlines), at most `max` of simulated
    /// time. Panics otherwise.
    pub fn run_until(&mut self, max: Duration, mut pred: impl FnMut(&Event) -> bool) -> Event {
        let end = self.now + max;
        for _ in 0..100_000 {
            self.run_until_idle();
            while self.cursor < self.events.len() {
                let e = self.events[self.cursor].1.clone();
                self.cursor += 1;
                if pred(&e) {
                    return e;
                }
            }
            if !self.advance(end) {
                panic!(
                    "condition not reached within {max:?}; events so far:\n{:#?}\ntrace:\n{}",
                    self.events,
                    self.tail_trace()
                );
            }
        }
        panic!("livelock\n{}", self.tail_trace());
    }

    /// Events not yet seen by `run_until` / `take_events`.
    pub fn take_events(&mut self) -> Vec<Event> {
        let out = self.events[self.cursor..]
            .iter()
            .map(|e| e.1.clone())
            .collect();
        self.cursor = self.events.len();
        out
    }

    /// All commands of a type received by any broker.
    pub fn received_of(&self, t: Type) -> Vec<Received> {
        self.received
            .iter()
            .filter(|r| r.command.kind() == Some(t))
            .cloned()
            .collect()
    }
}

impl Received {
    /// The CONNECT of the connection this command arrived on.
    pub fn connect_of(&self, sim: &Sim) -> Option<pb::CommandConnect> {
        sim.received
            .iter()
            .find(|r| r.conn == self.conn && r.command.kind() == Some(Type::Connect))
            .and_then(|r| r.command.connect.as_deref().cloned())
    }
}

/// FNV-1a, to fingerprint bytes in traces.
pub fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A MESSAGE frame for `consumer_id` at entry `entry` of ledger 9.
pub fn message(consumer_id: u64, entry: u64, payload: &[u8], meta: pb::MessageMetadata) -> Reply {
    message_with(consumer_id, entry, payload, meta, |_| {})
}

/// [`message`] with the command's other fields set by `edit` (redelivery count, epoch, ...).
pub fn message_with(
    consumer_id: u64,
    entry: u64,
    payload: &[u8],
    meta: pb::MessageMetadata,
    edit: impl FnOnce(&mut pb::CommandMessage),
) -> Reply {
    let mut command = pb::CommandMessage {
        consumer_id,
        message_id: pb::MessageIdData {
            ledger_id: 9,
            entry_id: entry,
            ..Default::default()
        },
        ..Default::default()
    };
    edit(&mut command);
    Reply::Payload(
        command.into(),
        Box::new(meta),
        Bytes::copy_from_slice(payload),
    )
}

/// A chunk of message `uuid` (chunk `id` of `total`, each `data.len()` bytes) for `consumer_id`
/// at entry `entry` of ledger 9, published at 1 s on the client's wall clock (the scripted client
/// starts at 0).
pub fn chunk(consumer_id: u64, entry: u64, uuid: &str, id: i32, total: i32, data: &[u8]) -> Reply {
    let mut m = meta(entry);
    m.publish_time = 1_000;
    m.uuid = Some(uuid.into());
    m.chunk_id = Some(id);
    m.num_chunks_from_msg = Some(total);
    m.total_chunk_msg_size = Some(total * data.len() as i32);
    message(consumer_id, entry, data, m)
}

/// The answer to PARTITIONED_METADATA `request_id`: the topic has `partitions` partitions (0: not
/// partitioned).
pub fn partitioned_metadata(request_id: u64, partitions: u32) -> Reply {
    Reply::Cmd(
        pb::CommandPartitionedTopicMetadataResponse {
            partitions: Some(partitions),
            request_id,
            response: Some(0),
            ..Default::default()
        }
        .into(),
    )
}

/// Plain metadata for a message.
pub fn meta(seq: u64) -> pb::MessageMetadata {
    pb::MessageMetadata {
        producer_name: "p".into(),
        sequence_id: seq,
        publish_time: 1_000 + seq,
        ..Default::default()
    }
}

impl Sim {
    /// Runs until an event matching `pred` has happened at any point (already or later).
    pub fn run_until_seen(&mut self, max: Duration, pred: impl Fn(&Event) -> bool) {
        self.run_until_idle();
        if self.events.iter().any(|(_, e)| pred(e)) {
            return;
        }
        self.run_until(max, pred);
    }

    /// Subscribes to topic `t` with `opts` and runs until the consumer is ready.
    pub fn subscribed(&mut self, opts: ConsumerOptions) -> ConsumerId {
        let c = self.client.subscribe(self.now, "t", opts).unwrap();
        self.run_until(Duration::from_secs(1), |e| {
            matches!(e, Event::ConsumerReady { .. })
        });
        c
    }

    /// Creates a reader of topic `t` from its earliest message and runs until it is ready.
    pub fn reader_from_earliest(&mut self) -> ConsumerId {
        let r = self
            .client
            .create_reader(self.now, "t", ReaderOptions::new(MessageId::EARLIEST))
            .unwrap();
        self.run_until(Duration::from_secs(1), |e| {
            matches!(e, Event::ConsumerReady { .. })
        });
        r
    }

    /// Every message the application can receive from consumer `c` now.
    pub fn drain(&mut self, c: ConsumerId) -> Vec<Message> {
        std::iter::from_fn(|| self.client.receive(self.now, c)).collect()
    }

    /// The ACKs the brokers got, in order.
    pub fn acks(&self) -> Vec<pb::CommandAck> {
        self.received_of(Type::Ack)
            .iter()
            .map(|a| a.command.ack.as_deref().unwrap().clone())
            .collect()
    }

    /// The broker closes `conn`; runs until a consumer has resubscribed.
    pub fn close_and_resubscribe(&mut self, conn: ConnectionId) {
        self.broker_close(conn);
        self.run_until(Duration::from_secs(5), |e| {
            matches!(e, Event::ConsumerReconnected { .. })
        });
    }

    /// The start ids of the SUBSCRIBEs the brokers got, in order (`None`: no start id).
    pub fn subscribe_starts(&self) -> Vec<Option<pb::MessageIdData>> {
        self.received_of(Type::Subscribe)
            .iter()
            .map(|s| {
                s.command
                    .subscribe
                    .as_deref()
                    .unwrap()
                    .start_message_id
                    .clone()
            })
            .collect()
    }
}
