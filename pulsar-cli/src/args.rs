//! Command-line arguments: the subcommands and flags of Apache Pulsar's `pulsar-client` tool where
//! they exist, `perf` with the flags of Apache's `pulsar-perf`, plus `--format json` and token
//! flags. The Java tools' multi-letter single-dash flags (`-ml`, `-db`, `-ss`, `-time`, ...) are
//! rewritten to their long names before parsing (see [`crate::java_flags`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Default service URL.
pub const DEFAULT_URL: &str = "pulsar://127.0.0.1:6650";

/// Heading of the global options in every subcommand's `--help`, after the subcommand's own.
const GLOBAL_HEADING: &str = "Global options";

/// Produce, consume and read messages of an Apache Pulsar cluster, and measure its throughput.
#[derive(Debug, Parser)]
#[command(name = "pulsar-cli", version, about)]
pub struct Cli {
    /// Connection, authentication and TLS settings.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every subcommand.
#[derive(Debug, Args)]
#[command(next_help_heading = GLOBAL_HEADING)]
pub struct Global {
    /// Service URL: pulsar://host:port or pulsar+ssl://host:port (several hosts separated by commas).
    #[arg(short = 'u', long, alias = "service-url", global = true, default_value = DEFAULT_URL, env = "PULSAR_SERVICE_URL")]
    pub url: String,
    /// Authentication plugin: token, basic, oauth2, tls, or the Java class name
    /// (org.apache.pulsar.client.impl.auth.AuthenticationToken, ...).
    #[arg(long, global = true, requires = "auth_params")]
    pub auth_plugin: Option<String>,
    /// Parameters of the authentication plugin, in the Java tool's formats (token: "token:XYZ" or
    /// "file:///path"; basic: {"userId":"u","password":"p"}; oauth2: {"issuerUrl":...,
    /// "privateKey":"file:///creds.json","audience":...}; tls: "tlsCertFile:/c.pem,tlsKeyFile:/k.pem").
    #[arg(long, global = true, requires = "auth_plugin")]
    pub auth_params: Option<String>,
    /// Authenticate with this token (JWT).
    #[arg(long, global = true, conflicts_with_all = ["auth_plugin", "token_file"])]
    pub token: Option<String>,
    /// Authenticate with the token in this file (read again on every connection and refresh).
    #[arg(long, global = true, conflicts_with = "auth_plugin")]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA certificates trusted for pulsar+ssl:// (default: the system's).
    #[arg(long, global = true, alias = "tlsTrustCertsFilePath")]
    pub tls_trust_certs_file_path: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[arg(long, global = true, alias = "tlsAllowInsecureConnection")]
    pub tls_allow_insecure: bool,
    /// Check that the server certificate names the host connected to (default true).
    #[arg(
        long,
        global = true,
        alias = "tlsEnableHostnameVerification",
        value_name = "BOOL",
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub tls_enable_hostname_verification: bool,
    /// Client certificate chain (PEM) for mutual TLS.
    #[arg(long, global = true, requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, global = true, requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// Advertised listener name to use in lookups.
    #[arg(long, global = true)]
    pub listener_name: Option<String>,
    /// Proxy service URL: every connection goes to this address (with --proxy-protocol SNI, TLS
    /// names the broker the connection is for, so the proxy can route on it).
    #[arg(long, global = true, value_name = "URL", requires = "proxy_protocol")]
    pub proxy_url: Option<String>,
    /// How the proxy routes connections (only SNI).
    #[arg(
        long,
        global = true,
        value_enum,
        ignore_case = true,
        requires = "proxy_url"
    )]
    pub proxy_protocol: Option<ProxyProtocolArg>,
    /// Memory the client may hold for messages being sent, e.g. 64M, 512K, 1G or bytes (also
    /// -ml; 0: no limit; default 64M).
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<usize>,
    /// Seconds allowed for each TCP (and TLS) connect plus the protocol handshake.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 10.0)]
    pub connection_timeout: f64,
    /// Seconds allowed for each operation (lookup, creating a producer or consumer, including
    /// reconnection attempts).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30.0)]
    pub operation_timeout: f64,
    /// Seconds allowed for the first connection to the service URL (all attempts); when none is
    /// established by then the command fails with the last connection error. 0: no separate
    /// bound (only --operation-timeout).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = DEFAULT_INITIAL_CONNECTION_TIMEOUT)]
    pub initial_connection_timeout: f64,
    /// Output format of messages and results.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Default of `--initial-connection-timeout`, in seconds: a service URL that refuses, cannot be
