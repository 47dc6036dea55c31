//! Serves the client's metrics as Prometheus text (feature `metrics`): the `metrics` facade with
//! `metrics-exporter-prometheus` as the recorder, and a [`MetricsPublisher`] that turns the
//! client's statistics into the Java client's OpenTelemetry metrics (written with `_` for `.`:
//! `pulsar_client_producer_message_send_size`, ...) at every scrape.
//!
//! It first makes some traffic on `TOPIC`: `--messages N` messages of `--size S` bytes sent (no
//! batching), received, the first `--nacks K` of them acknowledged negatively once and received
//! again, then every one acknowledged. Then it prints `serving http://ADDRESS/metrics` and serves
//! until killed (`--port 0` picks a free port).
//!
//! `--partitioned TOPIC2` also sends `N` messages to TOPIC2 (an existing partitioned topic) and
//! receives and acknowledges them with one consumer (one series per partition with
//! `--topic-attributes`, which adds `pulsar.topic` and `pulsar.partition`). Each
//! `--failing-url URL` is a second client that tries to create a producer there and fails (a
//! closed port: `pulsar.failure.type` `tcp-failed`; a port that does not speak the protocol:
//! `handshake`); its metrics are published with the main client's.
//!
//! ```text
//! cargo run -p pulsar-tokio --features metrics --example prometheus -- \
//!     pulsar://127.0.0.1:6650 persistent://public/default/metrics-demo \
//!     [--messages N] [--size S] [--nacks K] [--port P] [--partitioned TOPIC2] \
//!     [--topic-attributes] [--failing-url URL]...
//! curl http://127.0.0.1:9464/metrics
//! ```
//!
//! `tests/tests/metrics.rs` runs it against a real broker and checks the scraped values against
//! the traffic.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pulsar_tokio::metrics::{MetricsOptions, MetricsPublisher, LATENCY_BUCKETS_SECONDS};
use pulsar_tokio::{BatchingOptions, Client, Consumer, Error, InitialPosition, Producer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The command line.
struct Args {
    url: String,
    topic: String,
    messages: usize,
    size: usize,
    nacks: usize,
    port: u16,
    partitioned: Option<String>,
    topic_attributes: bool,
    failing_urls: Vec<String>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut a = Args {
        url: String::new(),
        topic: String::new(),
        messages: 100,
        size: 64,
        nacks: 0,
        port: 9464,
        partitioned: None,
        topic_attributes: false,
        failing_urls: Vec::new(),
    };
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--messages" => a.messages = number("--messages")?,
            "--size" => a.size = number("--size")?,
            "--nacks" => a.nacks = number("--nacks")?,
            "--partitioned" => {
                a.partitioned = Some(it.next().ok_or("--partitioned needs a topic")?)
            }
            "--topic-attributes" => a.topic_attributes = true,
            "--failing-url" => a
                .failing_urls
                .push(it.next().ok_or("--failing-url needs a URL")?),
            "--port" => {
                a.port = u16::try_from(number("--port")?).map_err(|_| "--port: 0 to 65535")?
            }
            _ => positional.push(arg),
        }
    }
    let [url, topic] = <[String; 2]>::try_from(positional).map_err(|_| {
        "usage: prometheus URL TOPIC [--messages N] [--size S] [--nacks K] [--port P]"
    })?;
    a.url = url;
    a.topic = topic;
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    // The recorder: Java's latency buckets for the `*.duration` histograms.
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration".into()), &LATENCY_BUCKETS_SECONDS)?
        .install_recorder()?;
    let client = Client::builder(&args.url).build()?;
    // Kept open while serving: a closed producer or consumer leaves the statistics, so what it
    // did after the last scrape would not be published.
    let (_producer, _consumer) = traffic(&client, &args).await?;
    let _partitioned = match &args.partitioned {
        Some(topic) => Some(partitioned_traffic(&client, topic, args.messages).await?),
        None => None,
    };
    let mut clients = vec![client];
    for url in &args.failing_urls {
        clients.push(failing_client(url, &args.topic).await?);
    }
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("serving http://{}/metrics", listener.local_addr()?);
    let mut options = MetricsOptions::default();
    options.topic_attributes = args.topic_attributes;
    // One publisher per client: each turns its own client's totals into increments.
    let publishers: Arc<Vec<(Client, Mutex<MetricsPublisher>)>> = Arc::new(
        clients
            .into_iter()
            .map(|c| (c, Mutex::new(MetricsPublisher::new(options.clone()))))
            .collect(),
    );
    loop {
        let (socket, _) = listener.accept().await?;
        let (handle, publishers) = (handle.clone(), publishers.clone());
        tokio::spawn(async move {
            if let Err(e) = scrape(socket, &handle, &publishers).await {
                eprintln!("scrape: {e}");
            }
        });
    }
}

/// A client that tries to create a producer at `url` and fails (kept for its metrics).
async fn failing_client(url: &str, topic: &str) -> Result<Client, Box<dyn std::error::Error>> {
    let client = Client::builder(url)
        .operation_timeout(Duration::from_secs(2))
        .connection_timeout(Duration::from_secs(1))
        .build()?;
    match client.producer(topic).create().await {
        Ok(_) => Err(format!("a producer was created through {url}").into()),
        Err(_) => Ok(client),
    }
}

/// Sends `messages` messages (no batching) to the partitioned `topic` and receives and
/// acknowledges them all with one consumer.
async fn partitioned_traffic(
    client: &Client,
    topic: &str,
    messages: usize,
) -> Result<(Producer, Consumer), Error> {
    let consumer = client
        .consumer(topic)
        .subscription("metrics-example")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await?;
    let producer = client
        .producer(topic)
        .batching(no_batching())
        .create()
        .await?;
    for i in 0..messages {
        producer.send(format!("p{i}")).await?;
    }
    for _ in 0..messages {
        let msg = consumer.receive().await?;
        consumer.ack(&msg)?;
    }
    Ok((producer, consumer))
}

fn no_batching() -> BatchingOptions {
    let mut b = BatchingOptions::enabled();
    b.enabled = false;
    b
}

/// Answers one HTTP request (whatever its path) with the metrics, published just before.
async fn scrape(
    mut socket: TcpStream,
    handle: &PrometheusHandle,
    publishers: &[(Client, Mutex<MetricsPublisher>)],
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    for (client, publisher) in publishers {
        publisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .publish(&client.stats());
    }
    let body = handle.render();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

/// Sends, receives, negatively acknowledges and acknowledges as the command line says.
async fn traffic(client: &Client, a: &Args) -> Result<(Producer, Consumer), Error> {
    let consumer = client
        .consumer(&a.topic)
        .subscription("metrics-example")
        .initial_position(InitialPosition::Earliest)
        .negative_ack_delay(Duration::from_millis(100))
        .subscribe()
        .await?;
    let producer = client
        .producer(&a.topic)
        .batching(no_batching())
        .create()
        .await?;
    for i in 0..a.messages {
        let mut payload = vec![b'x'; a.size];
        let digits = i.to_string();
        let n = digits.len().min(a.size);
        payload[..n].copy_from_slice(&digits.as_bytes()[..n]);
        producer.send(payload).await?;
    }
    let mut nacked = 0;
    let mut acked = 0;
    while acked < a.messages {
        let msg = consumer.receive().await?;
        if nacked < a.nacks && msg.redelivery_count == 0 {
            consumer.nack(&msg)?;
            nacked += 1;
        } else {
            consumer.ack(&msg)?;
            acked += 1;
        }
    }
    Ok((producer, consumer))
}
