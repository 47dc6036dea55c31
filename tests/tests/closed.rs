//! Closed means closed, on every runtime, against the real broker: once the client is closed,
//! every public operation of its producers, consumers and readers (and of the client) fails with
//! a "closed" error (`Error::is_closed`), the kind a send reports; a consumer's stream ends.
//! Before closing, the producer's statistics count messages and batches apart.
//!
//! tokio and smol share pulsar-async's API (only the driver's runtime differs); the blocking
//! adapter has its own API over the same state, so it is checked call by call too.

use std::time::Duration;

use futures::StreamExt;
use pulsar_async::core::Error as CoreError;
use pulsar_async::{
    BatchingOptions, ClientHandle, ClientOptions, Error, InitialPosition, Launch, MessageId,
    SeekTo, SendError,
};
use pulsar_tests::support::{self, unique_topic};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MESSAGES: usize = 50;

fn options() -> ClientOptions {
    let mut o = ClientOptions::new(&support::broker().service_url);
    o.core.operation_timeout = Duration::from_secs(30);
    o
}

/// `r` failed with a "closed" error, the client's (`ClientClosed`) when `client` says so.
#[track_caller]
fn closed<T: std::fmt::Debug>(what: &str, r: Result<T, Error>, client: bool) {
    match r {
        Err(e) => {
            assert!(e.is_closed(), "{what}: not a closed error: {e:?}");
            if client {
                assert!(
                    matches!(
                        e,
                        Error::Client(CoreError::ClientClosed)
                            | Error::Send(SendError::ClientClosed)
                    ),
                    "{what}: {e:?}"
                );
            }
        }
        Ok(v) => panic!("{what} succeeded after close: {v:?}"),
    }
}

fn batching() -> BatchingOptions {
    BatchingOptions::enabled().with_limits(10, 1 << 20, Duration::from_millis(5))
}

// ------------------------------------------------------------------------------------- async

/// Produces `MESSAGES` batched messages (checking the producer's statistics), receives one,
/// closes the client, then calls everything.
async fn every_operation_async(client: ClientHandle, runtime: &str) -> TestResult {
    let topic = unique_topic(&format!("closed-{runtime}"));
    let producer = client
        .producer(&topic)
        .batching(batching())
        .create()
        .await?;
    let consumer = client
        .consumer(&topic)
        .subscription("s")
        .initial_position(InitialPosition::Earliest)
        .configure(|o| o.ack_receipts = true)
        .subscribe()
        .await?;
    let mut reader = client.reader(&topic).create().await?;
    for i in 0..MESSAGES {
        drop(producer.send_async(format!("m{i}")).await?);
    }
    producer.flush().await?;
    let stats = producer.stats().ok_or("producer stats")?;
    assert_eq!(stats.messages_sent, MESSAGES as u64, "{stats:?}");
    assert_eq!(stats.messages_acked, MESSAGES as u64, "{stats:?}");
    assert!(
        stats.batches_sent >= (MESSAGES / 10) as u64 && stats.batches_sent < MESSAGES as u64,
        "batches of up to 10 messages: {stats:?}"
    );
    assert_eq!(stats.receipts_received, stats.batches_sent, "{stats:?}");
    assert!(stats.bytes_sent >= 2 * MESSAGES as u64, "{stats:?}");
    let message = consumer.receive().await?;
    reader.next().await.ok_or("reader ended")??;
    let id = message.id;

    client.close().await?;
    assert!(client.is_closed());

    // producer
    closed("send", producer.send("x").await, true);
    closed("send_async", producer.send_async("x").await.map(drop), true);
    closed("try_send", producer.try_send("x").map(drop), true);
    closed(
        "send_with_callback",
        producer.send_with_callback("x", |_| {}).await,
        true,
    );
    closed("flush", producer.flush().await, true);
    // consumer
    closed("receive", consumer.receive().await, true);
    closed("try_receive", consumer.try_receive(), true);
    closed(
        "receive_batch",
        consumer.receive_batch(10, 1 << 20).await,
        true,
    );
    closed("ack", consumer.ack(&message), true);
    closed("ack_id", consumer.ack_id(&id), true);
    closed(
        "ack_with_receipt",
        consumer.ack_with_receipt(&message).await,
        true,
    );
    closed("ack_cumulative", consumer.ack_cumulative(&message), true);
    closed("nack", consumer.nack(&message), true);
    closed("nack_id", consumer.nack_id(&id), true);
    closed(
        "redeliver_unacknowledged",
        consumer.redeliver_unacknowledged(),
        true,
    );
    closed(
        "reconsume_later",
        consumer
            .reconsume_later(&message, Duration::from_secs(1), Vec::new())
            .await,
        true,
    );
    closed(
        "seek",
        consumer.seek(SeekTo::Id(MessageId::EARLIEST)).await,
        true,
    );
    closed("last_message_ids", consumer.last_message_ids().await, true);
    closed(
        "has_message_available",
        consumer.has_message_available().await,
        true,
    );
    // reader
    closed("reader receive", reader.receive().await, true);
    closed("reader try_receive", reader.try_receive(), true);
    closed(
        "reader has_message_available",
        reader.has_message_available().await,
        true,
    );
    closed(
        "reader seek",
        reader.seek(SeekTo::Id(MessageId::EARLIEST)).await,
        true,
    );
    closed(
        "reader last_message_ids",
        reader.last_message_ids().await,
        true,
    );
    assert!(reader.next().await.is_none(), "the reader's stream ends");
    // client
    closed("lookup_topic", client.lookup_topic(&topic).await, true);
    closed("partitions", client.partitions(&topic).await, true);
    closed(
        "topics_of_namespace",
        client
            .topics_of_namespace("public/default", pulsar_async::core::TopicsMode::Persistent)
            .await,
        true,
    );
    closed("producer", client.producer(&topic).create().await, true);
    closed(
        "consumer",
        client.consumer(&topic).subscription("t").subscribe().await,
        true,
    );
    closed("reader", client.reader(&topic).create().await, true);
    // The consumer's stream ends; closing what the client closed succeeds.
    let mut consumer = consumer;
    assert!(
        consumer.next().await.is_none(),
        "the consumer's stream ends"
    );
    producer.close().await?;
    reader.close().await?;
    // (unsubscribe needs the broker: closed too)
    closed("unsubscribe", consumer.unsubscribe().await, true);
    client.close().await?;
    Ok(())
}

