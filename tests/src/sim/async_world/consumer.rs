//! The consumers and readers of the workload as async tasks: subscribe (sometimes cancelled
//! while it registers), take messages in the seed's mode (stream, `receive`, `receive_batch`)
//! at the consumer's pace, acknowledge them (individually, cumulatively, negatively) after a
//! delay, seek back, close or drop and subscribe again; every message goes through the core
//! simulation's checks.

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{select, Either};
use futures::StreamExt;
use pulsar_async::{
    ClientHandle, Consumer, ConsumerOptions, Error, InitialPosition, Message, MessageId, Reader,
    ReaderOptions, SeekTo, SubscriptionType,
};
use pulsar_core::ConsumerId;

use crate::sim::async_world::params::{ConsumerMode, ReceiveMode};
use crate::sim::async_world::Ctx;
use crate::sim::params::{ConsumerSpec, SubKind};

/// Why a consumer incarnation stopped.
enum End {
    /// Its planned re-subscription is due.
    Recreate,
    /// It closed or failed for good: subscribe again.
    Over,
    /// The clients are being closed.
    Closing,
}

/// A consumer or a reader.
enum Sub {
    Consumer(Consumer),
    Reader(Reader),
}

/// Acknowledgements waiting for their time: (due, order) -> (message, negative).
type PendingAcks = BTreeMap<(Duration, u64), (Message, bool)>;

/// Consumer `i` of the workload, from its first subscription to the clients' close.
pub async fn consumer_task(ctx: Arc<Ctx>, i: usize, start: Duration) {
    let (spec, mode, topic) = {
        let e = ctx.env();
        (
            e.fab.p.consumers[i].clone(),
            e.ap.consumers[i],
            e.app.consumers[i].topic.clone(),
        )
    };
    let rt = ctx.runtimes[spec.client].clone();
    let client = ctx.clients[spec.client].clone();
    rt.sleep(start).await;
    let mut first = true;
    let mut planned = Planned::default();
    loop {
        if ctx.is_closing() {
            return;
        }
        let early = if first { spec.early_close } else { None };
        first = false;
        let created = match early {
            Some(d) => match select(pin!(subscribe(&client, &topic, &spec)), rt.sleep(d)).await {
                Either::Left((r, _)) => Some(r),
                Either::Right(_) => None,
            },
            None => Some(subscribe(&client, &topic, &spec).await),
        };
        let sub = match created {
            None => {
                ctx.env()
                    .log(format!("app {} cancels its subscription", spec.label));
                let d = ctx.env().app_delay(Duration::ZERO, Duration::from_secs(2));
                rt.sleep(d).await;
                continue;
            }
            Some(Err(e)) => {
                ctx.env()
                    .log(format!("app {} subscribe failed: {e}", spec.label));
                rt.sleep(Duration::from_secs(1)).await;
                continue;
            }
            Some(Ok(s)) => s,
        };
        let id = sub.id();
        {
            let mut e = ctx.env();
            e.log(format!("app {} subscribes as {id:?}", spec.label));
            let m = &mut e.app.consumers[i];
            m.handle = id;
            m.last_loss = None;
            m.allow_rewind();
        }
        let (sub, end) = receive_all(&ctx, i, &spec, mode, sub, &mut planned).await;
        ctx.env().app.consumers[i].handle = None;
        match end {
            End::Recreate => {
                if mode.drop_on_recreate {
                    ctx.env()
                        .log(format!("app drops {id:?} (to subscribe again)"));
                    drop(sub);
                } else {
                    ctx.env()
                        .log(format!("app closes {id:?} (to subscribe again)"));
                    let r = sub.close().await;
                    ctx.env().log(format!("app close of {id:?}: {r:?}"));
                }
                let d = ctx.env().app_delay(Duration::ZERO, Duration::from_secs(2));
                rt.sleep(d).await;
            }
            End::Over => {
                drop(sub);
                rt.sleep(Duration::from_secs(1)).await;
            }
            End::Closing => return,
        }
    }
}

