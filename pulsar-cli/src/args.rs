//! Command-line arguments: the subcommands and flags of Apache Pulsar's `pulsar-client` tool where
//! they exist, plus `--format json`, token flags and `perf`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Default service URL.
pub const DEFAULT_URL: &str = "pulsar://127.0.0.1:6650";

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
pub struct Global {
    /// Service URL: pulsar://host:port or pulsar+ssl://host:port (several hosts separated by commas).
    #[arg(long, global = true, default_value = DEFAULT_URL, env = "PULSAR_SERVICE_URL")]
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
    /// Seconds allowed for each TCP (and TLS) connect plus the protocol handshake.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 10.0)]
    pub connection_timeout: f64,
    /// Seconds allowed for each operation (lookup, creating a producer or consumer, including
    /// reconnection attempts).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30.0)]
    pub operation_timeout: f64,
    /// Output format of messages and results.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
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
    /// Measure throughput and latency.
    #[command(subcommand)]
    Perf(Perf),
}

/// `produce` options.
#[derive(Debug, Args)]
pub struct Produce {
    /// Topic name.
    pub topic: String,
    /// Messages to send; each value is split at the separator.
    #[arg(short = 'm', long = "messages", value_name = "MSG")]
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
    #[arg(short = 's', long = "separator", default_value = ",")]
    pub separator: String,
    /// Message properties, key=value (repeat the flag, or separate with commas).
    #[arg(short = 'p', long = "properties", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// Partitioning key.
    #[arg(short = 'k', long = "key")]
    pub key: Option<String>,
    /// Send each message on its own, without batching.
    #[arg(long = "disable-batching")]
    pub disable_batching: bool,
    /// Split messages larger than the broker's maximum into chunks.
    #[arg(short = 'c', long = "chunking")]
    pub chunking: bool,
    /// Event time set on each message (Unix milliseconds).
    #[arg(long = "event-time")]
    pub event_time: Option<u64>,
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
    /// Topic name.
    pub topic: String,
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
    /// Where to start: latest, earliest, or a message id ledger:entry[:partition[:batch]].
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
}

/// `perf` subcommands.
#[derive(Debug, Subcommand)]
pub enum Perf {
    /// Produce at a rate (or flat out) and report throughput and send latency.
    Produce(PerfProduce),
    /// Consume and report throughput and end-to-end latency (from publish time).
    Consume(PerfConsume),
}

/// When a perf run ends and how it reports.
#[derive(Debug, Args)]
pub struct PerfRun {
    /// Stop after this many messages (0: no limit).
    #[arg(short = 'm', long = "num-messages", default_value_t = 0)]
    pub num_messages: u64,
    /// Stop after this many seconds (0: no limit).
    #[arg(
        short = 'd',
        long = "test-duration",
        alias = "time",
        default_value_t = 0.0
    )]
    pub test_duration: f64,
    /// Seconds between interim reports (on stderr when it is not a terminal).
    #[arg(long = "stats-interval", default_value_t = 10.0)]
    pub stats_interval: f64,
}

/// `perf produce` options.
#[derive(Debug, Args)]
pub struct PerfProduce {
    /// Topic name.
    pub topic: String,
    /// Rate in messages per second (0: flat out).
    #[arg(short = 'r', long = "rate", default_value_t = 100.0)]
    pub rate: f64,
    /// Message size in bytes.
    #[arg(short = 's', long = "size", default_value_t = 1024)]
    pub size: usize,
    /// Maximum messages waiting for a receipt.
    #[arg(short = 'o', long = "max-outstanding", default_value_t = 1000)]
    pub max_outstanding: usize,
    /// Send each message on its own.
    #[arg(long = "disable-batching")]
    pub disable_batching: bool,
    /// Maximum messages in a batch.
    #[arg(long = "batch-max-messages", default_value_t = 1000)]
    pub batch_max_messages: usize,
    /// Maximum bytes in a batch.
    #[arg(long = "batch-max-bytes", default_value_t = 128 * 1024)]
    pub batch_max_bytes: usize,
    /// Longest time a message waits in a batch, in milliseconds.
    #[arg(long = "batch-time-window", default_value_t = 1.0)]
    pub batch_time_window: f64,
    /// Run limits and reporting.
    #[command(flatten)]
    pub run: PerfRun,
}

/// `perf consume` options.
#[derive(Debug, Args)]
pub struct PerfConsume {
    /// Topic name.
    pub topic: String,
    /// Subscription name.
    #[arg(short = 's', long = "subscription-name", default_value = "perf-sub")]
    pub subscription_name: String,
    /// Subscription type.
    #[arg(short = 't', long = "subscription-type", value_enum, ignore_case = true, default_value_t = SubscriptionTypeArg::Exclusive)]
    pub subscription_type: SubscriptionTypeArg,
    /// Where a new subscription starts.
    #[arg(short = 'p', long = "subscription-position", value_enum, ignore_case = true, default_value_t = PositionArg::Latest)]
    pub subscription_position: PositionArg,
    /// Receiver queue size.
    #[arg(short = 'q', long = "receiver-queue-size", default_value_t = 1000)]
    pub receiver_queue_size: u32,
    /// Run limits and reporting.
    #[command(flatten)]
    pub run: PerfRun,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn java_style_flags() {
        let cli = Cli::try_parse_from([
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
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
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
            "--tls-enable-hostname-verification",
            "false",
            "--url",
            "pulsar://h:1",
        ])
        .unwrap();
        assert!(!cli.global.tls_enable_hostname_verification);
        assert_eq!(cli.global.url, "pulsar://h:1");
        let Command::Produce(p) = cli.command else {
            panic!()
        };
        assert_eq!(p.messages, ["a,b", "c"]);
        assert_eq!(p.num_produce, 3);
        assert!(
            Cli::try_parse_from(["pulsar-cli", "consume", "t"]).is_err(),
            "-s is required"
        );
        assert!(Cli::try_parse_from([
            "pulsar-cli",
            "--token",
            "a",
            "--token-file",
            "b",
            "read",
            "t"
        ])
        .is_err());
    }
}