/// resolved or does not answer is reported this soon.
pub const DEFAULT_INITIAL_CONNECTION_TIMEOUT: f64 = 5.0;

/// Proxy routing protocols, with the Java enum's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyProtocolArg {
    /// The TLS server name (SNI) carries the target broker's host.
    #[value(name = "SNI")]
    Sni,
}

/// A byte size such as `64M`, `512k`, `1G` or `1048576` (units of 1024, as the Java tools).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        _ => (t, 'b'),
    };
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 64M"))?;
    n.checked_mul(1usize << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// How messages and results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable lines, like the Java tool.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Produce messages to a topic.
    Produce(Produce),
    /// Consume messages from a topic with a subscription.
    Consume(Consume),
    /// Read messages from a topic from a position, without a durable subscription.
    Read(Read),
    /// Measure throughput and latency, with the flags of Apache's pulsar-perf.
    #[command(subcommand)]
    Perf(Perf),
}

/// `produce` options.
#[derive(Debug, Args)]
pub struct Produce {
    /// Topic name.
    pub topic: String,
    /// Messages to send; each value is split at the separator (a value may start with '-').
    #[arg(
        short = 'm',
        long = "messages",
        value_name = "MSG",
        allow_hyphen_values = true
    )]
    pub messages: Vec<String>,
    /// Files whose whole contents are sent, one message per file.
    #[arg(short = 'f', long = "files", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Number of times the messages are sent.
    #[arg(short = 'n', long = "num-produce", default_value_t = 1)]
    pub num_produce: u64,
    /// Rate in messages per second (0: as fast as possible).
    #[arg(short = 'r', long = "rate", default_value_t = 0.0)]
    pub rate: f64,
    /// Separator of the values of -m.
    #[arg(
        short = 's',
        long = "separator",
        default_value = ",",
        allow_hyphen_values = true
    )]
    pub separator: String,
    /// Message properties, key=value (repeat the flag, or separate with commas).
    #[arg(short = 'p', long = "properties", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// Partitioning key.
    #[arg(short = 'k', long = "key", allow_hyphen_values = true)]
    pub key: Option<String>,
    /// Schema of the values (also -vs): bytes (no schema), string, json:<definition> or
    /// avro:<definition> with the Avro-style record definition the broker stores, e.g.
    /// json:{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}. Each message
    /// must be UTF-8 (string) or one JSON document (json; avro: written as Avro binary).
    #[arg(long = "value-schema", value_name = "SCHEMA", default_value = "bytes")]
    pub value_schema: String,
    /// Schema of the keys (also -ks): makes the messages key-value pairs, the key given by
    /// --key-value-key, with the same spellings as --value-schema.
    #[arg(long = "key-schema", value_name = "SCHEMA")]
    pub key_schema: Option<String>,
    /// Encoding of key-value messages (also -kvet): inline (key and value in the payload, the
    /// default) or separated (the key in the message key).
    #[arg(long = "key-value-encoding-type", value_name = "TYPE")]
    pub key_value_encoding_type: Option<String>,
    /// The key of key-value messages (also -kvk), encoded with --key-schema.
    #[arg(long = "key-value-key", value_name = "KEY", allow_hyphen_values = true)]
    pub key_value_key: Option<String>,
    /// Send each message on its own, without batching (also -db).
    #[arg(long = "disable-batching")]
    pub disable_batching: bool,
    /// Split messages larger than the broker's maximum into chunks.
    #[arg(short = 'c', long = "chunking")]
    pub chunking: bool,
    /// Event time set on each message (Unix milliseconds).
    #[arg(long = "event-time")]
    pub event_time: Option<u64>,
    /// Encrypt end to end for this key name (also -ekn; repeat for several), with the public key
    /// of --encryption-key-value-file.
    #[arg(long = "encryption-key-name", value_name = "NAME")]
    pub encryption_key_names: Vec<String>,
    /// The PEM public key the data key is wrapped with (also -ekv): a path, file:///path, or
    /// data:application/x-pem-file;base64,<PEM in base64>.
    #[arg(long = "encryption-key-value-file", value_name = "URI")]
    pub encryption_key_value_file: Option<String>,
}

