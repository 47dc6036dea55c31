//! Load for the cluster tests: a producer sending numbered messages until told to stop (each
//! receipt timed), consumers that receive and acknowledge everything, and the checks run
//! afterwards on what the topic stored and what the consumers saw.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pulsar_async::{Message, MessageId, OutgoingMessage, ReaderOptions};
use pulsar_tests::facade::{TClient, TConsumer, TEvents, TProducer};

/// A producer with no receipt for this long is stuck: longer than any outage the tests make
/// (a dead broker's session timeout, restarts, and reconnection backoffs grown meanwhile).
pub const STUCK: Duration = Duration::from_secs(180);

/// One receipt: the message's number, its id, and when it came (also as unix time in ms, to
/// compare with other processes).
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The message's number.
    pub n: u64,
    /// Its id.
    pub id: MessageId,
    /// When the receipt came.
    pub at: Instant,
    /// The same, as unix time in ms.
    pub unix_ms: u64,
}

/// The unix time in ms.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// What a producing load saw.
#[derive(Debug, Default)]
pub struct Produced {
    /// Messages handed to the producer (numbered 0..sent).
    pub sent: u64,
    /// Receipts in arrival order.
    pub receipts: Vec<Receipt>,
    /// Messages that failed, with the error.
    pub failures: Vec<(u64, String)>,
}

impl Produced {
    /// The longest time between two consecutive receipts.
    pub fn longest_pause(&self) -> Option<Duration> {
        self.longest_pause_at()
            .map(|(from, to)| to.duration_since(from))
    }

    /// The receipts around the longest pause: when it began and when it ended.
    pub fn longest_pause_at(&self) -> Option<(Instant, Instant)> {
        self.receipts
            .windows(2)
            .map(|w| (w[0].at, w[1].at))
            .max_by_key(|(from, to)| to.duration_since(*from))
    }

    /// The unix ms of the first receipt at or after unix ms `t`.
    pub fn first_receipt_after(&self, t: u64) -> Option<u64> {
        self.receipts.iter().map(|r| r.unix_ms).find(|at| *at >= t)
    }
}

/// A producer sending `"{tag}-{n}"` for n = 0, 1, ... every `interval` until stopped.
pub struct Producing {
    stop: Arc<AtomicBool>,
    sender: JoinHandle<(TProducer, u64)>,
    waiter: JoinHandle<Produced>,
}

impl Producing {
    /// Starts sending through `producer`.
    pub fn start(producer: TProducer, tag: &str, interval: Duration) -> Producing {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let tag = tag.to_owned();
        let stopping = stop.clone();
        let sender = std::thread::spawn(move || {
            let mut n = 0u64;
            let mut next = Instant::now();
            while !stopping.load(Ordering::Relaxed) {
                let message = OutgoingMessage::new(format!("{tag}-{n}").into_bytes());
                let queued = producer.send_async(message);
                if tx.send((n, queued)).is_err() {
                    break;
                }
                n += 1;
                next += interval;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            (producer, n)
        });
        let waiter = std::thread::spawn(move || {
            let mut produced = Produced::default();
            for (n, queued) in rx {
                match queued.and_then(|receipt| receipt.wait_timeout(STUCK)) {
                    Ok(id) => produced.receipts.push(Receipt {
                        n,
                        id,
                        at: Instant::now(),
                        unix_ms: unix_ms_now(),
                    }),
                    Err(e) => produced.failures.push((n, e.to_string())),
                }
            }
            produced
        });
        Producing {
            stop,
            sender,
            waiter,
        }
    }

    /// Stops sending, waits for every outstanding receipt and closes the producer.
    pub fn finish(self) -> Result<Produced, String> {
        self.stop.store(true, Ordering::Relaxed);
        let (producer, sent) = self.sender.join().map_err(|_| "sender panicked")?;
        let mut produced = self.waiter.join().map_err(|_| "receipt waiter panicked")?;
        produced.sent = sent;
        producer
            .close()
            .map_err(|e| format!("closing the producer: {e}"))?;
        Ok(produced)
    }
}

/// A consumer that receives and acknowledges until stopped, keeping every payload in order.
pub struct Consuming {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: JoinHandle<Result<TConsumer, String>>,
}

impl Consuming {
    /// Starts receiving with `consumer`.
    pub fn start(mut consumer: TConsumer) -> Consuming {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stopping, seeing) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match consumer.receive_timeout(Duration::from_millis(200)) {
                    Ok(Some(m)) => {
                        seeing
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(text(&m));
                        consumer.ack(&m).map_err(|e| format!("ack: {e}"))?;
                    }
                    Ok(None) => {}
                    Err(e) => return Err(format!("receive: {e}")),
                }
            }
            Ok(consumer)
        });
        Consuming { stop, seen, thread }
    }

    /// How many messages it received so far.
    pub fn count(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The numbers of the messages of `tag` it received so far.
    pub fn numbers_seen(&self, tag: &str) -> BTreeSet<u64> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        numbers(tag, &seen).into_iter().collect()
    }

    /// Waits until every message 0..sent of `tag` was seen, for at most `within`.
    pub fn wait_for_all(&self, tag: &str, sent: u64, within: Duration) -> bool {
        wait_for_all(&[self], tag, sent, within)
    }

    /// Stops and returns the consumer and every payload seen.
    pub fn finish(self) -> Result<(TConsumer, Vec<String>), String> {
        self.stop.store(true, Ordering::Relaxed);
        let consumer = self.thread.join().map_err(|_| "consumer panicked")??;
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner));
        Ok((consumer, seen))
    }
}

