//! The workloads on the async API (tokio and smol share this code: `pulsar-async`'s handles are
//! runtime independent).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use pulsar_benches::latency::{payload_time, stamped_payload, Schedule};
use pulsar_benches::procfs;
use pulsar_benches::spec::{
    AckMode, ClientResult, IdleResult, Mode, Spec, CUMULATIVE_EVERY, TXN_IN_FLIGHT, TXN_TIMEOUT_S,
};
use pulsar_benches::window::{spawn_monitor, DrainWindow, Snapshot};
use pulsar_benches::BenchError;
use pulsar_tokio::{ClientHandle, Consumer, Message, Producer, SubscriptionType};

use crate::{consumer_options, e2e_latency, producer_options, publish_latency, secs, COUNTERS};

/// Runs `spec` on a started client.
pub async fn run(
    client: &ClientHandle,
    spec: &Spec,
    sleep_until: SleepUntil,
) -> Result<ClientResult, BenchError> {
    match spec.mode {
        Mode::Produce if spec.txn_messages > 0 => produce_txn(client, spec).await,
        Mode::Produce if spec.rate > 0.0 => produce_paced(client, spec, false, sleep_until).await,
        Mode::Produce => produce_max(client, spec).await,
        Mode::Prefill => prefill(client, spec).await,
        Mode::E2e => produce_paced(client, spec, true, sleep_until).await,
        Mode::Consume => consume(client, spec, sleep_until).await,
        Mode::IdleProducers => idle_producers(client, spec).await,
        Mode::IdleConsumers => idle_consumers(client, spec).await,
        _ => Err(BenchError::Usage(format!(
            "mode {:?} not supported",
            spec.mode
        ))),
    }
}

/// Sends between two voluntary yields of the sending loop: a send that finds room completes
/// without suspending, and on a single-threaded runtime the client's driver task (sockets,
/// timers) only runs when the application task lets it, as any busy task on such a runtime
/// should now and then.
const YIELD_EVERY: u64 = 256;

/// Lets the other tasks of the executor run once (works under any executor).
async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// Sleeps on a helper thread (works under any executor).
async fn sleep(d: Duration) {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    let _ = rx.await;
}

async fn producer(
    client: &ClientHandle,
    spec: &Spec,
    batching: bool,
) -> Result<Producer, BenchError> {
    let mut s = spec.clone();
    s.batching = batching;
    client
        .producer(spec.topic.clone())
        .configure(|o| producer_options(&s, o))
        .create()
        .await
        .map_err(BenchError::client)
}

async fn producers(client: &ClientHandle, spec: &Spec) -> Result<Vec<Producer>, BenchError> {
    let mut out = Vec::with_capacity(spec.producers);
    // Registered concurrently, a hundred at a time.
    while out.len() < spec.producers.max(1) {
        let n = (spec.producers.max(1) - out.len()).min(100);
        let created = join_all((0..n).map(|_| producer(client, spec, spec.batching))).await;
        for p in created {
            out.push(p?);
        }
    }
    Ok(out)
}

fn on_receipt(r: Result<pulsar_tokio::MessageId, pulsar_tokio::Error>) {
    match r {
        Ok(_) => COUNTERS.done.fetch_add(1, Ordering::Relaxed),
        Err(_) => COUNTERS.failed.fetch_add(1, Ordering::Relaxed),
    };
}

