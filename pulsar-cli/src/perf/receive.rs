//! `perf consume` (`-n` consumers on each of `-ns` subscriptions of each of `-t` topics) and
//! `perf read` (one reader per topic): one receiving thread per consumer or reader, shared
//! counters and histograms, end-to-end latency from each message's publish time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pulsar_blocking::core::Message;
use pulsar_blocking::{Client, Consumer, Error, Reader};

use super::report::{record, Counters, Latencies, Limits, Report, Ticker, Workers};
use crate::args::{Format, PerfConsume, PerfRead, SubscriptionTypeArg};
use crate::error::CliError;
use crate::progress::{Pacer, Progress};
use crate::receive::{parse_start, position, subscription_type};

/// How long a receiving thread waits before looking at the stop flag again.
const POLL: Duration = Duration::from_millis(100);

/// A consumer or a reader.
trait Source: Send {
    fn receive(&self, timeout: Duration) -> Result<Option<Message>, Error>;
    fn ack(&self, message: &Message) -> Result<(), Error>;
    fn close(self) -> Result<(), Error>;
}

impl Source for Consumer {
    fn receive(&self, timeout: Duration) -> Result<Option<Message>, Error> {
        self.receive_timeout(timeout)
    }
    fn ack(&self, message: &Message) -> Result<(), Error> {
        Consumer::ack(self, message)
    }
    fn close(self) -> Result<(), Error> {
        Consumer::close(self)
    }
}

impl Source for Reader {
    fn receive(&self, timeout: Duration) -> Result<Option<Message>, Error> {
        self.receive_timeout(timeout)
    }
    fn ack(&self, _: &Message) -> Result<(), Error> {
        Ok(())
    }
    fn close(self) -> Result<(), Error> {
        Reader::close(self)
    }
}

/// Runs `perf consume`.
pub fn consume(client: &Client, args: &PerfConsume, format: Format) -> Result<(), CliError> {
    let limits = Limits::new(args.num_messages, &args.run)?;
    let topics = args.topics.names().map_err(CliError::Usage)?;
    let subscriptions = args.subscription_names().map_err(CliError::Usage)?;
    if args.subscription_type == SubscriptionTypeArg::Exclusive && args.num_consumers > 1 {
        return Err(CliError::Usage(
            "only one consumer is allowed when the subscription type is Exclusive".into(),
        ));
    }
    let mut consumers = Vec::new();
    for topic in &topics {
        for sub in &subscriptions {
            for _ in 0..args.num_consumers {
                consumers.push(
                    client
                        .consumer(topic.clone())
                        .subscription(sub.clone())
                        .subscription_type(subscription_type(args.subscription_type))
                        .initial_position(position(args.subscription_position))
                        .receiver_queue_size(args.receiver_queue_size)
                        .subscribe()?,
                );
            }
        }
    }
    let workers = Workers {
        kind: "consumers",
        count: consumers.len(),
        topics: topics.len(),
    };
    run("consume", consumers, &limits, args.rate, workers, format)
}

/// Runs `perf read`.
pub fn read(client: &Client, args: &PerfRead, format: Format) -> Result<(), CliError> {
    let limits = Limits::new(args.num_messages, &args.run)?;
    let topics = args.topics.names().map_err(CliError::Usage)?;
    let start = parse_start(&args.start_message_id)?.message_id();
    let mut readers = Vec::new();
    for topic in &topics {
        readers.push(
            client
                .reader(topic.clone())
                .start_message_id(start)
                .receiver_queue_size(args.receiver_queue_size)
                .create()?,
        );
    }
    let workers = Workers {
        kind: "readers",
        count: readers.len(),
        topics: topics.len(),
    };
    run("read", readers, &limits, args.rate, workers, format)
}

/// What the receiving threads share.
struct Shared<'a> {
    limits: &'a Limits,
    counters: Counters,
    latencies: Mutex<Latencies>,
    /// Messages claimed by a thread (at most the limit are counted).
    claimed: AtomicU64,
    stop: AtomicBool,
    first: OnceLock<Instant>,
    pacer: Option<Mutex<Pacer>>,
    progress: Progress,
}

/// Receives on every source until the limits, then reports; elapsed time counts from the first
/// message.
fn run<S: Source>(
    what: &'static str,
    sources: Vec<S>,
    limits: &Limits,
    rate: f64,
    workers: Workers,
    format: Format,
) -> Result<(), CliError> {
    let shared = Shared {
        limits,
        counters: Counters::default(),
        latencies: Mutex::new(Latencies::new()?),
        claimed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        first: OnceLock::new(),
        pacer: (rate > 0.0).then(|| Mutex::new(Pacer::new(rate))),
        progress: Progress::new(limits.total(), "msgs", true),
    };
    let mut ticker = Ticker::new(what, limits.interval, workers);
    let started = Instant::now();
    let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
        let threads: Vec<_> = sources
            .into_iter()
            .map(|source| {
                let shared = &shared;
                scope.spawn(move || {
                    let received = receive(&source, shared);
                    if received.is_err() {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                    received.and(source.close())
                })
            })
            .collect();
        while !shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
            if limits.duration.is_some_and(|d| started.elapsed() >= d) {
                shared.stop.store(true, Ordering::Relaxed);
            }
            ticker.maybe_report(&shared.counters, &shared.latencies, &shared.progress);
        }
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or(Err(Error::DriverStopped)))
            .collect()
    });
    let elapsed = shared.first.get().map_or(Duration::ZERO, Instant::elapsed);
    shared.progress.finish();
    for r in results {
        r?;
    }
    Report::print_final(
        what,
        &shared.counters,
        &shared.latencies,
        elapsed,
        workers,
        format,
    )
}

/// One thread's loop: receive, count, record the latency, acknowledge.
fn receive<S: Source>(source: &S, shared: &Shared<'_>) -> Result<(), Error> {
    let limit = shared.limits.messages;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(p) = &shared.pacer {
            p.lock().unwrap_or_else(PoisonError::into_inner).wait();
        }
        let Some(message) = source.receive(POLL)? else {
            continue;
        };
        let claimed = shared.claimed.fetch_add(1, Ordering::Relaxed);
        if limit > 0 && claimed >= limit {
            // Beyond the limit: left unacknowledged for the next run.
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
        shared.first.get_or_init(Instant::now);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        record(
            &shared.latencies,
            now_ms
                .saturating_sub(message.publish_time)
                .saturating_mul(1000),
        );
        shared.counters.add(message.payload.len() as u64);
        shared.progress.inc(1);
        source.ack(&message)?;
        if limit > 0 && claimed + 1 >= limit {
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
    Ok(())
}
