//! The cost of metrics (feature `metrics`): client CPU per message with a [`MetricsPublisher`]
//! publishing into a Prometheus recorder against the same workload without one, in one process,
//! rounds interleaved (off, on, off, on, ...).
//!
//! Each round makes a fresh producer and consumer on a fresh topic, sends `--messages N`
//! messages of `--size S` bytes (batched, as an application sending at full speed would), and
//! receives and acknowledges each one; its CPU time is the process's (`CLOCK_PROCESS_CPUTIME_ID`:
//! the client only, the broker runs elsewhere) over the round. In the "on" rounds a task
//! publishes `client.stats()` and renders the Prometheus text (what a scrape does) every
//! `--interval-ms` milliseconds. The recorder is installed for the whole process, so the only
//! difference between the rounds is the publishing.
//!
//! ```text
//! cargo run --release -p pulsar-tokio --features metrics --example metrics_overhead -- \
//!     pulsar://127.0.0.1:6650 [--messages N] [--size S] [--rounds R] [--interval-ms I]
//! ```
//!
//! It prints one line per round and then the medians: CPU per message off and on, and their
//! ratio.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pulsar_tokio::metrics::{MetricsOptions, MetricsPublisher, LATENCY_BUCKETS_SECONDS};
use pulsar_tokio::{BatchingOptions, Client, Error, InitialPosition};

/// The command line.
struct Args {
    url: String,
    messages: usize,
    size: usize,
    rounds: usize,
    interval: Duration,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        url: String::new(),
        messages: 200_000,
        size: 100,
        rounds: 8,
        interval: Duration::from_millis(100),
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
            "--rounds" => a.rounds = number("--rounds")?,
            "--interval-ms" => a.interval = Duration::from_millis(number("--interval-ms")? as u64),
            _ if a.url.is_empty() => a.url = arg,
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    if a.url.is_empty() {
        return Err(
            "usage: metrics_overhead URL [--messages N] [--size S] [--rounds R] \
                    [--interval-ms I]"
                .into(),
        );
    }
    Ok(a)
}

/// The process's CPU time (user and system, every thread).
fn cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration".into()), &LATENCY_BUCKETS_SECONDS)?
        .install_recorder()?;
    let mut per_message: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut scrapes = 0;
    let mut publish_cpu = Duration::ZERO;
    for round in 0..args.rounds {
        let on = round % 2 == 1;
        let (cpu_ns, wall, n, in_publish) = one_round(&args, round, on.then_some(&handle)).await?;
        publish_cpu += in_publish;
        let ns = cpu_ns.as_nanos() as f64 / args.messages as f64;
        scrapes += n;
        per_message[usize::from(on)].push(ns);
        println!(
            "round {round} metrics {}: {ns:.0} ns CPU/message, {:.0} msg/s, {n} publishes",
            if on { "on " } else { "off" },
            args.messages as f64 / wall.as_secs_f64()
        );
    }
    let [off, on] = per_message.map(median);
    println!(
        "median CPU per message: off {off:.0} ns, on {on:.0} ns, on/off {:.4} ({scrapes} publishes \
         of {:.0} us CPU each; rendered text {} bytes)",
        on / off,
        publish_cpu.as_secs_f64() * 1e6 / scrapes.max(1) as f64,
        handle.render().len()
    );
    Ok(())
}

/// One round: `(CPU time, wall time, publishes made, CPU time spent in them)`.
async fn one_round(
    args: &Args,
    round: usize,
    recorder: Option<&PrometheusHandle>,
) -> Result<(Duration, Duration, usize, Duration), Error> {
    let client = Client::builder(&args.url).build()?;
    let topic = format!(
        "persistent://public/default/metrics-overhead-{}-{round}",
        std::process::id()
    );
    let consumer = client
        .consumer(&topic)
        .subscription("overhead")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await?;
    let producer = client
        .producer(&topic)
        .batching(BatchingOptions::enabled())
        .max_pending_messages(10_000)
        .create()
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let publishes = Arc::new(AtomicUsize::new(0));
    let publish_ns = Arc::new(AtomicUsize::new(0));
    let publisher = recorder.map(|handle| {
        let (client, handle, stop) = (client.clone(), handle.clone(), stop.clone());
        let (publishes, publish_ns) = (publishes.clone(), publish_ns.clone());
        let interval = args.interval;
        tokio::spawn(async move {
            let mut publisher = MetricsPublisher::new(MetricsOptions::default());
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(interval).await;
                let t = cpu();
                publisher.publish(&client.stats());
                std::hint::black_box(handle.render());
                publish_ns.fetch_add((cpu() - t).as_nanos() as usize, Ordering::Relaxed);
                publishes.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let payload = bytes::Bytes::from(vec![b'x'; args.size]);
    let (cpu0, t0) = (cpu(), Instant::now());
    let send = async {
        for _ in 0..args.messages {
            producer
                .send_with_callback(payload.clone(), |r| {
                    if let Err(e) = r {
                        eprintln!("send failed: {e}");
                    }
                })
                .await?;
        }
        producer.flush().await
    };
    let receive = async {
        for _ in 0..args.messages {
            let m = consumer.receive().await?;
            consumer.ack(&m)?;
        }
        Ok::<_, Error>(())
    };
    let (sent, received) = futures::join!(send, receive);
    sent?;
    received?;
    let (cpu_used, wall) = (cpu() - cpu0, t0.elapsed());
    stop.store(true, Ordering::Relaxed);
    if let Some(task) = publisher {
        let _ = task.await;
    }
    producer.close().await?;
    consumer.close().await?;
    client.close().await?;
    Ok((
        cpu_used,
        wall,
        publishes.load(Ordering::Relaxed),
        Duration::from_nanos(publish_ns.load(Ordering::Relaxed) as u64),
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