/// Waits until the consumers of one subscription, together, saw every message 0..sent of `tag`,
/// for at most `within`.
pub fn wait_for_all(group: &[&Consuming], tag: &str, sent: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let mut distinct = BTreeSet::new();
        for consuming in group {
            distinct.extend(consuming.numbers_seen(tag));
        }
        if (0..sent).all(|n| distinct.contains(&n)) {
            return true;
        }
        if Instant::now() >= deadline || group.iter().all(|c| c.thread.is_finished()) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A message's payload as text.
pub fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

/// Every payload stored on `topic`, read from the start with a reader.
pub fn stored(client: &TClient, topic: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut reader = client.reader(topic, ReaderOptions::new(MessageId::EARLIEST))?;
    let mut out = Vec::new();
    while reader.has_message_available()? {
        out.push(text(&reader.receive()?));
    }
    Ok(out)
}

/// The numbers of the payloads of `tag` (`"{tag}-{n}"`), in order.
pub fn numbers(tag: &str, payloads: &[String]) -> Vec<u64> {
    let prefix = format!("{tag}-");
    payloads
        .iter()
        .filter_map(|p| p.strip_prefix(&prefix)?.parse().ok())
        .collect()
}

/// Checks that `stored` holds every message of `produced` exactly once, in order, and nothing
/// else of `tag`: what deduplication promises when every send succeeded.
pub fn check_exactly_once_in_order(
    tag: &str,
    produced: &Produced,
    stored: &[String],
) -> Result<(), String> {
    if let Some((n, e)) = produced.failures.first() {
        return Err(format!(
            "{tag}: {} sends failed, the first ({n}): {e}",
            produced.failures.len()
        ));
    }
    if produced.receipts.len() as u64 != produced.sent {
        return Err(format!(
            "{tag}: {} receipts for {} messages",
            produced.receipts.len(),
            produced.sent
        ));
    }
    let got = numbers(tag, stored);
    let expected: Vec<u64> = (0..produced.sent).collect();
    if got != expected {
        let first_bad = got
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        return Err(format!(
            "{tag}: stored {} messages, expected {} exactly once in order; first difference at \
             position {first_bad}: stored {:?}, expected {:?}",
            got.len(),
            expected.len(),
            got.get(first_bad..(first_bad + 5).min(got.len())),
            expected.get(first_bad..(first_bad + 5).min(expected.len())),
        ));
    }
    // Receipts came in the order of the sends, with increasing ids.
    if !produced.receipts.iter().map(|r| r.n).eq(0..produced.sent) {
        return Err(format!("{tag}: receipts out of order"));
    }
    // A message the broker had stored before the connection broke, sent again, is recognised
    // by deduplication and acknowledged with the id (-1, -1): every other id increases.
    let stored_ids: Vec<MessageId> = produced
        .receipts
        .iter()
        .map(|r| r.id)
        .filter(|id| id.ledger_id != u64::MAX)
        .collect();
    if let Some(w) = stored_ids.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "{tag}: receipt ids do not increase: {:?} then {:?}",
            w[0], w[1]
        ));
    }
    Ok(())
}

/// Checks that a consumer saw every message 0..sent of `tag` (redeliveries allowed), and, when
/// `ordered`, the first sight of each in order.
pub fn check_consumed(tag: &str, sent: u64, seen: &[String], ordered: bool) -> Result<(), String> {
    let got = numbers(tag, seen);
    let distinct: BTreeSet<u64> = got.iter().copied().collect();
    let missing: Vec<u64> = (0..sent).filter(|n| !distinct.contains(n)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{tag}: consumer missed {} of {sent} messages, first {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    if ordered {
        let mut first_seen = BTreeSet::new();
        let firsts: Vec<u64> = got
            .iter()
            .copied()
            .filter(|n| first_seen.insert(*n))
            .collect();
        if firsts.windows(2).any(|w| w[0] > w[1]) {
            return Err(format!("{tag}: first deliveries out of order"));
        }
    }
    Ok(())
}

/// A client's events with the time each arrived, recorded in a thread until stopped: what a
/// long pause between receipts can be explained with.
pub struct Timeline {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(Instant, String)>>,
}

impl Timeline {
    /// Starts recording `events`.
    pub fn record(mut events: TEvents) -> Timeline {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                if let Some(e) = events.next_timeout(Duration::from_millis(200)) {
                    seen.push((Instant::now(), format!("{e:?}")));
                }
            }
            seen
        });
        Timeline { stop, thread }
    }

    /// Stops and returns what was recorded.
    pub fn finish(self) -> Vec<(Instant, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Stops `producing`, waits until `consuming` received every message (for at most a minute),
/// stops it, and checks that it received everything in order and that `topic` stores every
/// message exactly once, in order. Returns what was produced and the consumer.
pub fn finish_and_check(
    client: &TClient,
    topic: &str,
    tag: &str,
    producing: Producing,
    consuming: Consuming,
) -> Result<(Produced, TConsumer), Box<dyn std::error::Error>> {
    let produced = producing.finish()?;
    if !consuming.wait_for_all(tag, produced.sent, Duration::from_secs(60)) {
        return Err(format!("{tag}: the consumer did not receive every message").into());
    }
    let (consumer, seen) = consuming.finish()?;
    check_consumed(tag, produced.sent, &seen, true)?;
    check_exactly_once_in_order(tag, &produced, &stored(client, topic)?)?;
    Ok((produced, consumer))
}