/// Subscription types, with the Java enum's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum SubscriptionTypeArg {
    /// One consumer.
    Exclusive,
    /// Round robin among consumers.
    Shared,
    /// One active consumer, others on standby.
    Failover,
    /// Keys hashed to consumers.
    #[value(
        name = "Key_Shared",
        alias = "KeyShared",
        alias = "key-shared",
        alias = "key_shared"
    )]
    KeyShared,
}

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum PositionArg {
    /// After the last message.
    Latest,
    /// At the first retained message.
    Earliest,
}

/// Subscription modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum ModeArg {
    /// The broker keeps the subscription's position.
    Durable,
    /// The subscription disappears with the consumer.
    NonDurable,
}

/// `consume` options.
#[derive(Debug, Args)]
pub struct Consume {
    /// Topic name; with --regex, a pattern of topic names of one namespace
    /// (persistent://tenant/ns/prefix-.*).
    pub topic: String,
    /// Subscribe to every topic whose name matches the topic argument as a regular expression
    /// (topics created later are picked up too).
    #[arg(long)]
    pub regex: bool,
    /// Subscription name.
    #[arg(short = 's', long = "subscription-name")]
    pub subscription_name: String,
    /// Subscription type.
    #[arg(short = 't', long = "subscription-type", value_enum, ignore_case = true, default_value_t = SubscriptionTypeArg::Exclusive)]
    pub subscription_type: SubscriptionTypeArg,
    /// Subscription mode.
    #[arg(short = 'm', long = "subscription-mode", value_enum, ignore_case = true, default_value_t = ModeArg::Durable)]
    pub subscription_mode: ModeArg,
    /// Where a new subscription starts.
    #[arg(short = 'p', long = "subscription-position", value_enum, ignore_case = true, default_value_t = PositionArg::Latest)]
    pub subscription_position: PositionArg,
    /// Output and receive settings.
    #[command(flatten)]
    pub receive: ReceiveArgs,
}

/// `read` options.
#[derive(Debug, Args)]
pub struct Read {
    /// Topic name.
    pub topic: String,
    /// Where to start: latest, earliest, or a message id ledger:entry[:partition[:batch[:size]]].
    #[arg(short = 'm', long = "start-message-id", default_value = "latest")]
    pub start_message_id: String,
    /// Include the message given by -m.
    #[arg(short = 'i', long = "start-message-id-inclusive")]
    pub inclusive: bool,
    /// Output and receive settings.
    #[command(flatten)]
    pub receive: ReceiveArgs,
}

/// What consume and read share.
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Number of messages to receive (0: forever).
    #[arg(short = 'n', long = "num-messages", default_value_t = 1)]
    pub num_messages: u64,
    /// Rate in messages per second (0: as fast as possible).
    #[arg(short = 'r', long = "rate", default_value_t = 0.0)]
    pub rate: f64,
    /// Receiver queue size.
    #[arg(short = 'q', long = "queue-size")]
    pub queue_size: Option<u32>,
    /// Print binary payloads as a hex dump (text format).
    #[arg(long)]
    pub hex: bool,
    /// Do not print the messages, only a count.
    #[arg(long)]
    pub hide_content: bool,
    /// Give up (exit code 1) when no message arrived for this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// The PEM private key that decrypts encrypted messages (also -ekv): a path,
    /// file:///path, or data:application/x-pem-file;base64,<PEM in base64>. Without it an
    /// encrypted message is not delivered (an error, as the Java client's FAIL action).
    #[arg(
        long = "encryption-key-value-file",
        alias = "encryption-key-value",
        value_name = "URI"
    )]
    pub encryption_key_value_file: Option<String>,
    /// Schema of the consumer (also -st): bytes (payloads as they are) or auto_consume (each
    /// message decoded with the schema of its version and printed as JSON).
    #[arg(long = "schema-type", value_enum, ignore_case = true, default_value_t = SchemaTypeArg::Bytes)]
    pub schema_type: SchemaTypeArg,
}

