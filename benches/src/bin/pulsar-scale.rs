//! Many producers, consumers or pattern topics on one client (issue 21's scale goal), on the tokio
//! client against a real broker. One JSON line per run on standard output:
//!
//! - `producers`: `--count` producers over `--topics` topics (round robin), created 500 at a time;
//!   then `--rounds` rounds in which every producer sends one 100-byte message (batching on, 1 ms),
//!   each round waited for: CPU per message at that count;
//! - `consumers`: `--count` consumers (Shared subscription) over `--topics` topics; then one
//!   message per topic, received by one consumer each: CPU per message;
//! - `pattern`: `--topics` topics created first (a producer each, closed), then one pattern
//!   consumer over them: the time until it is subscribed to all of them (its creation completes
//!   once every topic found is subscribed).
//!
//! Every mode also reports the creation time, the client's CPU time for it, the resident memory
//! added (and per resource), and the client's CPU time over `--idle-s` seconds of idleness (what
//! its timers cost at that count).
//!
//! `target/release/pulsar-scale --url pulsar://127.0.0.1:8150 --mode producers --count 10000`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use pulsar_benches::procfs;
use pulsar_tokio::{BatchingOptions, Client, ClientHandle, SubscriptionType};

/// Resources created concurrently.
const WAVE: usize = 500;