#[test]
fn every_operation_after_close_says_closed_tokio() -> TestResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = pulsar_tokio::Tokio::launch(options())?;
        every_operation_async(client.handle().clone(), "tokio").await
    })
}

#[test]
fn every_operation_after_close_says_closed_smol() -> TestResult {
    smol::block_on(async {
        let client = pulsar_smol::Smol::launch(options())?;
        every_operation_async(client.handle().clone(), "smol").await
    })
}

// ---------------------------------------------------------------------------------- blocking

#[test]
fn every_operation_after_close_says_closed_blocking() -> TestResult {
    let client = pulsar_blocking::Blocking::launch(options())?;
    let topic = unique_topic("closed-blocking");
    let producer = client.producer(&topic).batching(batching()).create()?;
    let consumer = client
        .consumer(&topic)
        .subscription("s")
        .initial_position(InitialPosition::Earliest)
        .configure(|o| o.ack_receipts = true)
        .subscribe()?;
    let mut reader = client.reader(&topic).create()?;
    for i in 0..MESSAGES {
        drop(producer.send_async(format!("m{i}"))?);
    }
    producer.flush()?;
    let stats = producer.stats().ok_or("producer stats")?;
    assert_eq!(stats.messages_sent, MESSAGES as u64, "{stats:?}");
    assert!(stats.batches_sent < MESSAGES as u64, "{stats:?}");
    let message = consumer.receive()?;
    reader.next().ok_or("reader ended")??;
    let id = message.id;

    client.close()?;
    assert!(client.is_closed());

    closed("send", producer.send("x"), true);
    closed("send_async", producer.send_async("x").map(drop), true);
    closed("try_send", producer.try_send("x").map(drop), true);
    closed(
        "send_with_callback",
        producer.send_with_callback("x", |_| {}),
        true,
    );
    closed("flush", producer.flush(), true);
    closed("receive", consumer.receive(), true);
    closed(
        "receive_timeout",
        consumer.receive_timeout(Duration::from_secs(1)),
        true,
    );
    closed("try_receive", consumer.try_receive(), true);
    closed(
        "receive_batch_timeout",
        consumer.receive_batch_timeout(10, 1 << 20, Duration::from_secs(1)),
        true,
    );
    closed("ack", consumer.ack(&message), true);
    closed("ack_id", consumer.ack_id(&id), true);
    closed(
        "ack_with_receipt",
        consumer.ack_with_receipt(&message),
        true,
    );
    closed("ack_cumulative", consumer.ack_cumulative(&message), true);
    closed("nack", consumer.nack(&message), true);
    closed("nack_id", consumer.nack_id(&id), true);
    closed(
        "redeliver_unacknowledged",
        consumer.redeliver_unacknowledged(),
        true,
    );
    closed(
        "reconsume_later",
        consumer.reconsume_later(&message, Duration::from_secs(1), Vec::new()),
        true,
    );
    closed("seek", consumer.seek(SeekTo::Id(MessageId::EARLIEST)), true);
    closed("last_message_ids", consumer.last_message_ids(), true);
    closed(
        "has_message_available",
        consumer.has_message_available(),
        true,
    );
    closed("reader receive", reader.receive(), true);
    closed(
        "reader receive_timeout",
        reader.receive_timeout(Duration::from_secs(1)),
        true,
    );
    closed(
        "reader has_message_available",
        reader.has_message_available(),
        true,
    );
    closed(
        "reader seek",
        reader.seek(SeekTo::Id(MessageId::EARLIEST)),
        true,
    );
    closed("reader last_message_ids", reader.last_message_ids(), true);
    assert!(reader.next().is_none(), "the reader's iterator ends");
    closed("lookup_topic", client.lookup_topic(&topic), true);
    closed("partitions", client.partitions(&topic), true);
    closed(
        "topics_of_namespace",
        client.topics_of_namespace("public/default", pulsar_async::core::TopicsMode::Persistent),
        true,
    );
    closed("producer", client.producer(&topic).create(), true);
    closed(
        "consumer",
        client.consumer(&topic).subscription("t").subscribe(),
        true,
    );
    closed("reader", client.reader(&topic).create(), true);
    let mut consumer = consumer;
    assert!(consumer.next().is_none(), "the consumer's iterator ends");
    producer.close()?;
    reader.close()?;
    closed("unsubscribe", consumer.unsubscribe(), true);
    Ok(())
}
