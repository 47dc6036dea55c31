//! The workloads on the blocking API (`pulsar-blocking`: a driver thread, blocking calls).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulsar_benches::latency::{payload_time, stamped_payload, Schedule};
use pulsar_benches::procfs;
use pulsar_benches::spec::{
    AckMode, ClientResult, Mode, Spec, CUMULATIVE_EVERY, TXN_IN_FLIGHT, TXN_TIMEOUT_S,
};
use pulsar_benches::window::{spawn_monitor, DrainWindow, Snapshot, WindowFigures};
use pulsar_benches::BenchError;
use pulsar_blocking::{Client, Consumer, Message, Producer, SubscriptionType};

use crate::asynch::idle_result;
use crate::{consumer_options, e2e_latency, producer_options, publish_latency, secs, COUNTERS};

/// Runs `spec` on a started client.
pub fn run(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    match spec.mode {
        Mode::Produce if spec.txn_messages > 0 => produce_txn(client, spec),
        Mode::Produce if spec.rate > 0.0 => produce_paced(client, spec, false),
        Mode::Produce => produce_max(client, spec),
        Mode::Prefill => prefill(client, spec),
        Mode::E2e => produce_paced(client, spec, true),
        Mode::Consume => consume(client, spec),
        Mode::IdleProducers => idle_producers(client, spec),
        Mode::IdleConsumers => idle_consumers(client, spec),
        _ => Err(BenchError::Usage(format!(
            "mode {:?} not supported",
            spec.mode
        ))),
    }
}

fn producer(client: &Client, spec: &Spec, batching: bool) -> Result<Producer, BenchError> {
    let mut s = spec.clone();
    s.batching = batching;
    client
        .producer(spec.topic.clone())
        .configure(|o| producer_options(&s, o))
        .create()
        .map_err(BenchError::client)
}

fn producers(client: &Client, spec: &Spec) -> Result<Vec<Producer>, BenchError> {
    (0..spec.producers.max(1))
        .map(|_| producer(client, spec, spec.batching))
        .collect()
}

fn on_receipt(r: Result<pulsar_blocking::MessageId, pulsar_blocking::Error>) {
    match r {
        Ok(_) => COUNTERS.done.fetch_add(1, Ordering::Relaxed),
        Err(_) => COUNTERS.failed.fetch_add(1, Ordering::Relaxed),
    };
}

/// Threads committing in the blocking transactional runs (a blocking commit holds its thread).
const COMMITTERS: usize = 8;

/// Transactional production as fast as possible (see the async version): the commits run on
/// [`COMMITTERS`] helper threads, at most [`TXN_IN_FLIGHT`] queued.
fn produce_txn(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    let p = producer(client, spec, spec.batching)?;
    let payload = Bytes::from(vec![0u8; spec.payload_size]);
    let per_txn = spec.txn_messages;
    let monitor = spawn_monitor(&COUNTERS, secs(spec.warmup_s), secs(spec.measure_s));
    let (tx, rx) = std::sync::mpsc::sync_channel::<pulsar_blocking::Transaction>(TXN_IN_FLIGHT);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let committers: Vec<_> = (0..COMMITTERS)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || loop {
                let next = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                let Ok(txn) = next else {
                    return;
                };
                let counter = if txn.commit().is_ok() {
                    &COUNTERS.done
                } else {
                    &COUNTERS.failed
                };
                counter.fetch_add(per_txn, Ordering::Relaxed);
            })
        })
        .collect();
    let mut sent = 0u64;
    while !COUNTERS.stopped() {
        let txn = client
            .new_transaction()
            .timeout(Duration::from_secs(TXN_TIMEOUT_S))
            .build()
            .map_err(BenchError::client)?;
        for _ in 0..per_txn {
            // the commit waits for every receipt of the transaction
            drop(
                p.send_async_with_txn(&txn, payload.clone())
                    .map_err(BenchError::client)?,
            );
            sent += 1;
        }
        if tx.send(txn).is_err() {
            break;
        }
    }
    drop(tx);
    for c in committers {
        let _ = c.join();
    }
    let window = monitor
        .join()
        .map_err(|_| BenchError::Run("monitor thread panicked".into()))?;
    p.close().map_err(BenchError::client)?;
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

