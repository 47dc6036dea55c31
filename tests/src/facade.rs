//! One facade over the three runtime adapters (tokio, smol, blocking), so that a test body runs
//! once per runtime: `TClient`, `TProducer`, `TConsumer`, ... call each adapter's own API (the
//! async adapters' futures and `Stream`s, the blocking adapter's blocking calls).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pulsar_async::core::TopicsMode;
use pulsar_async::{
    BatchReceivePolicy, ClientEvent, ClientOptions, ClientStats, ConsumerOptions, Error, Event,
    Launch, Message, MessageId, OutgoingMessage, ProducerOptions, ReaderOptions, SeekTo,
    TopicMessageId,
};

/// How long [`TConsumer::receive`] and [`TReader::receive`] wait for a message.
pub const RECEIVE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A runtime adapter.
pub enum Rt {
    /// `pulsar-tokio`.
    Tokio,
    /// `pulsar-smol`.
    Smol,
    /// `pulsar-blocking`.
    Blocking,
}

/// Where the async calls of a test run.
#[derive(Clone, Debug)]
pub struct Env {
    /// The runtime.
    pub rt: Rt,
    /// The tokio runtime, for [`Rt::Tokio`].
    pub tokio: Option<Arc<tokio::runtime::Runtime>>,
}

impl Env {
    /// An environment for `rt` (a two-thread tokio runtime for tokio).
    pub fn new(rt: Rt) -> Env {
        let tokio = (rt == Rt::Tokio).then(|| {
            Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime"),
            )
        });
        Env { rt, tokio }
    }

    /// Runs `f` to completion (not on the blocking runtime).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        match (&self.tokio, self.rt) {
            (Some(rt), _) => rt.block_on(f),
            (None, Rt::Smol) => smol::block_on(f),
            (None, _) => panic!("block_on on the blocking runtime"),
        }
    }

    /// `f`'s output, or `None` after `d`.
    pub fn timeout<F: Future>(&self, d: Duration, f: F) -> Option<F::Output> {
        match (&self.tokio, self.rt) {
            (Some(rt), _) => rt.block_on(async { tokio::time::timeout(d, f).await }).ok(),
            (None, Rt::Smol) => smol::block_on(smol::future::or(async { Some(f.await) }, async {
                smol::Timer::after(d).await;
                None
            })),
            (None, _) => panic!("timeout on the blocking runtime"),
        }
    }

    /// Launches a client on this runtime.
    pub fn client(&self, options: ClientOptions) -> Result<TClient, Error> {
        Ok(match self.rt {
            Rt::Tokio => {
                let rt = self.tokio.as_ref().expect("tokio runtime");
                let _inside = rt.enter();
                TClient::Async(
                    self.clone(),
                    pulsar_tokio::Tokio::launch(options)?.handle().clone(),
                )
            }
            Rt::Smol => TClient::Async(
                self.clone(),
                pulsar_smol::Smol::launch(options)?.handle().clone(),
            ),
            Rt::Blocking => TClient::Blocking(pulsar_blocking::Blocking::launch(options)?),
        })
    }
}

/// A client of any runtime.
#[derive(Debug)]
pub enum TClient {
    /// tokio or smol, with the environment its futures run in.
    Async(Env, pulsar_async::ClientHandle),
    /// The blocking adapter.
    Blocking(pulsar_blocking::Client),
}

impl TClient {
    /// Creates a producer with `options`; `block_if_queue_full` chooses waiting or failing when full.
    pub fn producer_with(
        &self,
        topic: &str,
        options: ProducerOptions,
        block_if_queue_full: bool,
    ) -> Result<TProducer, Error> {
        match self {
            TClient::Async(env, c) => {
                let b = c
                    .producer(topic)
                    .options(options)
                    .block_if_queue_full(block_if_queue_full);
                env.block_on(b.create())
                    .map(|p| TProducer::Async(env.clone(), p))
            }
            TClient::Blocking(c) => c
                .producer(topic)
                .options(options)
                .block_if_queue_full(block_if_queue_full)
                .create()
                .map(TProducer::Blocking),
        }
    }

    /// Creates a producer with default options.
    pub fn producer(&self, topic: &str) -> Result<TProducer, Error> {
        self.producer_with(topic, ProducerOptions::default(), true)
    }

