//! What a seed decides for the async layer on top of [`Params`]: the sockets' send buffers and
//! how the application uses the async API (a stream of its own, so the core simulation's
//! parameters of a seed stay the same).

use std::fmt;

use crate::sim::params::Params;
use crate::sim::rng::SimRng;

/// How a producer hands messages over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// `send(..).await`: one message at a time, each waiting for its receipt.
    Await,
    /// `send_async(..).await`, each receipt awaited by a task of its own (waiting for room
    /// when the queue is full).
    Receipts,
    /// `send_with_callback`.
    Callbacks,
    /// `try_send` on a producer that does not block: a full queue fails with `QueueFull` and
    /// the application retries later.
    TrySend,
}

/// How a consumer takes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    /// `StreamExt::next`.
    Stream,
    /// `receive().await`.
    Receive,
    /// `receive_batch(n, ..)` (readers, which have none, use the stream).
    Batch,
}

/// A producer's use of the async API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProducerMode {
    /// How messages are handed over.
    pub send: SendMode,
    /// `flush().await` after every this many messages (then every send before must have its
    /// outcome).
    pub flush_every: Option<u32>,
    /// Share of receipts dropped without being awaited (mode `Receipts`).
    pub drop_receipt: f64,
    /// The planned re-creation drops the producer instead of `close().await`.
    pub drop_on_recreate: bool,
    /// A `send_async` still waiting for room after this long is dropped (cancelled) and the
    /// message handed over again later (mode `Receipts`).
    pub give_up_after: Option<std::time::Duration>,
}

/// A consumer's use of the async API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsumerMode {
    /// How messages are taken.
    pub receive: ReceiveMode,
    /// The planned re-subscription drops the consumer instead of `close().await`.
    pub drop_on_recreate: bool,
    /// Individual acknowledgements wait for the broker's confirmation (`ack_with_receipt`, on
    /// consumers that ask for ack receipts).
    pub await_ack_receipts: bool,
}

/// See the [module documentation](self).
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncParams {
    /// Bytes a socket holds in flight towards the broker before writes wait.
    pub socket_buffer: usize,
    /// One per producer of [`Params::producers`].
    pub producers: Vec<ProducerMode>,
    /// One per consumer of [`Params::consumers`].
    pub consumers: Vec<ConsumerMode>,
}

impl AsyncParams {
    /// The async parameters of `p`'s seed.
    pub fn from_params(p: &Params) -> AsyncParams {
        let mut r = SimRng::new(p.seed ^ 0xA5A5_0000_0000_0004);
        let socket_buffer = if r.chance(0.5) {
            r.range(512, 4_096) as usize
        } else {
            r.range(16_384, 262_144) as usize
        };
        let mut producers: Vec<ProducerMode> = p
            .producers
            .iter()
            .map(|spec| {
                let send = match r.range(0, 3) {
                    0 => SendMode::Await,
                    1 => SendMode::Receipts,
                    2 => SendMode::Callbacks,
                    _ if spec.max_pending > 0 => SendMode::TrySend,
                    _ => SendMode::Receipts,
                };
                ProducerMode {
                    send,
                    flush_every: r.chance(0.4).then(|| r.range(1, 10) as u32),
                    drop_receipt: if r.chance(0.3) { 0.1 } else { 0.0 },
                    drop_on_recreate: r.chance(0.5),
                    give_up_after: None,
                }
            })
            .collect();
        let mut consumers: Vec<ConsumerMode> = p
            .consumers
            .iter()
            .map(|_| ConsumerMode {
                receive: match r.range(0, 2) {
                    0 => ReceiveMode::Stream,
                    1 => ReceiveMode::Receive,
                    _ => ReceiveMode::Batch,
                },
                drop_on_recreate: r.chance(0.5),
                await_ack_receipts: false,
            })
            .collect();
        // Later additions draw from their own stream, so that the draws above stay the same.
        let mut x = SimRng::new(p.seed ^ 0xA5A5_0000_0000_0006);
        for m in &mut producers {
            if m.send == SendMode::Receipts && x.chance(0.5) {
                m.give_up_after = Some(std::time::Duration::from_millis(x.range(1, 500)));
            }
        }
        for (m, spec) in consumers.iter_mut().zip(&p.consumers) {
            m.await_ack_receipts = spec.acks.receipts && x.chance(0.5);
        }
        AsyncParams {
            socket_buffer,
            producers,
            consumers,
        }
    }
}

impl fmt::Display for AsyncParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "async: socket buffer {} B", self.socket_buffer)?;
        for (i, m) in self.producers.iter().enumerate() {
            write!(f, "; P{i} {m:?}")?;
        }
        for (i, m) in self.consumers.iter().enumerate() {
            write!(f, "; C{i} {m:?}")?;
        }
        Ok(())
    }
}