fn produce_max(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    let producers = producers(client, spec)?;
    let payload = Bytes::from(vec![0u8; spec.payload_size]);
    let monitor = spawn_monitor(&COUNTERS, secs(spec.warmup_s), secs(spec.measure_s));
    let mut sent = 0u64;
    'send: loop {
        for p in &producers {
            if COUNTERS.stopped() {
                break 'send;
            }
            p.send_with_callback(payload.clone(), on_receipt)
                .map_err(BenchError::client)?;
            sent += 1;
        }
    }
    let window = monitor
        .join()
        .map_err(|_| BenchError::Run("monitor thread panicked".into()))?;
    for p in producers {
        p.close().map_err(BenchError::client)?;
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

fn prefill(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    let p = producer(client, spec, true)?;
    let payload = Bytes::from(vec![0u8; spec.payload_size]);
    let started = Snapshot::take(0);
    for _ in 0..spec.messages {
        p.send_with_callback(payload.clone(), on_receipt)
            .map_err(BenchError::client)?;
    }
    p.flush().map_err(BenchError::client)?;
    let end = Snapshot::take(COUNTERS.done.load(Ordering::Relaxed));
    p.close().map_err(BenchError::client)?;
    let w = WindowFigures::between(started, end);
    let mut r = ClientResult::default();
    r.set_window(w.messages, w.seconds, w.cpu_s, spec.payload_size);
    r.total_messages = spec.messages;
    Ok(r)
}

fn produce_paced(client: &Client, spec: &Spec, e2e: bool) -> Result<ClientResult, BenchError> {
    let consumer = if e2e {
        Some(
            client
                .consumer(spec.topic.clone())
                .subscription(spec.subscription.clone())
                .configure(consumer_options)
                .subscribe()
                .map_err(BenchError::client)?,
        )
    } else {
        None
    };
    let producers = producers(client, spec)?;
    // The schedule starts once everything is registered.
    let schedule = Schedule::new(spec.rate, secs(spec.warmup_s), secs(spec.measure_s));
    let window_start = schedule.window_start();
    let e2e_deadline = schedule.window_end() + Duration::from_secs(30);
    let receiver =
        consumer.map(|c| std::thread::spawn(move || e2e_receive(c, window_start, e2e_deadline)));
    let fixed = Bytes::from(vec![0u8; spec.payload_size]);
    let mut i = 0u64;
    let mut in_window = 0u64;
    let mut last_send = Instant::now();
    let mut cpu_start: Option<f64> = None;
    while let Some(at) = schedule.at(i) {
        if at > Instant::now() {
            Schedule::wait_until(schedule.wake_at(at));
        }
        let payload = if e2e {
            Bytes::from(stamped_payload(spec.payload_size, at, i))
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
        .map_err(BenchError::client)?;
        if at >= window_start {
            in_window += 1;
            last_send = Instant::now();
        }
        i += 1;
    }
    let cpu_end = procfs::process_cpu_s();
    let mut r = ClientResult::default();
    if e2e {
        let marker = Bytes::from(stamped_payload(spec.payload_size, Instant::now(), u64::MAX));
        producers[0].send(marker).map_err(BenchError::client)?;
    }
    for p in &producers {
        p.flush().map_err(BenchError::client)?;
    }
    r.offered_rate = spec.rate;
    let span = last_send.max(schedule.window_end()) - window_start;
    let window_cpu = cpu_start.map(|c| cpu_end - c).unwrap_or(0.0);
    r.set_window(in_window, span.as_secs_f64(), window_cpu, spec.payload_size);
    r.achieved_rate = in_window as f64 / span.as_secs_f64().max(1e-9);
    r.total_messages = i;
    r.failed = COUNTERS.failed.load(Ordering::Relaxed);
    r.latency = Some(publish_latency().summary());
    if let Some(h) = receiver {
        let received = h
            .join()
            .map_err(|_| BenchError::Run("receiver thread panicked".into()))??;
        r.e2e = Some(e2e_latency().summary());
        r.notes.push(format!("{received} messages received"));
    }
    for p in producers {
        p.close().map_err(BenchError::client)?;
    }
    Ok(r)
}

/// The next message, or `None` once `deadline` passed without one.
fn receive_before(consumer: &Consumer, deadline: Instant) -> Result<Option<Message>, BenchError> {
    if let Some(m) = consumer.try_receive().map_err(BenchError::client)? {
        return Ok(Some(m));
    }
    let left = deadline.saturating_duration_since(Instant::now());
    consumer.receive_timeout(left).map_err(BenchError::client)
}

fn e2e_receive(
    consumer: Consumer,
    window_start: Instant,
    deadline: Instant,
) -> Result<u64, BenchError> {
    let mut n = 0u64;
    loop {
        let Some(m) = receive_before(&consumer, deadline)? else {
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
    let _ = consumer.close();
    Ok(n)
}

fn consume(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    let consumer = client
        .consumer(spec.topic.clone())
        .subscription(spec.subscription.clone())
        .subscription_type(SubscriptionType::Exclusive)
        .configure(consumer_options)
        .subscribe()
        .map_err(BenchError::client)?;
    let deadline = Instant::now() + secs(spec.time_limit_s);
    let mut window = DrainWindow::new(spec.messages);
    let mut check = CUMULATIVE_EVERY;
    let mut since_ack = 0u64;
    let mut n = 0u64;
    while n < spec.messages {
        let Some(m) = receive_before(&consumer, deadline)? else {
            break;
        };
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
    let _ = consumer.close();
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

fn idle_producers(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    let first = producer(client, spec, spec.batching)?;
    std::thread::sleep(Duration::from_millis(500));
    let before = procfs::self_kib("VmRSS");
    let all = (0..spec.count)
        .map(|_| producer(client, spec, spec.batching))
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::sleep(Duration::from_secs(1));
    let after = procfs::self_kib("VmRSS");
    drop(all);
    drop(first);
    Ok(ClientResult {
        idle: Some(idle_result(spec.count, before, after)),
        ..ClientResult::default()
    })
}

fn idle_consumers(client: &Client, spec: &Spec) -> Result<ClientResult, BenchError> {
    let subscribe = || {
        client
            .consumer(spec.topic.clone())
            .subscription(spec.subscription.clone())
            .subscription_type(SubscriptionType::Shared)
            .configure(consumer_options)
            .subscribe()
            .map_err(BenchError::client)
    };
    let first = subscribe()?;
    std::thread::sleep(Duration::from_millis(500));
    let before = procfs::self_kib("VmRSS");
    let all = (0..spec.count)
        .map(|_| subscribe())
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::sleep(Duration::from_secs(1));
    let after = procfs::self_kib("VmRSS");
    drop(all);
    drop(first);
    Ok(ClientResult {
        idle: Some(idle_result(spec.count, before, after)),
        ..ClientResult::default()
    })
}