    /// Subscribes to `topic`.
    pub fn consumer(&self, topic: &str, options: ConsumerOptions) -> Result<TConsumer, Error> {
        match self {
            TClient::Async(env, c) => env
                .block_on(c.consumer(topic).options(options).subscribe())
                .map(|c| TConsumer::Async(env.clone(), c)),
            TClient::Blocking(c) => c
                .consumer(topic)
                .options(options)
                .subscribe()
                .map(TConsumer::Blocking),
        }
    }

    /// Subscribes to several topics.
    pub fn consumer_topics(
        &self,
        topics: &[String],
        options: ConsumerOptions,
    ) -> Result<TConsumer, Error> {
        match self {
            TClient::Async(env, c) => env
                .block_on(c.consumer_topics(topics).options(options).subscribe())
                .map(|c| TConsumer::Async(env.clone(), c)),
            TClient::Blocking(c) => c
                .consumer_topics(topics)
                .options(options)
                .subscribe()
                .map(TConsumer::Blocking),
        }
    }

    /// Creates a reader.
    pub fn reader(&self, topic: &str, options: ReaderOptions) -> Result<TReader, Error> {
        match self {
            TClient::Async(env, c) => env
                .block_on(c.reader(topic).options(options).create())
                .map(|r| TReader::Async(env.clone(), r)),
            TClient::Blocking(c) => c
                .reader(topic)
                .options(options)
                .create()
                .map(TReader::Blocking),
        }
    }

    /// The client's event stream.
    pub fn events(&self) -> TEvents {
        match self {
            TClient::Async(env, c) => TEvents::Async(env.clone(), c.events()),
            TClient::Blocking(c) => TEvents::Blocking(c.events()),
        }
    }

    /// A snapshot of the client's statistics.
    pub fn stats(&self) -> ClientStats {
        match self {
            TClient::Async(_, c) => c.stats(),
            TClient::Blocking(c) => c.stats(),
        }
    }

    /// The partition count of `topic`.
    pub fn partitions(&self, topic: &str) -> Result<u32, Error> {
        match self {
            TClient::Async(env, c) => env.block_on(c.partitions(topic)),
            TClient::Blocking(c) => c.partitions(topic),
        }
    }

    /// The persistent topics of `namespace`.
    pub fn topics_of_namespace(&self, namespace: &str) -> Result<Vec<String>, Error> {
        match self {
            TClient::Async(env, c) => {
                env.block_on(c.topics_of_namespace(namespace, TopicsMode::Persistent))
            }
            TClient::Blocking(c) => c.topics_of_namespace(namespace, TopicsMode::Persistent),
        }
    }

    /// Closes the client.
    pub fn close(&self) -> Result<(), Error> {
        match self {
            TClient::Async(env, c) => env.block_on(c.close()),
            TClient::Blocking(c) => c.close(),
        }
    }

    /// Whether the client is closed.
    pub fn is_closed(&self) -> bool {
        match self {
            TClient::Async(_, c) => c.is_closed(),
            TClient::Blocking(c) => c.is_closed(),
        }
    }
}

/// A producer of any runtime.
#[derive(Debug)]
pub enum TProducer {
    /// tokio or smol, with the environment its futures run in.
    Async(Env, pulsar_async::Producer),
    /// The blocking adapter.
    Blocking(pulsar_blocking::Producer),
}

impl TProducer {
    /// Sends `m` and waits for its receipt.
    pub fn send(&self, m: OutgoingMessage) -> Result<MessageId, Error> {
        match self {
            TProducer::Async(env, p) => env.block_on(p.send(m)),
            TProducer::Blocking(p) => p.send(m),
        }
    }

    /// Queues without waiting for the receipt (waits for room when full and blocking).
    pub fn send_async(&self, m: OutgoingMessage) -> Result<TReceipt, Error> {
        match self {
            TProducer::Async(env, p) => env
                .block_on(p.send_async(m))
                .map(|r| TReceipt::Async(env.clone(), r)),
            TProducer::Blocking(p) => p.send_async(m).map(TReceipt::Blocking),
        }
    }

    /// Queues without ever waiting.
    pub fn try_send(&self, m: OutgoingMessage) -> Result<TReceipt, Error> {
        match self {
            TProducer::Async(env, p) => p.try_send(m).map(|r| TReceipt::Async(env.clone(), r)),
            TProducer::Blocking(p) => p.try_send(m).map(TReceipt::Blocking),
        }
    }

    /// Waits until every queued message has its outcome.
    pub fn flush(&self) -> Result<(), Error> {
        match self {
            TProducer::Async(env, p) => env.block_on(p.flush()),
            TProducer::Blocking(p) => p.flush(),
        }
    }