/// The consumer schemas of `consume` and `read`, with pulsar-client's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaTypeArg {
    /// No schema: payloads as bytes.
    #[value(name = "bytes")]
    Bytes,
    /// AUTO_CONSUME: decoded with the topic's schema of each message's version.
    #[value(name = "auto_consume", alias = "auto-consume")]
    AutoConsume,
}

/// `perf` subcommands: the flags and defaults of Apache's `pulsar-perf`.
#[derive(Debug, Subcommand)]
pub enum Perf {
    /// Produce at a rate (or flat out) with one or more producers on one or more topics, and
    /// report throughput and send latency.
    Produce(PerfProduce),
    /// Consume with one or more subscriptions and consumers, and report throughput and end-to-end
    /// latency (from publish time).
    Consume(PerfConsume),
    /// Read with one reader per topic from a position, and report throughput and end-to-end
    /// latency (from publish time).
    Read(PerfRead),
}

/// The topics of a perf run: the names given, or `<topic>-<i>` for `i` in `0..num_topics` when
/// one name is given with `-t N` (as pulsar-perf does).
#[derive(Debug, Args)]
pub struct PerfTopics {
    /// Topic name(s).
    #[arg(required = true, num_args = 1..)]
    pub topics: Vec<String>,
    /// Number of topics: one name and -t N use <topic>-0 .. <topic>-(N-1); otherwise the number
    /// of names given.
    #[arg(short = 't', long = "num-topics", alias = "num-topic", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub num_topics: u32,
}

impl PerfTopics {
    /// The topic names of the run.
    pub fn names(&self) -> Result<Vec<String>, String> {
        let n = self.num_topics as usize;
        match self.topics.as_slice() {
            names if names.len() == n => Ok(names.to_vec()),
            [one] => Ok((0..n).map(|i| format!("{one}-{i}")).collect()),
            names => Err(format!(
                "the number of topic names ({}) must be equal to --num-topics ({n})",
                names.len()
            )),
        }
    }
}

/// How long a perf run lasts and how it reports.
#[derive(Debug, Args)]
pub struct PerfRun {
    /// Stop after this many seconds (also -time; 0: no limit).
    #[arg(long = "test-duration", value_name = "SECONDS", default_value_t = 0.0)]
    pub test_duration: f64,
    /// Seconds between interim statistics reports (on stderr); 0: none, only the final report.
    #[arg(
        short = 'i',
        long = "stats-interval-seconds",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    pub stats_interval_seconds: f64,
    /// Connections kept to each broker.
    #[arg(short = 'c', long = "max-connections", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

/// Compression codecs, with the Java enum's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum CompressionArg {
    /// No compression.
    None,
    /// LZ4.
    Lz4,
    /// zlib.
    Zlib,
    /// Zstandard.
    Zstd,
    /// Snappy.
    Snappy,
}

/// How `perf produce` keys its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyModeArg {
    /// 0, 1, 2, ... per run.
    #[value(name = "autoIncrement")]
    AutoIncrement,
    /// A random number per message.
    #[value(name = "random")]
    Random,
}

