//! Producer and consumer interceptors on the real broker, on tokio, smol and the blocking
//! adapter: what `before_send` adds reaches the consumer, `before_consume` sees every delivery,
//! and the acknowledgement hooks are told of every send, acknowledgement, negative
//! acknowledgement and ack-timeout redelivery.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pulsar_async::{
    ClientOptions, ConsumerInterceptor, ConsumerOptions, Error, InitialPosition, Message,
    MessageId, OutgoingMessage, ProducerInterceptor, SendError, SubscriptionType,
};
use pulsar_tests::facade::{Env, Rt, TClient};
use pulsar_tests::support::{self, unique_topic};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Default)]
struct Counting {
    before_send: AtomicUsize,
    acknowledged: Mutex<Vec<MessageId>>,
    send_failures: AtomicUsize,
    before_consume: AtomicUsize,
    acks: AtomicUsize,
    nacks: AtomicUsize,
    ack_timeouts: Mutex<Vec<(String, MessageId)>>,
}

impl ProducerInterceptor for Counting {
    fn before_send(&self, topic: &str, message: OutgoingMessage) -> OutgoingMessage {
        let n = self.before_send.fetch_add(1, Ordering::SeqCst);
        assert!(topic.contains("interceptors"), "{topic}");
        message.with_property("intercepted", n.to_string())
    }

    fn on_send_acknowledgement(&self, _topic: &str, result: Result<&MessageId, &SendError>) {
        match result {
            Ok(id) => self
                .acknowledged
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(*id),
            Err(_) => {
                self.send_failures.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

impl ConsumerInterceptor for Counting {
    fn before_consume(&self, message: Message) -> Message {
        self.before_consume.fetch_add(1, Ordering::SeqCst);
        message
    }

    fn on_acknowledge(&self, _id: &MessageId, result: Result<(), &Error>) {
        assert!(result.is_ok(), "{result:?}");
        self.acks.fetch_add(1, Ordering::SeqCst);
    }

    fn on_negative_acks_send(&self, ids: &[MessageId]) {
        self.nacks.fetch_add(ids.len(), Ordering::SeqCst);
    }

    fn on_ack_timeout_send(&self, topic: &str, ids: &[MessageId]) {
        let mut seen = self
            .ack_timeouts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.extend(ids.iter().map(|id| (topic.to_owned(), *id)));
    }
}

fn run(rt: Rt) -> TestResult {
    const N: usize = 20;
    let env = Env::new(rt);
    let client = env.client(ClientOptions::new(&support::broker().service_url))?;
    let topic = unique_topic("interceptors");
    let seen = Arc::new(Counting::default());
    let mut options = ConsumerOptions::new("interceptors");
    options.initial_position = InitialPosition::Earliest;
    // Shared: the broker counts the redeliveries of a negatively acknowledged message
    options.subscription_type = SubscriptionType::Shared;
    options.negative_ack_delay = Duration::from_millis(100);
    // m1 is left unacknowledged once: the ack timeout asks for it again
    options.ack_timeout = Some(Duration::from_secs(1));
    let (p, c): (Arc<dyn ProducerInterceptor>, Arc<dyn ConsumerInterceptor>) =
        (seen.clone(), seen.clone());
    let mut received = Vec::new();
    let mut timed_out = Vec::new();
    match &client {
        TClient::Async(env, h) => env.block_on(async {
            let consumer = h
                .consumer(&topic)
                .options(options)
                .interceptor(c)
                .subscribe()
                .await?;
            let producer = h.producer(&topic).interceptor(p).create().await?;
            for i in 0..N {
                producer.send(format!("m{i}")).await?;
            }
            // the first message negatively acknowledged once, then everything acknowledged
            while received.len() < N {
                // (receive and receive_timeout in turn: both go through the interceptors)
                let m = if received.len() % 2 == 0 {
                    consumer.receive().await?
                } else {
                    let wait = Duration::from_secs(30);
                    consumer
                        .receive_timeout(wait)
                        .await?
                        .expect("a message within 30 s")
                };
                if m.redelivery_count == 0 && m.payload.as_ref() == b"m0" {
                    consumer.nack(&m)?;
                } else if m.redelivery_count == 0 && m.payload.as_ref() == b"m1" {
                    timed_out.push(m.id);
                } else {
                    consumer.ack(&m)?;
                    received.push(m);
                }
            }
            producer.close().await?;
            consumer.close().await
        })?,
        TClient::Blocking(h) => {
            let consumer = h
                .consumer(&topic)
                .options(options)
                .interceptor(c)
                .subscribe()?;
            let producer = h.producer(&topic).interceptor(p).create()?;
            for i in 0..N {
                producer.send(format!("m{i}"))?;
            }
            while received.len() < N {
                let m = if received.len() % 2 == 0 {
                    consumer.receive()?
                } else {
                    let wait = Duration::from_secs(30);
                    consumer.receive_timeout(wait)?.ok_or("nothing in 30 s")?
                };
                if m.redelivery_count == 0 && m.payload.as_ref() == b"m0" {
                    consumer.nack(&m)?;
                } else if m.redelivery_count == 0 && m.payload.as_ref() == b"m1" {
                    timed_out.push(m.id);
                } else {
                    consumer.ack(&m)?;
                    received.push(m);
                }
            }
            producer.close()?;
            consumer.close()?;
        }
    }
    client.close()?;
    // every message carries the property before_send added, in send order
    received.sort_by_key(|m| m.id);
    for (i, m) in received.iter().enumerate() {
        assert_eq!(
            m.property("intercepted"),
            Some(i.to_string().as_str()),
            "{rt:?}"
        );
    }
    assert_eq!(seen.before_send.load(Ordering::SeqCst), N, "{rt:?}");
    let acknowledged = seen
        .acknowledged
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut ids: Vec<MessageId> = received.iter().map(|m| m.id).collect();
    ids.sort();
    let mut sent = acknowledged;
    sent.sort();
    assert_eq!(
        sent, ids,
        "{rt:?}: one send acknowledgement per message, with its id"
    );
    assert_eq!(seen.send_failures.load(Ordering::SeqCst), 0, "{rt:?}");
    assert_eq!(seen.before_consume.load(Ordering::SeqCst), N + 2, "{rt:?}");
    assert_eq!(seen.acks.load(Ordering::SeqCst), N, "{rt:?}");
    assert_eq!(seen.nacks.load(Ordering::SeqCst), 1, "{rt:?}");
    // the message left unacknowledged, reported once by its entry (no batch index)
    let reported = seen
        .ack_timeouts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(timed_out.len(), 1, "{rt:?}: m1 left unacknowledged once");
    let entry = |id: &MessageId| (id.ledger_id, id.entry_id, id.partition);
    let expected: Vec<_> = timed_out
        .iter()
        .map(|id| (topic.clone(), entry(id)))
        .collect();
    let got: Vec<_> = reported
        .iter()
        .map(|(t, id)| (t.clone(), entry(id)))
        .collect();
    assert_eq!(got, expected, "{rt:?}: ack-timeout redeliveries");
    assert!(
        reported.iter().all(|(_, id)| id.batch_index == -1),
        "{reported:?}"
    );
    Ok(())
}

#[test]
fn interceptors_on_tokio() -> TestResult {
    run(Rt::Tokio)
}

#[test]
fn interceptors_on_smol() -> TestResult {
    run(Rt::Smol)
}

#[test]
fn interceptors_on_blocking() -> TestResult {
    run(Rt::Blocking)
}