    /// Closes it.
    pub fn close(self) -> Result<(), Error> {
        match self {
            TProducer::Async(env, p) => env.block_on(p.close()),
            TProducer::Blocking(p) => p.close(),
        }
    }

    /// Messages queued and not yet acknowledged by the broker.
    pub fn pending(&self) -> usize {
        let stats = match self {
            TProducer::Async(_, p) => p.stats(),
            TProducer::Blocking(p) => p.stats(),
        };
        stats.map_or(0, |s| s.pending_messages)
    }

    /// The producer's name.
    pub fn name(&self) -> String {
        match self {
            TProducer::Async(_, p) => p.name().to_string(),
            TProducer::Blocking(p) => p.name().to_string(),
        }
    }
}

/// A send receipt of any runtime.
#[derive(Debug)]
pub enum TReceipt {
    /// tokio or smol, with the environment its futures run in.
    Async(Env, pulsar_async::Receipt),
    /// The blocking adapter.
    Blocking(pulsar_blocking::Receipt),
}

impl TReceipt {
    /// The message id, waiting at most 60 s.
    pub fn wait(self) -> Result<MessageId, Error> {
        self.wait_timeout(Duration::from_secs(60))
    }

    /// The message id, waiting at most `limit` (then [`Error::Client`] with a timeout).
    pub fn wait_timeout(self, limit: Duration) -> Result<MessageId, Error> {
        match self {
            TReceipt::Async(env, r) => env
                .timeout(limit, r)
                .unwrap_or(Err(Error::Client(pulsar_async::core::Error::Timeout))),
            TReceipt::Blocking(mut r) => r
                .wait_timeout(limit)
                .unwrap_or(Err(Error::Client(pulsar_async::core::Error::Timeout))),
        }
    }
}

/// A consumer of any runtime.
#[derive(Debug)]
pub enum TConsumer {
    /// tokio or smol, with the environment its futures run in.
    Async(Env, pulsar_async::Consumer),
    /// The blocking adapter.
    Blocking(pulsar_blocking::Consumer),
}

impl TConsumer {
    /// The next message within `d` (async: through the `Stream` implementation).
    pub fn receive_timeout(&mut self, d: Duration) -> Result<Option<Message>, Error> {
        match self {
            TConsumer::Async(env, c) => match env.timeout(d, c.next()) {
                None => Ok(None),
                Some(None) => Err(Error::Client(pulsar_async::core::Error::Closed)),
                Some(Some(r)) => r.map(Some),
            },
            TConsumer::Blocking(c) => c.receive_timeout(d),
        }
    }

    /// The next message, which must come within [`RECEIVE`].
    pub fn receive(&mut self) -> Result<Message, Box<dyn std::error::Error>> {
        match self {
            // `receive()` (the future) rather than the stream, to cover both.
            TConsumer::Async(env, c) => Ok(env
                .timeout(RECEIVE, c.receive())
                .ok_or("no message within the timeout")??),
            TConsumer::Blocking(c) => Ok(c
                .receive_timeout(RECEIVE)?
                .ok_or("no message within the timeout")?),
        }
    }

    /// Acknowledges `m`.
    pub fn ack(&self, m: &Message) -> Result<(), Error> {
        match self {
            TConsumer::Async(_, c) => c.ack(m),
            TConsumer::Blocking(c) => c.ack(m),
        }
    }

    /// The adapter's own `receive_timeout` (the async adapters' timer, not the facade's).
    pub fn receive_within(&self, d: Duration) -> Result<Option<Message>, Error> {
        match self {
            TConsumer::Async(env, c) => env.block_on(c.receive_timeout(d)),
            TConsumer::Blocking(c) => c.receive_timeout(d),
        }
    }

    /// A batch by `policy`.
    pub fn batch_receive_with(&self, policy: BatchReceivePolicy) -> Result<Vec<Message>, Error> {
        match self {
            TConsumer::Async(env, c) => env.block_on(c.batch_receive_with(policy)),
            TConsumer::Blocking(c) => c.batch_receive_with(policy),
        }
    }

    /// A batch by the consumer's own policy.
    pub fn batch_receive(&self) -> Result<Vec<Message>, Error> {
        match self {
            TConsumer::Async(env, c) => env.block_on(c.batch_receive()),
            TConsumer::Blocking(c) => c.batch_receive(),
        }
    }

