//! The producers of the workload as async tasks: create (sometimes cancelled while it
//! registers), send every message in the seed's mode (awaited sends, receipts awaited by tasks
//! of their own, callbacks, or `try_send` with retries), flush now and then, close or drop and
//! create again, and record every outcome the application sees.

use std::pin::pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::{select, Either};
use pulsar_async::{
    BatchingOptions, ClientHandle, CompressionType, Error, OutgoingMessage, Producer,
    ProducerBuilder, Receipt, SendError,
};
use pulsar_core::ProducerId;

use crate::sim::async_world::params::{ProducerMode, SendMode};
use crate::sim::async_world::runtime::SimRuntime;
use crate::sim::async_world::Ctx;
use crate::sim::params::ProducerSpec;

/// Why a producer incarnation stopped sending.
enum End {
    /// Its planned re-creation is due.
    Recreate,
    /// It closed or failed for good: create another.
    Over,
    /// The clients are being closed.
    Closing,
}

/// What one attempt to hand a message over did.
enum Sent {
    /// Handed over (its outcome comes later, or came already).
    Yes,
    /// Not handed over: try again after this delay.
    Retry(Duration),
    /// The producer is over.
    Over,
}

/// Producer `i` of the workload, from its first creation to the clients' close.
pub async fn producer_task(ctx: Arc<Ctx>, i: usize, start: Duration) {
    let (spec, mode, topic) = {
        let e = ctx.env();
        (
            e.fab.p.producers[i].clone(),
            e.ap.producers[i],
            e.app.producers[i].topic.clone(),
        )
    };
    let rt = ctx.runtimes[spec.client].clone();
    let client = ctx.clients[spec.client].clone();
    rt.sleep(start).await;
    let mut first = true;
    let mut recreated = false;
    loop {
        if ctx.is_closing() {
            return;
        }
        let builder = builder(&client, &topic, &spec, mode);
        let early = if first { spec.early_close } else { None };
        first = false;
        let created = match early {
            Some(d) => match select(pin!(builder.create()), rt.sleep(d)).await {
                Either::Left((r, _)) => Some(r),
                Either::Right(_) => None,
            },
            None => Some(builder.create().await),
        };
        let producer = match created {
            None => {
                ctx.env()
                    .log(format!("app {} cancels its creation", spec.label));
                let d = ctx.env().app_delay(Duration::ZERO, Duration::from_secs(2));
                rt.sleep(d).await;
                continue;
            }
            Some(Err(e)) => {
                ctx.env()
                    .log(format!("app {} create failed: {e}", spec.label));
                rt.sleep(Duration::from_secs(1)).await;
                continue;
            }
            Some(Ok(p)) => p,
        };
        {
            let mut e = ctx.env();
            e.log(format!("app {} creates {}", spec.label, producer.id()));
            e.app.producers[i].handle = Some(producer.id());
        }
        let end = send_all(&ctx, i, &spec, mode, &producer, &mut recreated).await;
        ctx.env().app.producers[i].handle = None;
        match end {
            End::Recreate => {
                if mode.drop_on_recreate {
                    let id = producer.id();
                    ctx.env().log(format!("app drops {id} (to re-create it)"));
                    drop(producer);
                    // The dropped producer closes in the background after its pending sends;
                    // a new one of the same name before that could interleave with them (and
                    // with deduplication reuse their sequence ids): wait until it is gone.
                    wait_gone(&ctx, &rt, &client, id).await;
                } else {
                    let id = producer.id();
                    ctx.env().log(format!("app closes {id} (to re-create it)"));
                    let r = producer.close().await;
                    ctx.env().log(format!("app close of {id}: {r:?}"));
                }
                let d = ctx.env().app_delay(Duration::ZERO, Duration::from_secs(2));
                rt.sleep(d).await;
            }
            End::Over => {
                drop(producer);
                rt.sleep(Duration::from_secs(1)).await;
            }
            End::Closing => return,
        }
    }
}

/// Waits until the client no longer has producer `id` (its background close ended), or the
/// clients are being closed.
async fn wait_gone(ctx: &Ctx, rt: &SimRuntime, client: &ClientHandle, id: ProducerId) {
    loop {
        if ctx.is_closing() || !client.stats().producers.iter().any(|p| p.id == id) {
            return;
        }
        rt.sleep(Duration::from_millis(100)).await;
    }
}

fn builder(
    client: &ClientHandle,
    topic: &str,
    spec: &ProducerSpec,
    mode: ProducerMode,
) -> ProducerBuilder {
    let mut b = client
        .producer(topic)
        .max_pending_messages(spec.max_pending)
        .chunking(spec.chunking)
        .block_if_queue_full(mode.send != SendMode::TrySend);
    if let Some(n) = &spec.name {
        b = b.name(n.clone());
    }
    if let Some(bs) = spec.batching {
        let mut batching =
            BatchingOptions::enabled().with_limits(bs.max_messages, 128 * 1024, bs.max_delay);
        batching.key_based = bs.key_based;
        b = b.batching(batching);
    }
    if spec.compression != 0 {
        if let Ok(c) = CompressionType::from_protocol(spec.compression) {
            b = b.compression(c);
        }
    }
    if let Some(t) = spec.send_timeout {
        b = b.send_timeout(t);
    }
    b
}

