//! Decryption on intake against a scripted broker, with a toy decryptor (XOR with the key's first
//! byte; a key named "bad" fails): decrypted messages and batches keep their context, and each
//! crypto failure action does what Java's does: FAIL (nothing delivered, nothing acknowledged, a
//! typed error), DISCARD (acknowledged with DecryptionError), CONSUME (delivered still
//! encrypted, a batch as one message). A consumer without a decryptor fails encrypted messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pulsar_core::proto::pb::command_ack::ValidationError;
use pulsar_core::{
    ConsumerCrypto, ConsumerOptions, CryptoError, CryptoFailureAction, Event, MessageDecryptor,
    ReceiveError,
};
use pulsar_proto::{batch, pb};
use support::{message, meta, Sim};

#[derive(Debug)]
struct Xor;

impl MessageDecryptor for Xor {
    fn decrypt(
        &self,
        _now: Instant,
        metadata: &pb::MessageMetadata,
        payload: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let k = &metadata.encryption_keys[0];
        if k.key == "bad" {
            return Err(CryptoError::NoDataKey {
                keys: k.key.clone(),
            });
        }
        Ok(payload.iter().map(|b| b ^ k.value[0]).collect())
    }
}

fn encrypted(seq: u64, key: &str) -> pb::MessageMetadata {
    let mut m = meta(seq);
    m.encryption_keys = vec![pb::EncryptionKeys {
        key: key.into(),
        value: Bytes::from_static(&[0x20]),
        metadata: Vec::new(),
    }];
    m.encryption_param = Some(Bytes::from_static(&[0; 12]));
    m
}

fn xor(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| b ^ 0x20).collect()
}

fn subscribed(
    sim: &mut Sim,
    decryptor: bool,
    action: CryptoFailureAction,
) -> pulsar_core::ConsumerId {
    let mut o = ConsumerOptions::new("sub").with_ack_group_time(Duration::ZERO);
    o.crypto = ConsumerCrypto {
        decryptor: decryptor.then(|| Arc::new(Xor) as Arc<dyn MessageDecryptor>),
        failure_action: action,
    };
    sim.subscribed(o)
}

fn crypto_errors(sim: &Sim) -> Vec<CryptoError> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ReceiveFailed {
                error: ReceiveError::Crypto { error, .. },
                ..
            } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn messages_and_batches_are_decrypted_and_keep_their_context() {
    let mut sim = Sim::new();
    let c = subscribed(&mut sim, true, CryptoFailureAction::Fail);
    let conn = sim.conn_ids()[0];
    sim.inject(
        conn,
        message(c.get(), 1, &xor(b"single"), encrypted(1, "k")),
    );
    let mut body = BytesMut::new();
    for p in [&b"b0"[..], b"b1"] {
        let e = pb::SingleMessageMetadata {
            payload_size: p.len() as i32,
            ..Default::default()
        };
        batch::encode_entry(&e, p, &mut body);
    }
    let mut m = encrypted(2, "k");
    m.num_messages_in_batch = Some(2);
    sim.inject(conn, message(c.get(), 2, &xor(&body), m));
    sim.run_for(Duration::from_millis(100));
    let got = sim.drain(c);
    let payloads: Vec<&[u8]> = got.iter().map(|m| &m.payload[..]).collect();
    assert_eq!(payloads, [&b"single"[..], b"b0", b"b1"]);
    assert!(got.iter().all(|m| !m.is_encrypted()));
    let ctx = got[1].encryption.as_ref().unwrap();
    assert_eq!((ctx.keys[0].name.as_str(), ctx.batch_size), ("k", Some(2)));
    assert!(crypto_errors(&sim).is_empty());
}

#[test]
fn fail_delivers_nothing_acknowledges_nothing_and_reports() {
    for decryptor in [false, true] {
        let mut sim = Sim::new();
        let c = subscribed(&mut sim, decryptor, CryptoFailureAction::Fail);
        let conn = sim.conn_ids()[0];
        sim.inject(conn, message(c.get(), 1, b"x", encrypted(1, "bad")));
        sim.run_for(Duration::from_millis(100));
        assert!(sim.drain(c).is_empty());
        assert!(sim.acks().is_empty());
        let expected = if decryptor {
            CryptoError::NoDataKey { keys: "bad".into() }
        } else {
            CryptoError::NoDecryptor
        };
        assert_eq!(crypto_errors(&sim), [expected]);
    }
}

#[test]
fn discard_acknowledges_with_a_decryption_error() {
    let mut sim = Sim::new();
    let c = subscribed(&mut sim, true, CryptoFailureAction::Discard);
    let conn = sim.conn_ids()[0];
    sim.inject(conn, message(c.get(), 1, b"x", encrypted(1, "bad")));
    sim.run_for(Duration::from_millis(100));
    assert!(sim.drain(c).is_empty());
    let acks = sim.acks();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].message_id[0].entry_id, 1);
    assert_eq!(
        acks[0].validation_error,
        Some(ValidationError::DecryptionError as i32)
    );
}

#[test]
fn consume_delivers_the_encrypted_payload_a_batch_as_one_message() {
    let mut sim = Sim::new();
    let c = subscribed(&mut sim, false, CryptoFailureAction::Consume);
    let conn = sim.conn_ids()[0];
    let mut m = encrypted(1, "k");
    m.num_messages_in_batch = Some(3);
    m.compression = Some(1);
    sim.inject(conn, message(c.get(), 1, b"sealed", m));
    sim.run_for(Duration::from_millis(100));
    let got = sim.drain(c);
    assert_eq!(got.len(), 1);
    assert_eq!(
        &got[0].payload[..],
        b"sealed",
        "as it came: not decompressed"
    );
    assert!(got[0].is_encrypted());
    assert_eq!(got[0].id.batch_index, -1);
    let ctx = got[0].encryption.as_ref().unwrap();
    assert_eq!((ctx.batch_size, ctx.compression), (Some(3), 1));
    assert!(crypto_errors(&sim).is_empty());
}