    /// Pauses the consumer.
    pub fn pause(&self) -> Result<(), Error> {
        match self {
            TConsumer::Async(_, c) => c.pause(),
            TConsumer::Blocking(c) => c.pause(),
        }
    }

    /// Resumes the consumer.
    pub fn resume(&self) -> Result<(), Error> {
        match self {
            TConsumer::Async(_, c) => c.resume(),
            TConsumer::Blocking(c) => c.resume(),
        }
    }

    /// Whether it is paused.
    pub fn is_paused(&self) -> bool {
        match self {
            TConsumer::Async(_, c) => c.is_paused(),
            TConsumer::Blocking(c) => c.is_paused(),
        }
    }

    /// Publishes `m` again to the retry-letter topic after `delay`, with `properties`.
    pub fn reconsume_later(
        &self,
        m: &Message,
        delay: Duration,
        properties: Vec<(String, String)>,
    ) -> Result<(), Error> {
        match self {
            TConsumer::Async(env, c) => env.block_on(c.reconsume_later(m, delay, properties)),
            TConsumer::Blocking(c) => c.reconsume_later(m, delay, properties),
        }
    }

    /// Acknowledges by topic and id.
    pub fn ack_topic_id(&self, id: &TopicMessageId) -> Result<(), Error> {
        match self {
            TConsumer::Async(_, c) => c.ack_topic_id(id),
            TConsumer::Blocking(c) => c.ack_topic_id(id),
        }
    }

    /// Hands every message to `f` (the consumer's listener), until [`TListener::stop`].
    pub fn listen(
        self,
        f: impl FnMut(ListenerAck<'_>, Message) + Send + 'static,
    ) -> Result<TListener, Error> {
        let mut f = f;
        match self {
            TConsumer::Async(env, c) => c
                .listen(move |c, m| f(ListenerAck::Async(c), m))
                .map(|l| TListener::Async(env, l)),
            TConsumer::Blocking(c) => c
                .listen(move |c, m| f(ListenerAck::Blocking(c), m))
                .map(TListener::Blocking),
        }
    }

    /// Negatively acknowledges `m`.
    pub fn nack(&self, m: &Message) -> Result<(), Error> {
        match self {
            TConsumer::Async(_, c) => c.nack(m),
            TConsumer::Blocking(c) => c.nack(m),
        }
    }

    /// Seeks the subscription or reader.
    pub fn seek(&self, to: SeekTo) -> Result<(), Error> {
        match self {
            TConsumer::Async(env, c) => env.block_on(c.seek(to)),
            TConsumer::Blocking(c) => c.seek(to),
        }
    }

    /// Closes it.
    pub fn close(self) -> Result<(), Error> {
        match self {
            TConsumer::Async(env, c) => env.block_on(c.close()),
            TConsumer::Blocking(c) => c.close(),
        }
    }
}

/// The consumer a listener callback gets, of any runtime.
#[derive(Debug)]
pub enum ListenerAck<'a> {
    /// tokio or smol.
    Async(&'a pulsar_async::Consumer),
    /// The blocking adapter.
    Blocking(&'a pulsar_blocking::Consumer),
}

impl ListenerAck<'_> {
    /// Acknowledges `m`.
    pub fn ack(&self, m: &Message) -> Result<(), Error> {
        match self {
            ListenerAck::Async(c) => c.ack(m),
            ListenerAck::Blocking(c) => c.ack(m),
        }
    }
}

/// A listener of any runtime.
#[derive(Debug)]
pub enum TListener {
    /// tokio or smol.
    Async(Env, pulsar_async::Listener),
    /// The blocking adapter.
    Blocking(pulsar_blocking::Listener),
}

impl TListener {
    /// Stops it and gives the consumer back.
    pub fn stop(self) -> Result<TConsumer, Error> {
        match self {
            TListener::Async(env, l) => env
                .block_on(l.stop())
                .map(|c| TConsumer::Async(env.clone(), c)),
            TListener::Blocking(l) => l.stop().map(TConsumer::Blocking),
        }
    }
}

/// A reader of any runtime.
#[derive(Debug)]
pub enum TReader {
    /// tokio or smol, with the environment its futures run in.
    Async(Env, pulsar_async::Reader),
    /// The blocking adapter.
    Blocking(pulsar_blocking::Reader),
}

impl TReader {
    /// The next message, which must come within [`RECEIVE`].
    pub fn receive(&mut self) -> Result<Message, Box<dyn std::error::Error>> {
        match self {
            TReader::Async(env, r) => Ok(env
                .timeout(RECEIVE, r.next())
                .ok_or("no message within the timeout")?
                .ok_or("reader ended")??),
            TReader::Blocking(r) => Ok(r
                .receive_timeout(RECEIVE)?
                .ok_or("no message within the timeout")?),
        }
    }

