//! pulsar-rs (crates.io `pulsar` 6.x on tokio) running one benchmark workload: the same specs
//! and result lines as `bench-client`, so that the harness treats both alike.
//!
//! pulsar-rs has no per-producer pending limit: the sending loop keeps at most
//! `Spec::pending_window()` receipts outstanding per producer (10,000, fewer when the payloads
//! would exceed 64 MiB), awaiting the oldest before sending more. Its connection's outbound
//! channel is sized to the same 10,000 so that it is not the limit.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use pulsar::producer::SendFuture;
use pulsar::{
    Consumer, ConsumerOptions, Producer, ProducerOptions, Pulsar, SubType, TokioExecutor,
};
use pulsar_benches::latency::{payload_time, stamped_payload, Recorder, Schedule};
use pulsar_benches::procfs;
use pulsar_benches::spec::{
    AckMode, ClientResult, IdleResult, Mode, Spec, BATCH_DELAY_US, BATCH_MAX_BYTES,
    BATCH_MAX_MESSAGES, CUMULATIVE_EVERY, MAX_PENDING, RECEIVER_QUEUE,
};
use pulsar_benches::window::{spawn_monitor, Counters, DrainWindow, Snapshot, WindowFigures};
use pulsar_benches::BenchError;

static COUNTERS: Counters = Counters::new();

fn publish_latency() -> &'static Recorder {
    static R: OnceLock<Recorder> = OnceLock::new();
    R.get_or_init(Recorder::new)
}

fn e2e_latency() -> &'static Recorder {
    static R: OnceLock<Recorder> = OnceLock::new();
    R.get_or_init(Recorder::new)
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

type Client = Pulsar<TokioExecutor>;

fn producer_options(batching: bool) -> ProducerOptions {
    ProducerOptions {
        batch_size: batching.then_some(BATCH_MAX_MESSAGES as u32),
        batch_byte_size: batching.then_some(BATCH_MAX_BYTES),
        batch_timeout: batching.then_some(Duration::from_micros(BATCH_DELAY_US)),
        block_queue_if_full: true,
        ..ProducerOptions::default()
    }
}

async fn producer(
    client: &Client,
    spec: &Spec,
    batching: bool,
) -> Result<Producer<TokioExecutor>, BenchError> {
    client
        .producer()
        .with_topic(spec.topic.clone())
        .with_options(producer_options(batching))
        .build()
        .await
        .map_err(BenchError::client)
}

async fn consumer(
    client: &Client,
    spec: &Spec,
    sub_type: SubType,
) -> Result<Consumer<Vec<u8>, TokioExecutor>, BenchError> {
    client
        .consumer()
        .with_topic(spec.topic.clone())
        .with_subscription(spec.subscription.clone())
        .with_subscription_type(sub_type)
        .with_batch_size(RECEIVER_QUEUE)
        .with_options(ConsumerOptions::default())
        .build()
        .await
        .map_err(BenchError::client)
}

fn count_receipt(r: Result<pulsar::proto::CommandSendReceipt, pulsar::Error>) {
    match r {
        Ok(_) => COUNTERS.done.fetch_add(1, Ordering::Relaxed),
        Err(_) => COUNTERS.failed.fetch_add(1, Ordering::Relaxed),
    };
}

async fn produce_max(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    let mut producers = Vec::with_capacity(spec.producers);
    for _ in 0..spec.producers.max(1) {
        producers.push((
            producer(client, spec, spec.batching).await?,
            VecDeque::<SendFuture>::new(),
        ));
    }
    let window_size = spec.pending_window();
    let payload = vec![0u8; spec.payload_size];
    let monitor = spawn_monitor(&COUNTERS, secs(spec.warmup_s), secs(spec.measure_s));
    let mut sent = 0u64;
    'send: loop {
        for (p, pending) in producers.iter_mut() {
            if COUNTERS.stopped() {
                break 'send;
            }
            if pending.len() >= window_size {
                if let Some(oldest) = pending.pop_front() {
                    count_receipt(oldest.await);
                }
            }
            let f = p
                .send_non_blocking(&payload[..])
                .await
                .map_err(BenchError::client)?;
            pending.push_back(f);
            sent += 1;
            // Count receipts as they arrive, not only when the window forces a wait.
            while let Some(done) = pending.front_mut().and_then(|f| f.now_or_never()) {
                count_receipt(done);
                pending.pop_front();
            }
        }
    }
    let window = monitor
        .join()
        .map_err(|_| BenchError::Run("monitor thread panicked".into()))?;
    for (mut p, pending) in producers {
        for f in pending {
            count_receipt(f.await);
        }
        let _ = p.close().await;
    }
    let mut r = ClientResult::default();
    r.set_window(
        window.messages,
        window.seconds,
        window.cpu_s,
        spec.payload_size,
    );
    r.total_messages = sent;
    r.failed = COUNTERS.failed.load(Ordering::Relaxed);
    Ok(r)
}

