//! Helpers shared by the producer tests: holding receipts back, reading what the broker received,
//! opening batches.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use pulsar_core::compression::{decompress, CompressionType};
use pulsar_core::{ClientConfig, Event, MessageId, ProducerId, ProducerOptions, SendError, SendId};
use pulsar_proto::pb::{self, base_command::Type};

use crate::support::{HookCtx, Reply, Sim, SERVICE};

/// A SEND the broker received, decoded.
#[derive(Debug, Clone)]
pub struct Sent {
    pub conn: pulsar_core::ConnectionId,
    pub broker: String,
    pub send: pb::CommandSend,
    pub metadata: pb::MessageMetadata,
    pub payload: Bytes,
}

impl Sent {
    /// The payload, decompressed.
    pub fn plain(&self) -> Bytes {
        let kind = CompressionType::from_protocol(self.metadata.compression.unwrap_or(0)).unwrap();
        if kind == CompressionType::None {
            return self.payload.clone();
        }
        let size = self.metadata.uncompressed_size.unwrap() as usize;
        decompress(kind, &self.payload, size, 64 << 20).unwrap()
    }

    /// The entries of a batch (decompressed).
    pub fn entries(&self) -> Vec<(pb::SingleMessageMetadata, Bytes)> {
        let n = self.metadata.num_messages_in_batch.expect("a batch") as u32;
        pulsar_proto::batch::split(self.plain(), n)
            .map(|e| {
                let e = e.unwrap();
                (e.metadata, e.payload)
            })
            .collect()
    }
}

/// Every SEND received so far, in order.
pub fn sent(sim: &Sim) -> Vec<Sent> {
    sim.received_of(Type::Send)
        .into_iter()
        .map(|r| {
            let p = r.payload.expect("SEND carries a payload");
            Sent {
                conn: r.conn,
                broker: r.broker,
                send: r.command.send.as_deref().unwrap().clone(),
                metadata: p.metadata,
                payload: p.data,
            }
        })
        .collect()
}

/// The completions reported so far, in order.
pub fn completions(sim: &Sim) -> Vec<(SendId, Result<MessageId, SendError>)> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::SendCompleted { send, result, .. } => Some((*send, result.clone())),
            _ => None,
        })
        .collect()
}

/// Whether the broker answers SENDs (on by default after [`hold`]: off).
#[derive(Clone)]
pub struct Receipts {
    pub auto: Rc<Cell<bool>>,
    pub held: Rc<RefCell<Vec<pb::CommandSend>>>,
}

impl Receipts {
    /// Receipts for every held SEND, in order (ledger 7, entries from `first_entry`).
    pub fn release(&self, sim: &mut Sim, first_entry: u64) {
        sim.run_until_idle();
        let held: Vec<pb::CommandSend> = self.held.borrow_mut().drain(..).collect();
        let conn = sim.conn_ids()[0];
        for (i, s) in held.iter().enumerate() {
            sim.inject(
                conn,
                receipt(s.producer_id, s.sequence_id, 7, first_entry + i as u64),
            );
        }
    }
}

/// The service broker keeps SEND receipts to itself (they can be released or injected).
pub fn hold(sim: &mut Sim) -> Receipts {
    hold_then(sim, |_, _| None)
}

/// Like [`hold`], with `other` answering everything but SEND.
pub fn hold_then(
    sim: &mut Sim,
    mut other: impl FnMut(&HookCtx, &pb::BaseCommand) -> Option<Vec<Reply>> + 'static,
) -> Receipts {
    let r = Receipts {
        auto: Rc::new(Cell::new(false)),
        held: Rc::new(RefCell::new(Vec::new())),
    };
    let (auto, held) = (r.auto.clone(), r.held.clone());
    sim.hook(SERVICE, move |ctx, cmd| {
        let Some(s) = cmd.send.as_deref() else {
            return other(ctx, cmd);
        };
        if auto.get() {
            return None;
        }
        held.borrow_mut().push(s.clone());
        Some(vec![])
    });
    r
}

/// A SEND_RECEIPT.
pub fn receipt(producer: u64, seq: u64, ledger: u64, entry: u64) -> Reply {
    Reply::Cmd(
        pb::CommandSendReceipt {
            producer_id: producer,
            sequence_id: seq,
            message_id: Some(pb::MessageIdData {
                ledger_id: ledger,
                entry_id: entry,
                ..Default::default()
            }),
            ..Default::default()
        }
        .into(),
    )
}

/// A client whose wall clock reads `unix_ms` at the start.
pub fn sim_at(unix_ms: u64) -> Sim {
    let mut config = ClientConfig::new("pulsar://svc:6650").with_seed(1);
    config.unix_time_ms = unix_ms;
    Sim::with_config(config)
}

/// Creates a producer and runs until it is ready.
pub fn ready(sim: &mut Sim, topic: &str, options: ProducerOptions) -> ProducerId {
    let p = sim.client.create_producer(sim.now, topic, options).unwrap();
    sim.run_until_seen(
        Duration::from_secs(5),
        |e| matches!(e, Event::ProducerReady { producer, .. } if *producer == p),
    );
    p
}

/// Events of a kind seen so far.
pub fn count(sim: &Sim, pred: impl Fn(&Event) -> bool) -> usize {
    sim.events.iter().filter(|(_, e)| pred(e)).count()
}