/// Sends the rest of the workload's messages on `producer`.
async fn send_all(
    ctx: &Arc<Ctx>,
    i: usize,
    spec: &ProducerSpec,
    mode: ProducerMode,
    producer: &Producer,
    recreated: &mut bool,
) -> End {
    let rt = &ctx.runtimes[spec.client];
    let mut since_flush = 0u32;
    loop {
        let (next, now, healed) = {
            let e = ctx.env();
            (e.app.producers[i].next_index, e.now(), e.fab.healed)
        };
        let recreate = spec.recreate_at.filter(|_| !*recreated && !healed);
        if recreate.is_some_and(|t| now >= t) {
            *recreated = true;
            return End::Recreate;
        }
        if next >= spec.messages {
            // Everything handed over: keep the producer until the close (or its re-creation).
            let Some(t) = recreate else {
                ctx.closing().await;
                return End::Closing;
            };
            let wake = rt.sleep(t.saturating_sub(now));
            if let Either::Left(_) = select(pin!(ctx.closing()), wake).await {
                return End::Closing;
            }
            continue;
        }
        let d = {
            let (lo, hi) = spec.interval;
            ctx.env().app_delay(lo, hi)
        };
        rt.sleep(d).await;
        if ctx.is_closing() {
            return End::Closing;
        }
        match send_one(ctx, i, spec, mode, producer, next).await {
            Sent::Yes => since_flush += 1,
            Sent::Retry(d) => {
                rt.sleep(d).await;
                continue;
            }
            Sent::Over => return End::Over,
        }
        if mode.flush_every.is_some_and(|n| since_flush >= n) {
            since_flush = 0;
            let r = producer.flush().await;
            ctx.env().app_flushed(i, next + 1, &r);
        }
    }
}

/// Hands message `index` over in the producer's mode.
async fn send_one(
    ctx: &Arc<Ctx>,
    i: usize,
    spec: &ProducerSpec,
    mode: ProducerMode,
    producer: &Producer,
    index: u32,
) -> Sent {
    let handle = producer.id();
    let payload = ctx.env().app.producers[i].payload_of(index);
    let mut message = OutgoingMessage::new(payload);
    if spec.keyed {
        message = message.with_key(format!("k{}", index % 5));
    }
    match mode.send {
        SendMode::Await => {
            ctx.env().app_sent(i, handle, index);
            let r = producer.send(message).await;
            let over = r.as_ref().is_err_and(is_over);
            ctx.env()
                .app_completed(i, handle, index, r.map_err(|e| e.to_string()), true);
            if over {
                Sent::Over
            } else {
                Sent::Yes
            }
        }
        SendMode::Callbacks => {
            // Recorded first: the callback may run before `send_with_callback` returns.
            ctx.env().app_sent(i, handle, index);
            let weak: Weak<Ctx> = Arc::downgrade(ctx);
            let callback = move |r: Result<pulsar_async::MessageId, Error>| {
                if let Some(ctx) = weak.upgrade() {
                    ctx.env()
                        .app_completed(i, handle, index, r.map_err(|e| e.to_string()), true);
                }
            };
            match producer.send_with_callback(message, callback).await {
                Ok(()) => Sent::Yes,
                Err(e) => {
                    let over = is_over(&e);
                    ctx.env()
                        .app_completed(i, handle, index, Err(format!("refused: {e}")), false);
                    if over {
                        Sent::Over
                    } else {
                        Sent::Yes
                    }
                }
            }
        }
        SendMode::Receipts => match send_async(ctx, spec, mode, producer, message).await {
            None => {
                ctx.env().log(format!(
                    "app {} gives up waiting for room for #{index}",
                    spec.label
                ));
                Sent::Retry(Duration::from_millis(50))
            }
            Some(Ok(receipt)) => {
                ctx.env().app_sent(i, handle, index);
                if ctx.env().app_chance(mode.drop_receipt) {
                    drop(receipt);
                    ctx.env()
                        .app_completed(i, handle, index, Err("receipt dropped".into()), false);
                } else {
                    let ctx2 = ctx.clone();
                    ctx.spawner.spawn(async move {
                        let r = receipt.await;
                        ctx2.env().app_completed(
                            i,
                            handle,
                            index,
                            r.map_err(|e| e.to_string()),
                            true,
                        );
                    });
                }
                Sent::Yes
            }
            Some(Err(e)) => refused(ctx, spec, &e),
        },
        SendMode::TrySend => match producer.try_send(message) {
            Ok(receipt) => {
                ctx.env().app_sent(i, handle, index);
                let ctx2 = ctx.clone();
                ctx.spawner.spawn(async move {
                    let r = receipt.await;
                    ctx2.env()
                        .app_completed(i, handle, index, r.map_err(|e| e.to_string()), true);
                });
                Sent::Yes
            }
            Err(Error::Send(SendError::QueueFull)) => Sent::Retry(Duration::from_millis(20)),
            Err(e) => refused(ctx, spec, &e),
        },
    }
}

/// `send_async`, dropped (`None`) when it still waits for room after the mode's bound.
async fn send_async(
    ctx: &Arc<Ctx>,
    spec: &ProducerSpec,
    mode: ProducerMode,
    producer: &Producer,
    message: OutgoingMessage,
) -> Option<Result<Receipt, Error>> {
    let queued = producer.send_async(message);
    let Some(bound) = mode.give_up_after else {
        return Some(queued.await);
    };
    let rt = &ctx.runtimes[spec.client];
    match select(pin!(queued), rt.sleep(bound)).await {
        Either::Left((r, _)) => Some(r),
        Either::Right(_) => None,
    }
}

/// A message refused before it was handed over: the producer is over, or try again soon.
fn refused(ctx: &Arc<Ctx>, spec: &ProducerSpec, e: &Error) -> Sent {
    ctx.env()
        .log(format!("app {} send refused: {e}", spec.label));
    if is_over(e) {
        Sent::Over
    } else {
        Sent::Retry(Duration::from_millis(50))
    }
}

/// Whether a send's error says the producer is gone for good.
fn is_over(e: &Error) -> bool {
    e.is_closed()
        || matches!(
            e,
            Error::Send(SendError::Failed(_) | SendError::UnknownProducer(_))
        )
}