/// `perf produce` options.
#[derive(Debug, Args)]
pub struct PerfProduce {
    /// Topics.
    #[command(flatten)]
    pub topics: PerfTopics,
    /// Publish rate in messages per second across all producers (0: flat out).
    #[arg(short = 'r', long = "rate", default_value_t = 100.0)]
    pub rate: f64,
    /// Message size in bytes.
    #[arg(short = 's', long = "size", default_value_t = 1024)]
    pub size: usize,
    /// Number of producers per topic.
    #[arg(short = 'n', long = "num-producers", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub num_producers: u32,
    /// Number of messages to publish in total (0: no limit).
    #[arg(short = 'm', long = "num-messages", default_value_t = 0)]
    pub num_messages: u64,
    /// Maximum messages waiting for a receipt, per producer (0: the client's default, 1000).
    #[arg(short = 'o', long = "max-outstanding", default_value_t = 1000)]
    pub max_outstanding: usize,
    /// Maximum messages waiting for a receipt per producer over all the partitions of a
    /// partitioned topic (0: no bound beyond -o). This client bounds a producer's pending
    /// messages over all its partitions only, so -o and -p bound the same count: the smaller
    /// nonzero one applies.
    #[arg(
        short = 'p',
        long = "max-outstanding-across-partitions",
        default_value_t = 0
    )]
    pub max_outstanding_across_partitions: usize,
    /// Compression of the payloads.
    #[arg(short = 'z', long = "compression", value_enum, ignore_case = true, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// Longest time a message waits in a batch, in milliseconds.
    #[arg(short = 'b', long = "batch-time-window", default_value_t = 1.0)]
    pub batch_time_window: f64,
    /// Send each message on its own (also -db).
    #[arg(long = "disable-batching")]
    pub disable_batching: bool,
    /// Maximum messages in a batch (also -bm).
    #[arg(long = "batch-max-messages", default_value_t = 1000)]
    pub batch_max_messages: usize,
    /// Maximum bytes in a batch (also -bb).
    #[arg(long = "batch-max-bytes", default_value_t = 4 * 1024 * 1024)]
    pub batch_max_bytes: usize,
    /// Split messages larger than the broker's maximum into chunks (also -ch).
    #[arg(long = "chunking")]
    pub chunking: bool,
    /// Producer name (with several producers, <name>-<i>) (also -pn).
    #[arg(long = "producer-name")]
    pub producer_name: Option<String>,
    /// Deliver each message this many seconds after it is published.
    #[arg(
        short = 'd',
        long = "delay",
        value_name = "SECONDS",
        default_value_t = 0
    )]
    pub delay: u64,
    /// Set the event time of each message (also -set).
    #[arg(long = "set-event-time")]
    pub set_event_time: bool,
    /// Key each message (also -mk).
    #[arg(long = "message-key-generation-mode", value_enum)]
    pub key_mode: Option<KeyModeArg>,
    /// Seconds a message may wait for its receipt before it fails (0: no limit).
    #[arg(long = "send-timeout", value_name = "SECONDS", default_value_t = 0)]
    pub send_timeout: u64,
    /// Run limits and reporting.
    #[command(flatten)]
    pub run: PerfRun,
}

impl PerfProduce {
    /// The bound on each producer's pending messages from -o and -p: the smaller nonzero one, 0
    /// (the client's default, 1000) when both are 0.
    pub fn max_pending(&self) -> usize {
        match (self.max_outstanding, self.max_outstanding_across_partitions) {
            (0, p) => p,
            (o, 0) => o,
            (o, p) => o.min(p),
        }
    }
}

