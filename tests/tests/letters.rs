//! Dead letters, retry letters and batch-index acknowledgement against the real broker, each body
//! once per runtime: the dead-letter topic's initial subscription (PIP-124) keeps what was
//! dead-lettered before anyone subscribed; `reconsume_later` delivers again after the delay with
//! the properties, then dead-letters; on a broker with `acknowledgmentAtBatchIndexLevelEnabled`
//! (`scripts/pulsar-broker start --batch-index-ack`), the messages of a batch acknowledged one by
//! one are not delivered again to the next consumer of the subscription.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use pulsar_async::{
    ClientOptions, ConsumerOptions, DeadLetterPolicy, InitialPosition, Message, OutgoingMessage,
    ProducerOptions, SubscriptionType,
};
use pulsar_tests::facade::{Env, TClient, RECEIVE};
use pulsar_tests::per_runtime;
use pulsar_tests::support::{self, unique_topic, Admin, BrokerInfo};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn client_of(env: &Env, broker: &BrokerInfo) -> Result<TClient, pulsar_async::Error> {
    let mut o = ClientOptions::new(&broker.service_url);
    o.core.operation_timeout = Duration::from_secs(30);
    env.client(o)
}

fn shared(sub: &str) -> ConsumerOptions {
    let mut o = ConsumerOptions::new(sub);
    o.subscription_type = SubscriptionType::Shared;
    o.initial_position = InitialPosition::Earliest;
    o
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

per_runtime!(
    dead_letter_initial_subscription_keeps_messages,
    retry_letters_come_back_after_the_delay,
    batch_index_acks_survive_a_new_consumer,
);

/// The subscriptions of a topic and their backlogs, from the admin REST stats.
fn backlogs(admin: &Admin, topic: &str) -> Vec<(String, u64)> {
    admin
        .topic_stats(topic)
        .ok()
        .and_then(|s| {
            s.get("subscriptions")?.as_object().map(|subs| {
                subs.iter()
                    .map(|(name, sub)| {
                        let backlog = sub.get("msgBacklog").and_then(Value::as_u64);
                        (name.clone(), backlog.unwrap_or(0))
                    })
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Messages negatively acknowledged past `max_redeliver_count` go to the dead-letter topic, which
/// the client creates with the policy's initial subscription: nobody subscribed to it, and the
/// broker still kept them there for that subscription.
fn dead_letter_initial_subscription_keeps_messages(env: Env) -> TestResult {
    let broker = support::broker();
    let client = client_of(&env, broker)?;
    let admin = support::admin()?;
    let topic = unique_topic("letters-dlq");
    let dlq = format!("{topic}-dead");
    let mut o = shared("s");
    o.negative_ack_delay = Duration::from_millis(100);
    o.dead_letter = Some(
        DeadLetterPolicy::new(1)
            .with_dead_letter_topic(&dlq)
            .with_initial_subscription_name("keeper"),
    );
    let mut consumer = client.consumer(&topic, o)?;
    let producer = client.producer(&topic)?;
    for i in 0..3 {
        producer.send(OutgoingMessage::new(format!("m{i}")))?;
    }
    // first delivery and one redelivery, both negatively acknowledged
    let mut deliveries = 0;
    let deadline = Instant::now() + RECEIVE;
    while deliveries < 6 && Instant::now() < deadline {
        if let Some(m) = consumer.receive_timeout(Duration::from_secs(2))? {
            consumer.nack(&m)?;
            deliveries += 1;
        }
    }
    assert_eq!(deliveries, 6);
    // dead-lettered now, not delivered again
    assert!(consumer.receive_timeout(Duration::from_secs(1))?.is_none());
    assert!(
        admin.wait_until(Duration::from_secs(15), |a| Ok(
            backlogs(a, &dlq) == vec![("keeper".to_owned(), 3)]
        )),
        "dead-letter topic subscriptions: {:?}",
        backlogs(&admin, &dlq)
    );
    // a consumer of the initial subscription gets them (its position is the topic's start)
    let mut keeper = ConsumerOptions::new("keeper");
    keeper.initial_position = InitialPosition::Latest;
    let mut dead = client.consumer(&dlq, keeper)?;
    let mut got = BTreeSet::new();
    for _ in 0..3 {
        let m = dead.receive()?;
        assert_eq!(m.property("REAL_TOPIC"), Some(topic.as_str()));
        dead.ack(&m)?;
        got.insert(text(&m));
    }
    assert_eq!(got, ["m0", "m1", "m2"].map(String::from).into());
    dead.close()?;
    consumer.close()?;
    client.close()?;
    Ok(())
}

/// `reconsume_later` acknowledges the message and delivers a copy from the retry-letter topic
/// after the delay, with the added properties and the count; past `max_redeliver_count` the copy
/// goes to the dead-letter topic instead.
fn retry_letters_come_back_after_the_delay(env: Env) -> TestResult {
    let broker = support::broker();
    let client = client_of(&env, broker)?;
    let admin = support::admin()?;
    let topic = unique_topic("letters-retry");
    let dlq = format!("{topic}-dead");
    let mut o = shared("s");
    o.retry_enabled = true;
    o.dead_letter = Some(
        DeadLetterPolicy::new(2)
            .with_dead_letter_topic(&dlq)
            .with_initial_subscription_name("keeper"),
    );
    let mut consumer = client.consumer(&topic, o)?;
    let producer = client.producer(&topic)?;
    producer.send(OutgoingMessage::new("job").with_key("k"))?;
    let mut m = consumer.receive()?;
    for round in 1..=2u32 {
        let delay = Duration::from_millis(1500);
        let start = Instant::now();
        consumer.reconsume_later(&m, delay, vec![("round".into(), round.to_string())])?;
        m = consumer.receive()?;
        let waited = start.elapsed();
        assert!(waited >= delay - Duration::from_millis(100), "{waited:?}");
        assert_eq!(text(&m), "job");
        assert_eq!(m.key.as_deref(), Some("k"));
        assert_eq!(m.property("round"), Some(round.to_string().as_str()));
        assert_eq!(
            m.property("RECONSUMETIMES"),
            Some(round.to_string().as_str())
        );
        assert!(m.topic.ends_with("-RETRY"), "{}", m.topic);
    }
    // the third time it is dead-lettered
    consumer.reconsume_later(&m, Duration::from_millis(100), Vec::new())?;
    assert!(consumer.receive_timeout(Duration::from_secs(2))?.is_none());
    assert!(
        admin.wait_until(Duration::from_secs(15), |a| Ok(
            backlogs(a, &dlq) == vec![("keeper".to_owned(), 1)]
        )),
        "dead-letter topic subscriptions: {:?}",
        backlogs(&admin, &dlq)
    );
    // nothing left behind on the topic or its retry topic
    assert!(admin.wait_until(Duration::from_secs(15), |a| Ok(a
        .subscription_backlog(&topic, "s")?
        == 0)));
    consumer.close()?;
    client.close()?;
    Ok(())
}

/// One batch of ten; the first consumer acknowledges the even messages only (batch-index
/// acknowledgement on), then closes: the next consumer of the subscription gets exactly the odd
/// ones, because the broker keeps the batch's acknowledged indexes.
fn batch_index_acks_survive_a_new_consumer(env: Env) -> TestResult {
    let broker = support::batch_ack_broker()?;
    let client = client_of(&env, &broker)?;
    let topic = unique_topic("letters-batch-ack");
    let mut o = shared("s");
    o.batch_index_ack = true;
    let mut consumer = client.consumer(&topic, o.clone())?;
    let mut p = ProducerOptions::default();
    p.batching.enabled = true;
    p.batching.max_delay = Duration::from_secs(5);
    p.batching.max_messages = 10;
    let producer = client.producer_with(&topic, p, true)?;
    let receipts = (0..10)
        .map(|i| producer.send_async(OutgoingMessage::new(format!("m{i}"))))
        .collect::<Result<Vec<_>, _>>()?;
    producer.flush()?;
    let ids = receipts
        .into_iter()
        .map(|r| r.wait())
        .collect::<Result<Vec<_>, _>>()?;
    assert!(
        ids.iter().all(|id| id.entry_id == ids[0].entry_id),
        "not one batch: {ids:?}"
    );
    for i in 0..10 {
        let m = consumer.receive()?;
        assert_eq!(text(&m), format!("m{i}"));
        assert_eq!(m.id.batch_size, 10);
        if i % 2 == 0 {
            consumer.ack(&m)?;
        }
    }
    consumer.close()?;
    let mut again = client.consumer(&topic, o)?;
    let mut got = Vec::new();
    while let Some(m) = again.receive_timeout(Duration::from_secs(2))? {
        got.push(text(&m));
        again.ack(&m)?;
    }
    assert_eq!(got, ["m1", "m3", "m5", "m7", "m9"]);
    again.close()?;
    // all acknowledged now: nothing for a third consumer
    let mut o3 = shared("s");
    o3.batch_index_ack = true;
    let mut third = client.consumer(&topic, o3)?;
    assert!(third.receive_timeout(Duration::from_secs(1))?.is_none());
    third.close()?;
    client.close()?;
    Ok(())
}