async fn produce_max(client: &ClientHandle, spec: &Spec) -> Result<ClientResult, BenchError> {
    let producers = producers(client, spec).await?;
    let payload = Bytes::from(vec![0u8; spec.payload_size]);
    let monitor = spawn_monitor(&COUNTERS, secs(spec.warmup_s), secs(spec.measure_s));
    let mut sent = 0u64;
    'send: loop {
        for p in &producers {
            if COUNTERS.stopped() {
                break 'send;
            }
            p.send_with_callback(payload.clone(), on_receipt)
                .await
                .map_err(BenchError::client)?;
            sent += 1;
            if sent.is_multiple_of(YIELD_EVERY) {
                yield_now().await;
            }
        }
    }
    let window = monitor
        .join()
        .map_err(|_| BenchError::Run("monitor thread panicked".into()))?;
    for p in producers {
        p.close().await.map_err(BenchError::client)?;
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

/// Transactional production as fast as possible: `txn_messages` messages per transaction, each
/// transaction committed without waiting for it (at most [`TXN_IN_FLIGHT`] commits in flight);
/// messages count when their transaction committed.
async fn produce_txn(client: &ClientHandle, spec: &Spec) -> Result<ClientResult, BenchError> {
    let p = producer(client, spec, spec.batching).await?;
    let payload = Bytes::from(vec![0u8; spec.payload_size]);
    let per_txn = spec.txn_messages;
    let monitor = spawn_monitor(&COUNTERS, secs(spec.warmup_s), secs(spec.measure_s));
    let mut commits = FuturesUnordered::new();
    let count = |r: Result<(), pulsar_tokio::Error>| {
        let counter = if r.is_ok() {
            &COUNTERS.done
        } else {
            &COUNTERS.failed
        };
        counter.fetch_add(per_txn, Ordering::Relaxed);
    };
    let mut sent = 0u64;
    while !COUNTERS.stopped() {
        let txn = client
            .new_transaction()
            .timeout(Duration::from_secs(TXN_TIMEOUT_S))
            .build()
            .await
            .map_err(BenchError::client)?;
        for _ in 0..per_txn {
            // the commit waits for every receipt of the transaction
            drop(
                p.send_async_with_txn(&txn, payload.clone())
                    .await
                    .map_err(BenchError::client)?,
            );
            sent += 1;
            if sent.is_multiple_of(YIELD_EVERY) {
                yield_now().await;
            }
        }
        commits.push(async move { txn.commit().await });
        // start the new commit and collect the finished ones, without waiting
        while let Some(Some(r)) = commits.next().now_or_never() {
            count(r);
        }
        while commits.len() >= TXN_IN_FLIGHT {
            if let Some(r) = commits.next().await {
                count(r);
            }
        }
    }
    while let Some(r) = commits.next().await {
        count(r);
    }
    let window = monitor
        .join()
        .map_err(|_| BenchError::Run("monitor thread panicked".into()))?;
    p.close().await.map_err(BenchError::client)?;
    let mut r = ClientResult::default();
    r.set_window(
        window.messages,
        window.seconds,
        window.cpu_s,
        spec.payload_size,
    );
    r.total_messages = sent;
    r.failed = COUNTERS.failed.load(Ordering::Relaxed);
    r.notes.push(format!(
        "{per_txn} messages per transaction, counted when committed"
    ));
    Ok(r)
}

async fn prefill(client: &ClientHandle, spec: &Spec) -> Result<ClientResult, BenchError> {
    let p = producer(client, spec, true).await?;
    let payload = Bytes::from(vec![0u8; spec.payload_size]);
    let started = Snapshot::take(0);
    for _ in 0..spec.messages {
        p.send_with_callback(payload.clone(), on_receipt)
            .await
            .map_err(BenchError::client)?;
    }
    p.flush().await.map_err(BenchError::client)?;
    let end = Snapshot::take(COUNTERS.done.load(Ordering::Relaxed));
    p.close().await.map_err(BenchError::client)?;
    let mut r = ClientResult::default();
    let w = pulsar_benches::window::WindowFigures::between(started, end);
    r.set_window(w.messages, w.seconds, w.cpu_s, spec.payload_size);
    r.total_messages = spec.messages;
    r.failed = COUNTERS.failed.load(Ordering::Relaxed);
    Ok(r)
}

/// Sleeps until an instant on the runtime's own timer.
pub type SleepUntil = fn(Instant) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Sends at `spec.rate` from a task on the runtime (its timer paces the sends), each message's
/// latency counted from its scheduled time; with `e2e`, a consumer in this process measures the
/// end-to-end latency from the time carried in the payload.
async fn produce_paced(
    client: &ClientHandle,
    spec: &Spec,
    e2e: bool,
    sleep_until: SleepUntil,
) -> Result<ClientResult, BenchError> {
    let consumer = if e2e {
        Some(
            client
                .consumer(spec.topic.clone())
                .subscription(spec.subscription.clone())
                .configure(consumer_options)
                .subscribe()
                .await
                .map_err(BenchError::client)?,
        )
    } else {
        None
    };
    let producers = producers(client, spec).await?;
    let size = spec.payload_size;
    let schedule = Schedule::new(spec.rate, secs(spec.warmup_s), secs(spec.measure_s));
    let window_start = schedule.window_start();
    let send = async {
        let fixed = Bytes::from(vec![0u8; size]);
        let mut i = 0u64;
        let mut in_window = 0u64;
        let mut last_send = Instant::now();
        let mut cpu_start: Option<f64> = None;
        while let Some(at) = schedule.at(i) {
            if at > Instant::now() {
                sleep_until(schedule.wake_at(at)).await;
            }
            let payload = if e2e {
                Bytes::from(stamped_payload(size, at, i))
            } else {
                fixed.clone()
            };
            if at >= window_start && cpu_start.is_none() {
                cpu_start = Some(procfs::process_cpu_s());
            }
            let p = &producers[(i as usize) % producers.len()];
            p.send_with_callback(payload, move |r| {
                let now = Instant::now();
                match r {
                    Ok(_) => {
                        COUNTERS.done.fetch_add(1, Ordering::Relaxed);
                        publish_latency().record_since(at, window_start, now);
                    }
                    Err(_) => {
                        COUNTERS.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .await
            .map_err(BenchError::client)?;
            if at >= window_start {
                in_window += 1;
                last_send = Instant::now();
            }
            i += 1;
            if i.is_multiple_of(YIELD_EVERY) {
                yield_now().await;
            }
        }
        if e2e {
            // The end marker: the consumer stops when it sees it.
            let marker = Bytes::from(stamped_payload(size, Instant::now(), u64::MAX));
            producers[0]
                .send(marker)
                .await
                .map_err(BenchError::client)?;
        }
        let cpu_end = procfs::process_cpu_s();
        Ok::<_, BenchError>((i, in_window, last_send, cpu_start, cpu_end))
    };
    let receive = async {
        let Some(consumer) = consumer else {
            return Ok(0u64);
        };
        // The end marker follows the last scheduled send; 30 s more at most.
        let timer = sleep_until(schedule.window_end() + Duration::from_secs(30));
        e2e_receive(consumer, window_start, timer).await
    };
    let (sent, received) = futures::join!(send, receive);
    let (sent, in_window, last_send, cpu_start, cpu_end) = sent?;
    for p in &producers {
        p.flush().await.map_err(BenchError::client)?;
    }
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
    for p in producers {
        p.close().await.map_err(BenchError::client)?;
    }
    Ok(r)
}

/// The next message, or `None` when `timer` fires first (the timer is polled only while no
/// message is ready, and never again once it fired). A plain future, not an `async fn`: each
/// layer of futures moves the message (a few hundred bytes) once more.
fn receive_before<'a>(
    consumer: &'a Consumer,
    timer: &'a mut Pin<Box<dyn Future<Output = ()> + Send>>,
) -> impl Future<Output = Result<Option<Message>, BenchError>> + 'a {
    futures::future::poll_fn(move |cx| {
        // `receive` keeps no state between polls: a fresh one each time is the same future.
        if let Poll::Ready(r) = std::pin::pin!(consumer.receive()).poll(cx) {
            return Poll::Ready(r.map(Some).map_err(BenchError::client));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(None));
        }
        Poll::Pending
    })
}

async fn e2e_receive(
    consumer: Consumer,
    window_start: Instant,
    mut timer: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Result<u64, BenchError> {
    let mut n = 0u64;
    loop {
        let Some(m) = receive_before(&consumer, &mut timer).await? else {
            return Err(BenchError::Run(format!(
                "end-to-end: the end marker did not arrive ({n} messages received)"
            )));
        };
        let now = Instant::now();
        consumer.ack(&m).map_err(BenchError::client)?;
        if m.payload.get(8..16) == Some(&u64::MAX.to_le_bytes()[..]) {
            break;
        }
        if let Some(at) = payload_time(&m.payload) {
            e2e_latency().record_since(at, window_start, now);
        }
        n += 1;
    }
    let _ = consumer.close().await;
    Ok(n)
}

async fn consume(
    client: &ClientHandle,
    spec: &Spec,
    sleep_until: SleepUntil,
) -> Result<ClientResult, BenchError> {
    let consumer = client
        .consumer(spec.topic.clone())
        .subscription(spec.subscription.clone())
        .subscription_type(SubscriptionType::Exclusive)
        .configure(consumer_options)
        .subscribe()
        .await
        .map_err(BenchError::client)?;
    let deadline = Instant::now() + secs(spec.time_limit_s);
    // Stops a stalled drain too (no message arrives before the limit).
    let mut timer = sleep_until(deadline);
    let mut window = DrainWindow::new(spec.messages);
    let mut check = CUMULATIVE_EVERY;
    let mut since_ack = 0u64;
    let mut n = 0u64;
    let mut bytes = 0u64;
    while n < spec.messages {
        let Some(m) = receive_before(&consumer, &mut timer).await? else {
            break;
        };
        bytes += m.payload.len() as u64;
        n += 1;
        match spec.ack {
            AckMode::Cumulative => {
                since_ack += 1;
                if since_ack == CUMULATIVE_EVERY || n == spec.messages {
                    consumer.ack_cumulative(&m).map_err(BenchError::client)?;
                    since_ack = 0;
                }
            }
            _ => consumer.ack(&m).map_err(BenchError::client)?,
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
    let _ = consumer.close().await;
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
    if bytes != n * spec.payload_size as u64 {
        r.notes
            .push(format!("received {bytes} payload bytes for {n} messages"));
    }
    Ok(r)
}

async fn idle_producers(client: &ClientHandle, spec: &Spec) -> Result<ClientResult, BenchError> {
    let first = producer(client, spec, spec.batching).await?;
    sleep(Duration::from_millis(500)).await;
    let before = procfs::self_kib("VmRSS");
    let mut all = Vec::with_capacity(spec.count);
    for _ in 0..spec.count {
        all.push(producer(client, spec, spec.batching).await?);
    }
    sleep(Duration::from_secs(1)).await;
    let after = procfs::self_kib("VmRSS");
    drop(all);
    drop(first);
    Ok(ClientResult {
        idle: Some(idle_result(spec.count, before, after)),
        ..ClientResult::default()
    })
}

async fn idle_consumers(client: &ClientHandle, spec: &Spec) -> Result<ClientResult, BenchError> {
    let subscribe = || {
        client
            .consumer(spec.topic.clone())
            .subscription(spec.subscription.clone())
            .subscription_type(SubscriptionType::Shared)
            .configure(consumer_options)
            .subscribe()
    };
    let first = subscribe().await.map_err(BenchError::client)?;
    sleep(Duration::from_millis(500)).await;
    let before = procfs::self_kib("VmRSS");
    let mut all = Vec::with_capacity(spec.count);
    for _ in 0..spec.count {
        all.push(subscribe().await.map_err(BenchError::client)?);
    }
    sleep(Duration::from_secs(1)).await;
    let after = procfs::self_kib("VmRSS");
    drop(all);
    drop(first);
    Ok(ClientResult {
        idle: Some(idle_result(spec.count, before, after)),
        ..ClientResult::default()
    })
}

/// Per-item figures of an idle run.
pub fn idle_result(count: usize, before: u64, after: u64) -> IdleResult {
    IdleResult {
        count,
        rss_before_kib: before,
        rss_after_kib: after,
        bytes_per_item: (after as f64 - before as f64) * 1024.0 / count.max(1) as f64,
    }
}
