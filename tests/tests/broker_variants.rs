//! The broker script's variants, driven through the test-support library: a broker of the test's
//! own with token/basic authentication, TLS listeners and deduplication; tokens minted with an
//! expiry; a restart that keeps the data. Raw frames over TCP (pulsar-proto only).

use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pulsar_proto::pb::base_command::Type;
use pulsar_proto::pb::{self, command_subscribe};
use pulsar_tests::support::{unique_topic, BrokerOptions, BrokerProcess};
use pulsar_tests::wire::{WireClient, WireError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// CONNECT with the given credentials: `Ok(())` on CONNECTED, `Err(server error)` on ERROR.
fn try_connect(
    service_url: &str,
    auth: Option<(&str, &[u8])>,
) -> Result<Result<(), i32>, WireError> {
    let mut client = WireClient::connect(service_url)?;
    client.set_timeout(Duration::from_secs(15));
    client.send(pulsar_tests::wire::connect_command(auth))?;
    let frame = client.recv()?;
    match frame.command.kind() {
        Some(Type::Connected) => Ok(Ok(())),
        Some(Type::Error) => Ok(Err(frame.command.error.map(|e| e.error).unwrap_or(-1))),
        _ => Err(WireError::Unexpected {
            expected: Type::Connected,
            got: Box::new(frame.command),
        }),
    }
}

/// Sends one message with `sequence_id` and returns the receipt's (ledger, entry).
fn send(
    client: &mut WireClient,
    producer: &str,
    sequence_id: u64,
    body: &[u8],
) -> Result<(u64, u64), WireError> {
    let metadata = pb::MessageMetadata {
        producer_name: producer.to_owned(),
        sequence_id,
        publish_time: now_millis(),
        ..Default::default()
    };
    let send = pb::CommandSend {
        producer_id: 1,
        sequence_id,
        ..Default::default()
    };
    client.send_message(&send, &metadata, body)?;
    let frame = client.recv_kind(Type::SendReceipt)?;
    let id = frame
        .command
        .send_receipt
        .and_then(|r| r.message_id)
        .unwrap_or_default();
    Ok((id.ledger_id, id.entry_id))
}

#[test]
fn auth_tls_dedup_broker_and_restart() -> TestResult {
    let mut broker = BrokerProcess::start(
        BrokerOptions::new()
            .auth()
            .tls()
            .dedup()
            .auth_refresh_seconds(5),
    )?;
    let info = broker.info().clone();
    let auth = info.auth.clone().ok_or("no credentials")?;
    let tls = info.tls.clone().ok_or("no TLS files")?;
    assert!(info.dedup);
    assert_eq!(auth.refresh_seconds, 5);
    for file in [
        &tls.ca,
        &tls.other_ca,
        &tls.client_cert,
        &tls.client_key,
        &auth.secret_key,
    ] {
        assert!(file.is_file(), "{} missing", file.display());
    }
    assert!(!tls.require_client_cert);
    TcpStream::connect(info.binary_tls_addr()?)?;

    // authentication on the binary protocol
    let client_token = auth.client_token.as_bytes();
    assert_eq!(
        try_connect(&info.service_url, Some(("token", client_token)))?,
        Ok(())
    );
    let basic = format!("{}:{}", auth.basic_user, auth.basic_password);
    assert_eq!(
        try_connect(&info.service_url, Some(("basic", basic.as_bytes())))?,
        Ok(())
    );
    let auth_error = Err(pb::ServerError::AuthenticationError as i32);
    assert_eq!(try_connect(&info.service_url, None)?, auth_error);
    // One signature character changed, in the middle: the last one also carries unused padding
    // bits, so changing it may leave the signature as it was.
    let mut forged = auth.client_token.clone();
    let at = forged.rfind('.').ok_or("token without signature")? + 5;
    let other = if forged.as_bytes().get(at) == Some(&b'A') {
        "B"
    } else {
        "A"
    };
    forged.replace_range(at..at + 1, other);
    assert_ne!(forged, auth.client_token);
    assert_eq!(
        try_connect(&info.service_url, Some(("token", forged.as_bytes())))?,
        auth_error
    );
    assert_eq!(
        try_connect(&info.service_url, Some(("basic", b"client:wrong")))?,
        auth_error
    );

    // minted tokens, one of which expires
    let fresh = broker.mint_token("someone", None)?;
    assert_eq!(
        try_connect(&info.service_url, Some(("token", fresh.as_bytes())))?,
        Ok(())
    );
    let short = broker.mint_token("someone", Some(1))?;
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        try_connect(&info.service_url, Some(("token", short.as_bytes())))?,
        auth_error
    );

    // authentication on the admin API
    let admin = info.admin()?;
    let anonymous = pulsar_tests::support::Admin::new(&info.web_url, None)?;
    assert_eq!(
        anonymous.request("GET", "/admin/v2/tenants", None)?.status,
        401
    );
    assert!(admin
        .call("GET", "/admin/v2/tenants", None)?
        .contains("public"));
    let partitioned = unique_topic("variant-partitioned");
    admin.create_partitioned(&partitioned, 3)?;
    assert_eq!(admin.partitions(&partitioned)?, 3);

    // deduplication: the same sequence id twice is stored once
    let topic = unique_topic("variant-dedup");
    let mut client = WireClient::connect(&info.service_url)?;
    client.handshake(Some(("token", auth.admin_token.as_bytes())))?;
    client.lookup(&topic, 100)?;
    client.send(pb::CommandProducer {
        topic: topic.clone(),
        producer_id: 1,
        request_id: 1,
        producer_name: Some("dedup-producer".into()),
        ..Default::default()
    })?;
    client.recv_kind(Type::ProducerSuccess)?;
    let first = send(&mut client, "dedup-producer", 5, b"one")?;
    let duplicate = send(&mut client, "dedup-producer", 5, b"one again")?;
    let next = send(&mut client, "dedup-producer", 6, b"two")?;
    assert_ne!(first, (u64::MAX, u64::MAX));
    assert_eq!(duplicate, (u64::MAX, u64::MAX), "the duplicate was stored");
    assert_eq!(next.0, first.0);
    assert_eq!(next.1, first.1 + 1);
    client.close()?;

    // restart: data, topics and the deduplication state survive
    broker.restart()?;
    let info = broker.info().clone();
    assert_eq!(info.admin()?.partitions(&partitioned)?, 3);
    let mut client = WireClient::connect(&info.service_url)?;
    client.handshake(Some(("token", auth.admin_token.as_bytes())))?;
    client.lookup(&topic, 100)?;
    client.send(pb::CommandSubscribe {
        topic: topic.clone(),
        subscription: "after-restart".into(),
        sub_type: command_subscribe::SubType::Exclusive as i32,
        consumer_id: 1,
        request_id: 2,
        initial_position: Some(command_subscribe::InitialPosition::Earliest as i32),
        ..Default::default()
    })?;
    client.recv_kind(Type::Success)?;
    client.send(pb::CommandFlow {
        consumer_id: 1,
        message_permits: 10,
    })?;
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let frame = client.recv_kind(Type::Message)?;
        bodies.push(frame.payload.ok_or("no payload")?.data.to_vec());
    }
    assert_eq!(bodies, vec![b"one".to_vec(), b"two".to_vec()]);
    client.send(pb::CommandProducer {
        topic: topic.clone(),
        producer_id: 1,
        request_id: 3,
        producer_name: Some("dedup-producer".into()),
        ..Default::default()
    })?;
    let success = client.recv_kind(Type::ProducerSuccess)?;
    assert_eq!(
        success
            .command
            .producer_success
            .and_then(|p| p.last_sequence_id),
        Some(6),
        "the broker forgot the producer's last sequence id"
    );

    let home = broker.home().to_owned();
    drop(broker);
    assert!(!home.exists(), "{} left behind", home.display());
    assert!(
        TcpStream::connect(info.binary_addr()?).is_err(),
        "the broker still listens after drop"
    );
    Ok(())
}