/// The planned actions done so far (once per consumer, over its incarnations).
#[derive(Default)]
struct Planned {
    recreated: bool,
    sought: bool,
}

async fn subscribe(client: &ClientHandle, topic: &str, spec: &ConsumerSpec) -> Result<Sub, Error> {
    if spec.reader {
        let mut r = ReaderOptions::new(MessageId::EARLIEST);
        r.receiver_queue_size = spec.queue_size;
        r.reader_name = Some(spec.label.clone());
        r.subscription_name = Some(spec.subscription.clone());
        return client
            .reader(topic)
            .options(r)
            .create()
            .await
            .map(Sub::Reader);
    }
    let kind = match spec.kind {
        SubKind::Exclusive => SubscriptionType::Exclusive,
        SubKind::Shared => SubscriptionType::Shared,
        SubKind::Failover => SubscriptionType::Failover,
        SubKind::KeyShared => SubscriptionType::KeyShared,
    };
    let mut opts = ConsumerOptions::new(spec.subscription.clone())
        .with_type(kind)
        .with_initial_position(InitialPosition::Earliest);
    opts.receiver_queue_size = spec.queue_size;
    opts.consumer_name = Some(spec.label.clone());
    opts.durable = spec.durable;
    opts.batch_index_ack = spec.acks.batch_index_ack;
    opts.ack_receipts = spec.acks.receipts;
    opts.ack_timeout = spec.acks.ack_timeout;
    opts.negative_ack_delay = Duration::from_millis(300);
    client
        .consumer(topic)
        .options(opts)
        .subscribe()
        .await
        .map(Sub::Consumer)
}

/// Takes messages until the incarnation ends; hands the consumer back with the reason.
async fn receive_all(
    ctx: &Arc<Ctx>,
    i: usize,
    spec: &ConsumerSpec,
    mode: ConsumerMode,
    mut sub: Sub,
    planned: &mut Planned,
) -> (Sub, End) {
    let rt = &ctx.runtimes[spec.client];
    let mut acks = PendingAcks::new();
    let mut order = 0u64;
    loop {
        let (now, healed) = {
            let e = ctx.env();
            (e.now(), e.fab.healed)
        };
        run_due_acks(ctx, spec, mode, &sub, &mut acks, now).await;
        let recreate = spec.recreate_at.filter(|_| !planned.recreated && !healed);
        if recreate.is_some_and(|t| now >= t) {
            planned.recreated = true;
            return (sub, End::Recreate);
        }
        let seek = spec.seek_at.filter(|_| !planned.sought && !healed);
        if seek.is_some_and(|t| now >= t) {
            planned.sought = true;
            {
                let mut e = ctx.env();
                e.log(format!("app {} seeks to the earliest message", spec.label));
                e.app.consumers[i].allow_rewind();
            }
            let r = sub.seek(SeekTo::Id(MessageId::EARLIEST)).await;
            ctx.env().log(format!("app {} seek: {r:?}", spec.label));
            continue;
        }
        let due = [acks.keys().next().map(|k| k.0), recreate, seek]
            .into_iter()
            .flatten()
            .min();
        let taken = match due {
            Some(t) => {
                let wake = rt.sleep(t.saturating_sub(now));
                match select(pin!(take(&mut sub, mode, spec.receive_batch)), wake).await {
                    Either::Left((r, _)) => Some(r),
                    Either::Right(_) => None,
                }
            }
            None => Some(take(&mut sub, mode, spec.receive_batch).await),
        };
        let Some(taken) = taken else {
            continue;
        };
        let messages = match taken {
            Ok(m) => m,
            Err(e) => {
                let closing = ctx.is_closing();
                ctx.env()
                    .log(format!("app {} stream ended: {e:?}", spec.label));
                return (sub, if closing { End::Closing } else { End::Over });
            }
        };
        let now = ctx.env().now();
        for msg in messages {
            let nack = ctx.env().app_received(i, &msg);
            if spec.reader {
                continue;
            }
            let (lo, hi) = spec.ack_delay;
            let d = ctx.env().app_delay(lo, hi);
            order += 1;
            acks.insert((now + d, order), (msg, nack));
        }
        // the consumer's pace: the next messages wait in the receiver queue meanwhile
        let (lo, hi) = spec.poll_interval;
        let pause = ctx.env().app_delay(lo, hi);
        let until = now + pause;
        loop {
            let now = ctx.env().now();
            run_due_acks(ctx, spec, mode, &sub, &mut acks, now).await;
            if now >= until {
                break;
            }
            let next = acks.keys().next().map_or(until, |k| k.0.min(until));
            rt.sleep(next.saturating_sub(now)).await;
        }
    }
}