async fn prefill(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    let mut p = producer(client, spec, true).await?;
    let payload = vec![0u8; spec.payload_size];
    let mut pending = VecDeque::new();
    let started = Snapshot::take(0);
    for _ in 0..spec.messages {
        if pending.len() >= spec.pending_window() {
            if let Some(f) = pending.pop_front() {
                count_receipt(f.await);
            }
        }
        pending.push_back(
            p.send_non_blocking(&payload[..])
                .await
                .map_err(BenchError::client)?,
        );
    }
    for f in pending {
        count_receipt(f.await);
    }
    let end = Snapshot::take(COUNTERS.done.load(Ordering::Relaxed));
    let _ = p.close().await;
    let w = WindowFigures::between(started, end);
    let mut r = ClientResult::default();
    r.set_window(w.messages, w.seconds, w.cpu_s, spec.payload_size);
    r.total_messages = spec.messages;
    Ok(r)
}

async fn produce_paced(
    client: &Client,
    spec: &Spec,
    e2e: bool,
) -> Result<ClientResult, BenchError> {
    let receiver = if e2e {
        Some(consumer(client, spec, SubType::Exclusive).await?)
    } else {
        None
    };
    let mut p = producer(client, spec, spec.batching).await?;
    let schedule = Schedule::new(spec.rate, secs(spec.warmup_s), secs(spec.measure_s));
    let window_start = schedule.window_start();
    let size = spec.payload_size;
    // Paced on the runtime's timer, receipts awaited by a task each (pulsar-rs's usual usage).
    let send = async {
        let fixed = vec![0u8; size];
        let mut i = 0u64;
        let mut in_window = 0u64;
        let mut last_send = Instant::now();
        let mut cpu_start: Option<f64> = None;
        while let Some(at) = schedule.at(i) {
            if at > Instant::now() {
                tokio::time::sleep_until(at.into()).await;
            }
            let payload = if e2e {
                stamped_payload(size, at, i)
            } else {
                fixed.clone()
            };
            if at >= window_start && cpu_start.is_none() {
                cpu_start = Some(procfs::process_cpu_s());
            }
            let f = p
                .send_non_blocking(payload)
                .await
                .map_err(BenchError::client)?;
            tokio::spawn(async move {
                let r = f.await;
                let now = Instant::now();
                if r.is_ok() {
                    publish_latency().record_since(at, window_start, now);
                }
                count_receipt(r);
            });
            if at >= window_start {
                in_window += 1;
                last_send = Instant::now();
            }
            i += 1;
        }
        if e2e {
            let marker = stamped_payload(size, Instant::now(), u64::MAX);
            let f = p
                .send_non_blocking(marker)
                .await
                .map_err(BenchError::client)?;
            let _ = f.await;
        }
        let cpu_end = procfs::process_cpu_s();
        Ok::<_, BenchError>((i, in_window, last_send, cpu_start, cpu_end))
    };
    let receive = async {
        let Some(c) = receiver else {
            return Ok(0u64);
        };
        let deadline = schedule.window_end() + Duration::from_secs(30);
        e2e_receive(c, window_start, deadline).await
    };
    let (sent, received) = futures::join!(send, receive);
    let (sent, in_window, last_send, cpu_start, cpu_end) = sent?;
    // Every receipt task finishes once the broker answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while COUNTERS.done.load(Ordering::Relaxed) + COUNTERS.failed.load(Ordering::Relaxed) < sent
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = p.close().await;
    let span = last_send.max(schedule.window_end()) - window_start;
    let window_cpu = cpu_start.map(|c| cpu_end - c).unwrap_or(0.0);
    let mut r = ClientResult::default();
    r.set_window(in_window, span.as_secs_f64(), window_cpu, spec.payload_size);
    let mut r = ClientResult {
        offered_rate: spec.rate,
        achieved_rate: in_window as f64 / span.as_secs_f64().max(1e-9),
        total_messages: sent,
        failed: COUNTERS.failed.load(Ordering::Relaxed),
        latency: Some(publish_latency().summary()),
        ..r
    };
    if e2e {
        r.e2e = Some(e2e_latency().summary());
        r.notes.push(format!("{} messages received", received?));
    }
    Ok(r)
}

async fn e2e_receive(
    mut c: Consumer<Vec<u8>, TokioExecutor>,
    window_start: Instant,
    deadline: Instant,
) -> Result<u64, BenchError> {
    let mut n = 0u64;
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timer);
    loop {
        let m = tokio::select! {
            biased;
            m = c.next() => m,
            _ = &mut timer => {
                return Err(BenchError::Run(format!(
                    "end-to-end: the end marker did not arrive ({n} messages received)"
                )));
            }
        };
        let Some(m) = m else { break };
        let m = m.map_err(BenchError::client)?;
        let now = Instant::now();
        c.ack(&m).await.map_err(BenchError::client)?;
        let data = &m.payload.data;
        if data.get(8..16) == Some(&u64::MAX.to_le_bytes()[..]) {
            break;
        }
        if let Some(at) = payload_time(data) {
            e2e_latency().record_since(at, window_start, now);
        }
        n += 1;
    }
    let _ = c.close().await;
    Ok(n)
}