/// `perf consume` options.
#[derive(Debug, Args)]
pub struct PerfConsume {
    /// Topics.
    #[command(flatten)]
    pub topics: PerfTopics,
    /// Number of consumers per subscription (one for Exclusive).
    #[arg(short = 'n', long = "num-consumers", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub num_consumers: u32,
    /// Number of subscriptions per topic (also -ns): one name and -ns N use <name>-0 ..
    /// <name>-(N-1).
    #[arg(long = "num-subscriptions", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub num_subscriptions: u32,
    /// Subscription names, comma-separated (also -ss).
    #[arg(long = "subscriptions", value_delimiter = ',', default_value = "sub")]
    pub subscriptions: Vec<String>,
    /// Subscription name prefix used with one subscription name and --num-subscriptions N > 1
    /// (pulsar-perf's hidden -s); ignored otherwise: the names of -ss apply.
    #[arg(short = 's', long = "subscriber-name", hide = true)]
    pub subscriber_name: Option<String>,
    /// Subscription type (also -st).
    #[arg(long = "subscription-type", value_enum, ignore_case = true, default_value_t = SubscriptionTypeArg::Exclusive)]
    pub subscription_type: SubscriptionTypeArg,
    /// Where a new subscription starts (also -sp).
    #[arg(long = "subscription-position", value_enum, ignore_case = true, default_value_t = PositionArg::Latest)]
    pub subscription_position: PositionArg,
    /// Simulate a slow consumer: at most this many messages per second in total (0: no limit).
    #[arg(short = 'r', long = "rate", default_value_t = 0.0)]
    pub rate: f64,
    /// Receiver queue size of each consumer.
    #[arg(short = 'q', long = "receiver-queue-size", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub receiver_queue_size: u32,
    /// Number of messages to consume in total (0: no limit).
    #[arg(short = 'm', long = "num-messages", default_value_t = 0)]
    pub num_messages: u64,
    /// Run limits and reporting.
    #[command(flatten)]
    pub run: PerfRun,
}

impl PerfConsume {
    /// The subscription names, expanded as pulsar-perf does: the names of -ss when there are
    /// --num-subscriptions of them; one name (or the hidden -s, when given) as the prefix of
    /// <prefix>-0 .. <prefix>-(N-1) otherwise.
    pub fn subscription_names(&self) -> Result<Vec<String>, String> {
        let n = self.num_subscriptions as usize;
        match self.subscriptions.as_slice() {
            names if names.len() == n => Ok(names.to_vec()),
            [one] => {
                let prefix = self.subscriber_name.as_ref().unwrap_or(one);
                Ok((0..n).map(|i| format!("{prefix}-{i}")).collect())
            }
            _ => Err(format!(
                "the number of subscription names ({}) must be equal to --num-subscriptions ({n})",
                self.subscriptions.len()
            )),
        }
    }
}

