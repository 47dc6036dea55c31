//! The codec on the wire: raw pulsar-proto frames over a plain `std::net::TcpStream` against a real
//! broker. CONNECT → CONNECTED, PING/PONG, LOOKUP, PRODUCER, SEND → SEND_RECEIPT,
//! SUBSCRIBE + FLOW → MESSAGE → ACK.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pulsar_proto::pb::base_command::Type;
use pulsar_proto::pb::{self, command_ack, command_lookup_topic_response, command_subscribe};
use pulsar_proto::PROTOCOL_VERSION;
use pulsar_tests::support::{broker, unique_topic};
use pulsar_tests::wire::WireClient;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn connected_client() -> Result<WireClient, Box<dyn std::error::Error>> {
    let mut client = WireClient::connect(&broker().service_url)?;
    let connected = client.handshake(None)?;
    assert_eq!(connected.protocol_version, Some(PROTOCOL_VERSION));
    Ok(client)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[test]
fn connect_announces_protocol_21_and_a_message_size() -> TestResult {
    let mut client = WireClient::connect(&broker().service_url)?;
    let connected = client.handshake(None)?;
    assert_eq!(connected.protocol_version, Some(21));
    assert!(
        connected.server_version.contains("Pulsar"),
        "server version {:?}",
        connected.server_version
    );
    // the broker's default maxMessageSize is 5 MiB
    assert_eq!(connected.max_message_size, Some(5 * 1024 * 1024));
    client.close()?;
    Ok(())
}

#[test]
fn ping_is_answered_with_pong() -> TestResult {
    let mut client = connected_client()?;
    for _ in 0..3 {
        client.send(pb::CommandPing {})?;
        let pong = client.recv_kind(Type::Pong)?;
        assert!(pong.command.pong.is_some());
        assert!(pong.payload.is_none());
    }
    Ok(())
}

#[test]
fn lookup_points_at_this_broker() -> TestResult {
    let mut client = connected_client()?;
    let topic = unique_topic("wire-lookup");
    client.send(pb::CommandLookupTopic {
        topic: topic.clone(),
        request_id: 41,
        authoritative: Some(false),
        ..Default::default()
    })?;
    let frame = client.recv_kind(Type::LookupResponse)?;
    let response = frame.command.lookup_topic_response.ok_or("no body")?;
    assert_eq!(response.request_id, 41);
    assert_eq!(
        response.response,
        Some(command_lookup_topic_response::LookupType::Connect as i32),
        "{response:?}"
    );
    assert_eq!(
        response
            .broker_service_url
            .as_deref()
            .map(|u| u.trim_end_matches('/')),
        Some(broker().service_url.as_str())
    );
    assert_eq!(response.error, None);
    Ok(())
}

#[test]
fn lookup_of_an_invalid_topic_name_is_an_error() -> TestResult {
    let mut client = connected_client()?;
    client.send(pb::CommandLookupTopic {
        topic: "persistent://public/default/".into(),
        request_id: 7,
        ..Default::default()
    })?;
    let frame = client.recv_kind(Type::LookupResponse)?;
    let response = frame.command.lookup_topic_response.ok_or("no body")?;
    assert_eq!(response.request_id, 7);
    assert_eq!(
        response.response,
        Some(command_lookup_topic_response::LookupType::Failed as i32)
    );
    assert!(response.error.is_some(), "{response:?}");
    Ok(())
}

#[test]
fn produce_consume_and_ack_one_message_with_key_and_properties() -> TestResult {
    let topic = unique_topic("wire-roundtrip");
    let mut client = connected_client()?;
    let lookup = client.lookup(&topic, 100)?;
    assert_eq!(
        lookup.response,
        Some(command_lookup_topic_response::LookupType::Connect as i32)
    );

    // PRODUCER → PRODUCER_SUCCESS
    client.send(pb::CommandProducer {
        topic: topic.clone(),
        producer_id: 1,
        request_id: 1,
        ..Default::default()
    })?;
    let frame = client.recv_kind(Type::ProducerSuccess)?;
    let producer = frame.command.producer_success.ok_or("no body")?;
    assert_eq!(producer.request_id, 1);
    assert!(!producer.producer_name.is_empty());
    assert_eq!(producer.last_sequence_id, Some(-1));

    // SUBSCRIBE (from the earliest message) → SUCCESS, then FLOW
    client.send(pb::CommandSubscribe {
        topic: topic.clone(),
        subscription: "wire-sub".into(),
        sub_type: command_subscribe::SubType::Exclusive as i32,
        consumer_id: 1,
        request_id: 2,
        initial_position: Some(command_subscribe::InitialPosition::Earliest as i32),
        ..Default::default()
    })?;
    let frame = client.recv_kind(Type::Success)?;
    assert_eq!(frame.command.success.ok_or("no body")?.request_id, 2);
    client.send(pb::CommandFlow {
        consumer_id: 1,
        message_permits: 10,
    })?;

    // SEND → SEND_RECEIPT
    let properties = vec![
        pb::KeyValue {
            key: "colour".into(),
            value: "blue".into(),
        },
        pb::KeyValue {
            key: "n".into(),
            value: "42".into(),
        },
    ];
    let metadata = pb::MessageMetadata {
        producer_name: producer.producer_name.clone(),
        sequence_id: 0,
        publish_time: now_millis(),
        partition_key: Some("key-1".into()),
        properties: properties.clone(),
        ..Default::default()
    };
    let send = pb::CommandSend {
        producer_id: 1,
        sequence_id: 0,
        num_messages: Some(1),
        ..Default::default()
    };
    let payload = b"hello from pulsar-proto over a plain TcpStream";
    client.send_message(&send, &metadata, payload)?;

    // the receipt and the delivery may come in either order
    let mut receipt = None;
    let mut delivered = None;
    while receipt.is_none() || delivered.is_none() {
        let frame = client.recv()?;
        match frame.command.kind() {
            Some(Type::SendReceipt) => receipt = frame.command.send_receipt,
            Some(Type::Message) => delivered = Some(frame),
            other => return Err(format!("unexpected {other:?}: {:?}", frame.command).into()),
        }
    }
    let receipt = receipt.ok_or("no receipt")?;
    assert_eq!((receipt.producer_id, receipt.sequence_id), (1, 0));
    let stored_id = receipt.message_id.ok_or("receipt without message id")?;

    // MESSAGE: same id, key, properties and payload
    let delivered = delivered.ok_or("no message")?;
    let message = delivered.command.message.ok_or("no body")?;
    assert_eq!(message.consumer_id, 1);
    assert_eq!(
        (message.message_id.ledger_id, message.message_id.entry_id),
        (stored_id.ledger_id, stored_id.entry_id)
    );
    let received = delivered.payload.ok_or("MESSAGE without payload")?;
    assert_eq!(&received.data[..], payload);
    assert_eq!(received.metadata.partition_key.as_deref(), Some("key-1"));
    assert_eq!(received.metadata.properties, properties);
    assert_eq!(received.metadata.producer_name, producer.producer_name);
    assert_eq!(received.metadata.sequence_id, 0);
    assert_eq!(received.metadata.publish_time, metadata.publish_time);

    // ACK with a request id → ACK_RESPONSE without error
    client.send(pb::CommandAck {
        consumer_id: 1,
        ack_type: command_ack::AckType::Individual as i32,
        message_id: vec![message.message_id.clone()],
        request_id: Some(3),
        ..Default::default()
    })?;
    let frame = client.recv_kind(Type::AckResponse)?;
    let ack = frame.command.ack_response.ok_or("no body")?;
    assert_eq!(
        (ack.consumer_id, ack.request_id, ack.error),
        (1, Some(3), None)
    );

    // the broker's view: nothing left in the subscription's backlog
    let admin = broker().admin()?;
    assert!(
        admin.wait_until(Duration::from_secs(10), |a| Ok(a
            .subscription_backlog(&topic, "wire-sub")?
            == 0)),
        "backlog not empty after the ack: {:?}",
        admin.topic_stats(&topic)
    );

    // CLOSE_PRODUCER / CLOSE_CONSUMER → SUCCESS
    client.send(pb::CommandCloseProducer {
        producer_id: 1,
        request_id: 4,
        ..Default::default()
    })?;
    assert_eq!(
        client
            .recv_kind(Type::Success)?
            .command
            .success
            .ok_or("no body")?
            .request_id,
        4
    );
    client.send(pb::CommandCloseConsumer {
        consumer_id: 1,
        request_id: 5,
        ..Default::default()
    })?;
    assert_eq!(
        client
            .recv_kind(Type::Success)?
            .command
            .success
            .ok_or("no body")?
            .request_id,
        5
    );
    client.close()?;
    Ok(())
}

#[test]
fn unacked_message_is_redelivered_to_the_next_consumer() -> TestResult {
    let topic = unique_topic("wire-redeliver");
    let mut client = connected_client()?;
    client.lookup(&topic, 100)?;
    client.send(pb::CommandProducer {
        topic: topic.clone(),
        producer_id: 7,
        request_id: 1,
        ..Default::default()
    })?;
    let name = client
        .recv_kind(Type::ProducerSuccess)?
        .command
        .producer_success
        .ok_or("no body")?
        .producer_name;
    let metadata = pb::MessageMetadata {
        producer_name: name,
        sequence_id: 0,
        publish_time: now_millis(),
        ..Default::default()
    };
    client.send_message(
        &pb::CommandSend {
            producer_id: 7,
            sequence_id: 0,
            ..Default::default()
        },
        &metadata,
        b"not acked",
    )?;
    client.recv_kind(Type::SendReceipt)?;

    // consumer 1 receives without acking, asks for redelivery, receives it again, then closes
    client.send(pb::CommandSubscribe {
        topic: topic.clone(),
        subscription: "s".into(),
        sub_type: command_subscribe::SubType::Shared as i32,
        consumer_id: 1,
        request_id: 2,
        initial_position: Some(command_subscribe::InitialPosition::Earliest as i32),
        ..Default::default()
    })?;
    client.recv_kind(Type::Success)?;
    client.send(pb::CommandFlow {
        consumer_id: 1,
        message_permits: 5,
    })?;
    let first = client.recv_kind(Type::Message)?;
    let first_id = first.command.message.ok_or("no body")?.message_id;
    assert_eq!(&first.payload.ok_or("no payload")?.data[..], b"not acked");

    client.send(pb::CommandRedeliverUnacknowledgedMessages {
        consumer_id: 1,
        ..Default::default()
    })?;
    let again = client.recv_kind(Type::Message)?;
    let message = again.command.message.ok_or("no body")?;
    assert_eq!(
        (message.message_id.ledger_id, message.message_id.entry_id),
        (first_id.ledger_id, first_id.entry_id)
    );
    assert_eq!(message.redelivery_count, Some(1));
    client.send(pb::CommandCloseConsumer {
        consumer_id: 1,
        request_id: 3,
        ..Default::default()
    })?;
    client.recv_kind(Type::Success)?;

    // consumer 2 on the same subscription gets the message that was never acknowledged
    client.send(pb::CommandSubscribe {
        topic: topic.clone(),
        subscription: "s".into(),
        sub_type: command_subscribe::SubType::Shared as i32,
        consumer_id: 2,
        request_id: 4,
        ..Default::default()
    })?;
    client.recv_kind(Type::Success)?;
    client.send(pb::CommandFlow {
        consumer_id: 2,
        message_permits: 5,
    })?;
    let frame = client.recv_kind(Type::Message)?;
    let message = frame.command.message.ok_or("no body")?;
    assert_eq!(message.consumer_id, 2);
    assert_eq!(
        (message.message_id.ledger_id, message.message_id.entry_id),
        (first_id.ledger_id, first_id.entry_id)
    );
    assert_eq!(&frame.payload.ok_or("no payload")?.data[..], b"not acked");
    Ok(())
}