#[derive(Debug, Clone)]
struct Args {
    url: String,
    mode: String,
    count: usize,
    topics: usize,
    rounds: usize,
    idle_s: f64,
    prefix: String,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        url: "pulsar://127.0.0.1:6650".into(),
        mode: "producers".into(),
        count: 1000,
        topics: 1,
        rounds: 5,
        idle_s: 5.0,
        prefix: format!("scale-{}", std::process::id()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--url" => a.url = v,
            "--mode" => a.mode = v,
            "--count" => a.count = num(&v)?,
            "--topics" => a.topics = num(&v)?.max(1),
            "--rounds" => a.rounds = num(&v)?,
            "--idle-s" => a.idle_s = v.parse().map_err(|e| format!("{k}: {e}"))?,
            "--prefix" => a.prefix = v,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    Ok(a)
}

/// CPU seconds, resident KiB and the instant, at one point.
#[derive(Debug, Clone, Copy)]
struct Point {
    cpu_s: f64,
    rss_kib: u64,
    at: Instant,
}

impl Point {
    fn now() -> Point {
        Point {
            cpu_s: procfs::process_cpu_s(),
            rss_kib: procfs::self_kib("VmRSS"),
            at: Instant::now(),
        }
    }
}

fn topic(a: &Args, i: usize) -> String {
    format!("persistent://public/default/{}-{}", a.prefix, i % a.topics)
}

async fn idle_cpu(a: &Args) -> f64 {
    let p = Point::now();
    tokio::time::sleep(Duration::from_secs_f64(a.idle_s)).await;
    (procfs::process_cpu_s() - p.cpu_s) / a.idle_s.max(1e-9)
}

fn created(before: Point, after: Point, n: usize) -> serde_json::Value {
    serde_json::json!({
        "create_s": (after.at - before.at).as_secs_f64(),
        "create_cpu_s": after.cpu_s - before.cpu_s,
        "create_cpu_us_each": (after.cpu_s - before.cpu_s) * 1e6 / n.max(1) as f64,
        "rss_added_kib": after.rss_kib as i64 - before.rss_kib as i64,
        "rss_bytes_each": (after.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / n.max(1) as f64,
    })
}

async fn producers(client: &ClientHandle, a: &Args) -> Result<serde_json::Value, String> {
    let make = |i: usize| {
        client
            .producer(topic(a, i))
            .configure(|o| {
                o.batching = BatchingOptions::enabled().with_limits(
                    1000,
                    128 * 1024,
                    Duration::from_millis(1),
                );
            })
            .create()
    };
    let before = Point::now();
    let mut all = Vec::with_capacity(a.count);
    while all.len() < a.count {
        let n = (a.count - all.len()).min(WAVE);
        let base = all.len();
        for p in join_all((0..n).map(|k| make(base + k))).await {
            all.push(p.map_err(|e| format!("create: {e}"))?);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = Point::now();
    let idle = idle_cpu(a).await;
    let payload = bytes::Bytes::from(vec![0u8; 100]);
    let done = Arc::new(AtomicU64::new(0));
    let start = Point::now();
    for _ in 0..a.rounds {
        let target = done.load(Ordering::Relaxed) + all.len() as u64;
        for p in &all {
            let d = done.clone();
            p.send_with_callback(payload.clone(), move |_| {
                d.fetch_add(1, Ordering::Relaxed);
            })
            .await
            .map_err(|e| format!("send: {e}"))?;
        }
        while done.load(Ordering::Relaxed) < target {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let end = Point::now();
    let messages = (a.rounds * all.len()) as f64;
    Ok(serde_json::json!({
        "created": created(before, after, a.count),
        "idle_cpu_per_s": idle,
        "messages": messages,
        "send_s": (end.at - start.at).as_secs_f64(),
        "cpu_us_per_msg": (end.cpu_s - start.cpu_s) * 1e6 / messages.max(1.0),
    }))
}

async fn consumers(client: &ClientHandle, a: &Args) -> Result<serde_json::Value, String> {
    let make = |i: usize| {
        client
            .consumer(topic(a, i))
            .subscription("scale")
            .subscription_type(SubscriptionType::Shared)
            .subscribe()
    };
    let before = Point::now();
    let mut all = Vec::with_capacity(a.count);
    while all.len() < a.count {
        let n = (a.count - all.len()).min(WAVE);
        let base = all.len();
        for c in join_all((0..n).map(|k| make(base + k))).await {
            all.push(c.map_err(|e| format!("subscribe: {e}"))?);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = Point::now();
    let idle = idle_cpu(a).await;
    // One message per topic, received by one of its consumers each.
    let topics = a.topics.min(a.count);
    let mut senders = Vec::with_capacity(topics);
    for i in 0..topics {
        senders.push(
            client
                .producer(topic(a, i))
                .create()
                .await
                .map_err(|e| format!("producer: {e}"))?,
        );
    }
    let start = Point::now();
    for p in &senders {
        p.send(vec![1u8; 100])
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    let received = Arc::new(AtomicU64::new(0));
    let wanted = topics as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    join_all(all.iter().map(|c| {
        let r = received.clone();
        async move {
            while r.load(Ordering::Relaxed) < wanted && Instant::now() < deadline {
                if let Ok(Ok(m)) =
                    tokio::time::timeout(Duration::from_millis(200), c.receive()).await
                {
                    let _ = c.ack(&m);
                    r.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }))
    .await;
    let end = Point::now();
    Ok(serde_json::json!({
        "created": created(before, after, a.count),
        "idle_cpu_per_s": idle,
        "messages": received.load(Ordering::Relaxed),
        "send_receive_s": (end.at - start.at).as_secs_f64(),
    }))
}

async fn pattern(client: &ClientHandle, a: &Args) -> Result<serde_json::Value, String> {
    // The topics, each created by a producer (closed at once).
    let t0 = Instant::now();
    let mut made = 0;
    while made < a.topics {
        let n = (a.topics - made).min(WAVE);
        let ps = join_all((made..made + n).map(|i| client.producer(topic(a, i)).create())).await;
        for p in ps {
            let p = p.map_err(|e| format!("topic: {e}"))?;
            let _ = p.close().await;
        }
        made += n;
    }
    let topics_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = Point::now();
    let c = client
        .consumer_pattern(format!("persistent://public/default/{}-.*", a.prefix))
        .subscription("scale-pattern")
        .subscribe()
        .await
        .map_err(|e| format!("pattern: {e}"))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = Point::now();
    let idle = idle_cpu(a).await;
    drop(c);
    Ok(serde_json::json!({
        "topics_created_s": topics_s,
        "created": created(before, after, a.topics),
        "idle_cpu_per_s": idle,
    }))
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pulsar-scale: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let out = rt.block_on(async {
        let client = Client::builder(a.url.clone())
            .operation_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| format!("client: {e}"))?;
        let r = match a.mode.as_str() {
            "producers" => producers(client.handle(), &a).await,
            "consumers" => consumers(client.handle(), &a).await,
            "pattern" => pattern(client.handle(), &a).await,
            m => Err(format!("unknown mode {m}")),
        };
        let _ = client.handle().close().await;
        r
    });
    match out {
        Ok(v) => println!(
            "{}",
            serde_json::json!({"mode": a.mode, "count": a.count, "topics": a.topics, "result": v})
        ),
        Err(e) => {
            eprintln!("pulsar-scale: {e}");
            std::process::exit(1);
        }
    }
}