    /// Whether a message is available to read.
    pub fn has_message_available(&self) -> Result<bool, Error> {
        match self {
            TReader::Async(env, r) => env.block_on(r.has_message_available()),
            TReader::Blocking(r) => r.has_message_available(),
        }
    }

    /// Seeks the subscription or reader.
    pub fn seek(&self, to: SeekTo) -> Result<(), Error> {
        match self {
            TReader::Async(env, r) => env.block_on(r.seek(to)),
            TReader::Blocking(r) => r.seek(to),
        }
    }

    /// Hands every message to `f` (the reader's listener), until [`TReaderListener::stop`].
    pub fn listen(self, f: impl FnMut(Message) + Send + 'static) -> Result<TReaderListener, Error> {
        let mut f = f;
        match self {
            TReader::Async(env, r) => r
                .listen(move |_, m| f(m))
                .map(|l| TReaderListener::Async(env, l)),
            TReader::Blocking(r) => r.listen(move |_, m| f(m)).map(TReaderListener::Blocking),
        }
    }
}

/// A reader's listener of any runtime.
#[derive(Debug)]
pub enum TReaderListener {
    /// tokio or smol.
    Async(Env, pulsar_async::Listener<pulsar_async::Reader>),
    /// The blocking adapter.
    Blocking(pulsar_blocking::Listener<pulsar_blocking::Reader>),
}

impl TReaderListener {
    /// Stops it and gives the reader back.
    pub fn stop(self) -> Result<TReader, Error> {
        match self {
            TReaderListener::Async(env, l) => env
                .block_on(l.stop())
                .map(|r| TReader::Async(env.clone(), r)),
            TReaderListener::Blocking(l) => l.stop().map(TReader::Blocking),
        }
    }
}

/// A client event stream of any runtime.
#[derive(Debug)]
pub enum TEvents {
    /// tokio or smol, with the environment its futures run in.
    Async(Env, pulsar_async::EventStream),
    /// The blocking adapter.
    Blocking(pulsar_blocking::Events),
}

impl TEvents {
    /// The next event within `d`; `None` on timeout or when the stream ended.
    pub fn next_timeout(&mut self, d: Duration) -> Option<ClientEvent> {
        match self {
            TEvents::Async(env, s) => env.timeout(d, s.next()).flatten(),
            TEvents::Blocking(s) => s.recv_timeout(d).ok(),
        }
    }

    /// Every event that arrives within `d`.
    pub fn collect_for(&mut self, d: Duration) -> Vec<ClientEvent> {
        let deadline = Instant::now() + d;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next_timeout(left) {
                Some(e) => seen.push(e),
                None => break,
            }
        }
        seen
    }

    /// Waits until an event matching `pred` arrives (within `d`); returns every event seen.
    pub fn wait_for(
        &mut self,
        d: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> (bool, Vec<ClientEvent>) {
        let deadline = Instant::now() + d;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next_timeout(left) {
                Some(e) => {
                    let hit = matches!(&e, ClientEvent::Core(ev) if pred(ev));
                    seen.push(e);
                    if hit {
                        return (true, seen);
                    }
                }
                None => break,
            }
        }
        (false, seen)
    }
}

/// For each named test body `fn name(env: Env) -> Result<(), Box<dyn Error>>` of the calling
/// module, a module `name` with one `#[test]` per runtime: `name::tokio`, `name::smol` and
/// `name::blocking`.
#[macro_export]
macro_rules! per_runtime {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn tokio() -> ::std::result::Result<(), ::std::boxed::Box<dyn ::std::error::Error>> {
                    super::$name($crate::facade::Env::new($crate::facade::Rt::Tokio))
                }
                #[test]
                fn smol() -> ::std::result::Result<(), ::std::boxed::Box<dyn ::std::error::Error>> {
                    super::$name($crate::facade::Env::new($crate::facade::Rt::Smol))
                }
                #[test]
                fn blocking() -> ::std::result::Result<(), ::std::boxed::Box<dyn ::std::error::Error>> {
                    super::$name($crate::facade::Env::new($crate::facade::Rt::Blocking))
                }
            }
        )*
    };
}