/// Takes the next messages: at least one (waiting for it), at most `batch`. `Err(None)`: the
/// stream ended.
async fn take(
    sub: &mut Sub,
    mode: ConsumerMode,
    batch: usize,
) -> Result<Vec<Message>, Option<Error>> {
    let first = match (mode.receive, &mut *sub) {
        (ReceiveMode::Batch, Sub::Consumer(c)) => {
            return c.receive_batch(batch, usize::MAX).await.map_err(Some);
        }
        (ReceiveMode::Receive, Sub::Consumer(c)) => c.receive().await.map_err(Some)?,
        (ReceiveMode::Receive, Sub::Reader(r)) => r.receive().await.map_err(Some)?,
        (_, Sub::Consumer(c)) => c.next().await.ok_or(None)?.map_err(Some)?,
        (_, Sub::Reader(r)) => r.next().await.ok_or(None)?.map_err(Some)?,
    };
    let mut out = vec![first];
    while out.len() < batch {
        let next = match &*sub {
            Sub::Consumer(c) => c.try_receive(),
            Sub::Reader(r) => r.try_receive(),
        };
        match next {
            Ok(Some(m)) => out.push(m),
            _ => break,
        }
    }
    Ok(out)
}

/// Acknowledges what is due (individual acks waiting for the broker's confirmation when the
/// mode says so).
async fn run_due_acks(
    ctx: &Arc<Ctx>,
    spec: &ConsumerSpec,
    mode: ConsumerMode,
    sub: &Sub,
    acks: &mut PendingAcks,
    now: Duration,
) {
    let Sub::Consumer(c) = sub else {
        acks.clear();
        return;
    };
    while let Some(entry) = acks.first_entry() {
        if entry.key().0 > now {
            break;
        }
        let (msg, nack) = entry.remove();
        let r = if nack {
            c.nack(&msg)
        } else if spec.acks.cumulative {
            c.ack_cumulative(&msg)
        } else if mode.await_ack_receipts {
            let r = c.ack_with_receipt(&msg).await;
            ctx.env().log(format!(
                "app {} ack of {} confirmed: {r:?}",
                spec.label, msg.id
            ));
            r
        } else {
            c.ack(&msg)
        };
        if let Err(e) = r {
            ctx.env().log(format!(
                "app ack {} on {} (nack {nack}) refused: {e}",
                msg.id,
                c.id()
            ));
        }
    }
}

impl Sub {
    /// The core's handle (a reader's from its stats).
    fn id(&self) -> Option<ConsumerId> {
        match self {
            Sub::Consumer(c) => Some(c.id()),
            Sub::Reader(r) => r.stats().map(|s| s.id),
        }
    }

    async fn seek(&self, to: SeekTo) -> Result<(), Error> {
        match self {
            Sub::Consumer(c) => c.seek(to).await,
            Sub::Reader(r) => r.seek(to).await,
        }
    }

    async fn close(self) -> Result<(), Error> {
        match self {
            Sub::Consumer(c) => c.close().await,
            Sub::Reader(r) => r.close().await,
        }
    }
}
