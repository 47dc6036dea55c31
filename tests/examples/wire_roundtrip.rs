//! Produces one message and consumes it again with raw pulsar-proto frames over a plain TCP
//! connection: `cargo run -p pulsar-tests --example wire_roundtrip [SERVICE_URL] [TOPIC]`.

use std::time::{SystemTime, UNIX_EPOCH};

use pulsar_proto::pb::base_command::Type;
use pulsar_proto::pb::{self, command_ack, command_subscribe};
use pulsar_tests::wire::WireClient;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "pulsar://127.0.0.1:6650".to_owned());
    let millis = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let topic = args
        .next()
        .unwrap_or_else(|| format!("persistent://public/default/demo-{millis}"));

    let mut client = WireClient::connect(&url)?;
    let connected = client.handshake(None)?;
    println!(
        "connected to {url}: {} (protocol {:?})",
        connected.server_version, connected.protocol_version
    );
    let lookup = client.lookup(&topic, 1)?;
    println!("lookup {topic}: {:?}", lookup.broker_service_url);

    client.send(pb::CommandProducer {
        topic: topic.clone(),
        producer_id: 1,
        request_id: 2,
        ..Default::default()
    })?;
    let producer = client
        .recv_kind(Type::ProducerSuccess)?
        .command
        .producer_success
        .ok_or("PRODUCER_SUCCESS without body")?;
    client.send(pb::CommandSubscribe {
        topic: topic.clone(),
        subscription: "demo".into(),
        sub_type: command_subscribe::SubType::Exclusive as i32,
        consumer_id: 1,
        request_id: 3,
        initial_position: Some(command_subscribe::InitialPosition::Earliest as i32),
        ..Default::default()
    })?;
    client.recv_kind(Type::Success)?;
    client.send(pb::CommandFlow {
        consumer_id: 1,
        message_permits: 1,
    })?;

    let metadata = pb::MessageMetadata {
        producer_name: producer.producer_name.clone(),
        sequence_id: 0,
        publish_time: millis,
        partition_key: Some("demo-key".into()),
        properties: vec![pb::KeyValue {
            key: "sent-by".into(),
            value: "pulsar-sansio".into(),
        }],
        ..Default::default()
    };
    let send = pb::CommandSend {
        producer_id: 1,
        sequence_id: 0,
        num_messages: Some(1),
        ..Default::default()
    };
    client.send_message(&send, &metadata, b"hello, Pulsar")?;

    let mut acked = false;
    let mut receipt = false;
    while !(acked && receipt) {
        let frame = client.recv()?;
        match frame.command.kind() {
            Some(Type::SendReceipt) => {
                let id = frame.command.send_receipt.and_then(|r| r.message_id);
                println!("sent: {id:?}");
                receipt = true;
            }
            Some(Type::Message) => {
                let message = frame.command.message.ok_or("MESSAGE without body")?;
                let payload = frame.payload.ok_or("MESSAGE without payload")?;
                println!(
                    "received {:?} key={:?} properties={:?}",
                    String::from_utf8_lossy(&payload.data),
                    payload.metadata.partition_key,
                    payload
                        .metadata
                        .properties
                        .iter()
                        .map(|p| format!("{}={}", p.key, p.value))
                        .collect::<Vec<_>>()
                );
                client.send(pb::CommandAck {
                    consumer_id: 1,
                    ack_type: command_ack::AckType::Individual as i32,
                    message_id: vec![message.message_id],
                    request_id: Some(4),
                    ..Default::default()
                })?;
                let response = client.recv_kind(Type::AckResponse)?;
                println!(
                    "acknowledged (error: {:?})",
                    response.command.ack_response.and_then(|a| a.error)
                );
                acked = true;
            }
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    client.close()?;
    Ok(())
}