/// `perf read` options.
#[derive(Debug, Args)]
pub struct PerfRead {
    /// Topics.
    #[command(flatten)]
    pub topics: PerfTopics,
    /// Where to start: earliest, latest or a message id ledger:entry[:partition[:batch[:size]]].
    #[arg(short = 'm', long = "start-message-id", default_value = "earliest")]
    pub start_message_id: String,
    /// Simulate a slow reader: at most this many messages per second in total (0: no limit).
    #[arg(short = 'r', long = "rate", default_value_t = 0.0)]
    pub rate: f64,
    /// Receiver queue size of each reader.
    #[arg(short = 'q', long = "receiver-queue-size", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub receiver_queue_size: u32,
    /// Number of messages to read in total (0: no limit).
    #[arg(short = 'n', long = "num-messages", default_value_t = 0)]
    pub num_messages: u64,
    /// Run limits and reporting.
    #[command(flatten)]
    pub run: PerfRun,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Cli::try_parse_from(crate::java_flags::rewrite(args))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn java_style_flags() {
        let cli = parse(&[
            "pulsar-cli",
            "consume",
            "t",
            "-s",
            "sub",
            "-t",
            "key_shared",
            "-p",
            "earliest",
            "-n",
            "0",
        ])
        .unwrap();
        match cli.command {
            Command::Consume(c) => {
                assert_eq!(c.subscription_type, SubscriptionTypeArg::KeyShared);
                assert_eq!(c.subscription_position, PositionArg::Earliest);
                assert_eq!(c.receive.num_messages, 0);
                assert!(!c.regex);
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&[
            "pulsar-cli",
            "produce",
            "t",
            "-m",
            "a,b",
            "-m",
            "c",
            "-n",
            "3",
            "-k",
            "key",
            "-p",
            "x=1",
            "-db",
            "--tls-enable-hostname-verification",
            "false",
            "--url",
            "pulsar://h:1",
            "-ml",
            "32M",
        ])
        .unwrap();
        assert!(!cli.global.tls_enable_hostname_verification);
        assert_eq!(cli.global.url, "pulsar://h:1");
        assert_eq!(cli.global.memory_limit, Some(32 << 20));
        let Command::Produce(p) = cli.command else {
            panic!()
        };
        assert_eq!(p.messages, ["a,b", "c"]);
        assert_eq!(p.value_schema, "bytes", "pulsar-client's default");
        assert_eq!(p.num_produce, 3);
        assert!(p.disable_batching);
        assert!(
            parse(&["pulsar-cli", "consume", "t"]).is_err(),
            "-s is required"
        );
        assert!(parse(&[
            "pulsar-cli",
            "--token",
            "a",
            "--token-file",
            "b",
            "read",
            "t"
        ])
        .is_err());
        let cli = parse(&[
            "pulsar-cli",
            "consume",
            "--regex",
            "persistent://public/default/a-.*",
            "-s",
            "x",
        ])
        .unwrap();
        let Command::Consume(c) = cli.command else {
            panic!()
        };
        assert!(c.regex);
    }

    #[test]
    fn values_that_look_like_java_flags_stay_values() {
        let cli = parse(&[
            "pulsar-cli",
            "produce",
            "t",
            "-m",
            "-ml",
            "-k",
            "-db",
            "-s",
            "-",
            "-vs",
            "string",
        ])
        .unwrap();
        assert_eq!(cli.global.memory_limit, None);
        let Command::Produce(p) = cli.command else {
            panic!()
        };
        assert_eq!(p.messages, ["-ml"]);
        assert_eq!(p.key.as_deref(), Some("-db"));
        assert!(!p.disable_batching);
        assert_eq!(p.separator, "-");
        assert_eq!(p.value_schema, "string");
    }

    #[test]
    fn proxy_flags_go_together() {
        let cli = parse(&[
            "pulsar-cli",
            "--proxy-url",
            "pulsar+ssl://proxy:4443",
            "--proxy-protocol",
            "sni",
            "read",
            "t",
        ])
        .unwrap();
        assert_eq!(cli.global.proxy_protocol, Some(ProxyProtocolArg::Sni));
        assert!(parse(&["pulsar-cli", "--proxy-url", "pulsar://p:1", "read", "t"]).is_err());
        assert!(parse(&["pulsar-cli", "--proxy-protocol", "SNI", "read", "t"]).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in ["", "M", "12X", "-1M", "1.5M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn perf_produce_uses_pulsar_perf_flags() {
        let cli = parse(&[
            "pulsar-cli",
            "perf",
            "produce",
            "t",
            "-r",
            "500",
            "-s",
            "10",
            "-n",
            "2",
            "-t",
            "3",
            "-m",
            "100",
            "-time",
            "7",
            "-b",
            "5",
            "-bm",
            "50",
            "-bb",
            "1024",
            "-db",
            "-c",
            "2",
            "-o",
            "20",
            "-z",
            "lz4",
            "-d",
            "3",
            "-mk",
            "random",
            "-set",
            "-pn",
            "p",
            "-ch",
            "-p",
            "15",
            "-i",
            "0",
        ])
        .unwrap();
        let Command::Perf(Perf::Produce(p)) = cli.command else {
            panic!()
        };
        assert_eq!(p.rate, 500.0);
        assert_eq!(p.size, 10);
        assert_eq!(p.num_producers, 2);
        assert_eq!(p.topics.names().unwrap(), ["t-0", "t-1", "t-2"]);
        assert_eq!(p.num_messages, 100);
        assert_eq!(p.run.test_duration, 7.0);
        assert_eq!(p.batch_time_window, 5.0);
        assert_eq!(p.batch_max_messages, 50);
        assert_eq!(p.batch_max_bytes, 1024);
        assert!(p.disable_batching && p.set_event_time && p.chunking);
        assert_eq!(p.run.max_connections, 2);
        assert_eq!(p.max_outstanding, 20);
        assert_eq!(p.max_outstanding_across_partitions, 15);
        assert_eq!(p.max_pending(), 15, "the smaller of -o and -p");
        assert_eq!(p.run.stats_interval_seconds, 0.0);
        assert_eq!(p.compression, CompressionArg::Lz4);
        assert_eq!(p.delay, 3);
        assert_eq!(p.key_mode, Some(KeyModeArg::Random));
        assert_eq!(p.producer_name.as_deref(), Some("p"));
    }

    #[test]
    fn perf_consume_and_read_use_pulsar_perf_flags() {
        let cli = parse(&[
            "pulsar-cli",
            "perf",
            "consume",
            "a",
            "b",
            "-t",
            "2",
            "-ss",
            "s1,s2",
            "-ns",
            "2",
            "-st",
            "Shared",
            "-sp",
            "Earliest",
            "-n",
            "3",
            "-q",
            "10",
            "-m",
            "5",
            "-time",
            "4",
        ])
        .unwrap();
        let Command::Perf(Perf::Consume(c)) = cli.command else {
            panic!()
        };
        assert_eq!(c.topics.names().unwrap(), ["a", "b"]);
        assert_eq!(c.subscription_names().unwrap(), ["s1", "s2"]);
        assert_eq!(c.subscription_type, SubscriptionTypeArg::Shared);
        assert_eq!(c.subscription_position, PositionArg::Earliest);
        assert_eq!(
            (c.num_consumers, c.receiver_queue_size, c.num_messages),
            (3, 10, 5)
        );
        assert_eq!(c.run.test_duration, 4.0);

        let cli = parse(&["pulsar-cli", "perf", "consume", "a", "-ns", "3", "-ss", "x"]).unwrap();
        let Command::Perf(Perf::Consume(c)) = cli.command else {
            panic!()
        };
        assert_eq!(c.subscription_names().unwrap(), ["x-0", "x-1", "x-2"]);
        assert_eq!(c.topics.names().unwrap(), ["a"]);

        // the hidden -s: a prefix with one -ss name and -ns N > 1, ignored when -ss names them all
        // (pulsar-perf's -ss wins)
        let names = |args: &[&str]| {
            let mut all = vec!["pulsar-cli", "perf", "consume", "a"];
            all.extend_from_slice(args);
            let Command::Perf(Perf::Consume(c)) = parse(&all).unwrap().command else {
                panic!()
            };
            c.subscription_names().unwrap()
        };
        assert_eq!(names(&["-ss", "x", "-s", "p"]), ["x"]);
        assert_eq!(names(&["-s", "p", "-ss", "x"]), ["x"]);
        assert_eq!(names(&["-ss", "x,y", "-ns", "2", "-s", "p"]), ["x", "y"]);
        assert_eq!(names(&["-ss", "x", "-ns", "2", "-s", "p"]), ["p-0", "p-1"]);
        assert_eq!(names(&["-ns", "2"]), ["sub-0", "sub-1"]);

        let cli = parse(&["pulsar-cli", "perf", "consume", "a", "b", "c"]).unwrap();
        let Command::Perf(Perf::Consume(c)) = cli.command else {
            panic!()
        };
        assert!(c.topics.names().is_err(), "three names, -t 1");

        let cli = parse(&[
            "pulsar-cli",
            "perf",
            "read",
            "t",
            "-t",
            "2",
            "-m",
            "latest",
            "-n",
            "9",
            "-q",
            "7",
            "-time",
            "2",
        ])
        .unwrap();
        let Command::Perf(Perf::Read(r)) = cli.command else {
            panic!()
        };
        assert_eq!(r.topics.names().unwrap(), ["t-0", "t-1"]);
        assert_eq!(r.start_message_id, "latest");
        assert_eq!((r.num_messages, r.receiver_queue_size), (9, 7));
        assert_eq!(r.run.test_duration, 2.0);
    }

    #[test]
    fn global_options_have_their_own_heading() {
        let mut cmd = Cli::command();
        cmd.build();
        let help = cmd
            .find_subcommand_mut("produce")
            .unwrap()
            .render_long_help()
            .to_string();
        let own = help.find("--num-produce").unwrap();
        let heading = help.find("Global options:").unwrap();
        let url = help.find("--url").unwrap();
        assert!(own < heading && heading < url, "{help}");
    }
}