async fn consume(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    let mut c = consumer(client, spec, SubType::Exclusive).await?;
    let deadline = Instant::now() + secs(spec.time_limit_s);
    let mut window = DrainWindow::new(spec.messages);
    let mut n = 0u64;
    let mut check = CUMULATIVE_EVERY;
    let mut since_ack = 0u64;
    // Stops a stalled drain too (no message arrives before the limit).
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timer);
    while n < spec.messages {
        let next = tokio::select! {
            biased;
            m = c.next() => m,
            _ = &mut timer => None,
        };
        let Some(m) = next else { break };
        let m = m.map_err(BenchError::client)?;
        n += 1;
        match spec.ack {
            AckMode::Cumulative => {
                since_ack += 1;
                if since_ack == CUMULATIVE_EVERY || n == spec.messages {
                    c.cumulative_ack(&m).await.map_err(BenchError::client)?;
                    since_ack = 0;
                }
            }
            _ => c.ack(&m).await.map_err(BenchError::client)?,
        }
        window.observe(n);
        check -= 1;
        if check == 0 {
            check = CUMULATIVE_EVERY;
            if Instant::now() > deadline {
                break;
            }
        }
    }
    let last = Snapshot::take(n);
    let _ = c.close().await;
    let mut r = ClientResult::default();
    if let Some(w) = window.figures(last) {
        r.set_window(w.messages, w.seconds, w.cpu_s, spec.payload_size);
    }
    r.total_messages = n;
    if n < spec.messages {
        r.notes.push(format!(
            "time limit: drained {n} of {} messages",
            spec.messages
        ));
    }
    Ok(r)
}

fn idle_result(count: usize, before: u64, after: u64) -> IdleResult {
    IdleResult {
        count,
        rss_before_kib: before,
        rss_after_kib: after,
        bytes_per_item: (after as f64 - before as f64) * 1024.0 / count.max(1) as f64,
    }
}

async fn idle(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    let producers = spec.mode == Mode::IdleProducers;
    let mut ps = Vec::new();
    let mut cs = Vec::new();
    if producers {
        ps.push(producer(client, spec, spec.batching).await?);
    } else {
        cs.push(consumer(client, spec, SubType::Shared).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = procfs::self_kib("VmRSS");
    for _ in 0..spec.count {
        if producers {
            ps.push(producer(client, spec, spec.batching).await?);
        } else {
            cs.push(consumer(client, spec, SubType::Shared).await?);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = procfs::self_kib("VmRSS");
    drop(ps);
    drop(cs);
    Ok(ClientResult {
        idle: Some(idle_result(spec.count, before, after)),
        ..ClientResult::default()
    })
}

async fn run_spec(spec: &Spec) -> Result<ClientResult, BenchError> {
    let client: Client = Pulsar::builder(spec.url.clone(), TokioExecutor)
        .with_outbound_channel_size(MAX_PENDING)
        .build()
        .await
        .map_err(BenchError::client)?;
    match spec.mode {
        Mode::Produce if spec.rate > 0.0 => produce_paced(&client, spec, false).await,
        Mode::Produce => produce_max(&client, spec).await,
        Mode::Prefill => prefill(&client, spec).await,
        Mode::E2e => produce_paced(&client, spec, true).await,
        Mode::Consume => consume(&client, spec).await,
        Mode::IdleProducers | Mode::IdleConsumers => idle(&client, spec).await,
        _ => Err(BenchError::Usage(format!(
            "mode {:?} not supported",
            spec.mode
        ))),
    }
}

fn run() -> Result<ClientResult, BenchError> {
    let mut args = std::env::args().skip(1);
    let spec: Spec = match (args.next().as_deref(), args.next()) {
        (Some("--spec"), Some(text)) => {
            serde_json::from_str(&text).map_err(|e| BenchError::Usage(format!("bad spec: {e}")))?
        }
        _ => return Err(BenchError::Usage("bench-pulsar-rs --spec JSON".into())),
    };
    let cpu0 = procfs::process_cpu_s();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::io("tokio runtime"))?;
    let mut result = rt.block_on(run_spec(&spec))?;
    result.total_cpu_s = procfs::process_cpu_s() - cpu0;
    result.peak_rss_kib = procfs::self_kib("VmHWM");
    Ok(result)
}

fn main() {
    match run() {
        Ok(r) => println!("{}", r.to_line()),
        Err(e) => {
            eprintln!("bench-pulsar-rs: {e}");
            std::process::exit(1);
        }
    }
}
