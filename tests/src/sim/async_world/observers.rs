//! Tasks that watch a client the way an application can: its event stream (a consumer that
//! loses its registration may see its messages again), its stats (queues within their limits,
//! every 500 ms), and its close at the end of the run.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pulsar_async::{ClientEvent, Event};

use crate::sim::async_world::Ctx;

/// Follows client `ci`'s events: a consumer reconnecting may rewind once, and the messages
/// dispatched on the connection it lost must not reach it any more.
pub async fn events_task(ctx: Arc<Ctx>, ci: usize) {
    let mut events = ctx.clients[ci].events();
    while let Some(ev) = events.next().await {
        let mut e = ctx.env();
        let now = e.now();
        match &ev {
            ClientEvent::Core(Event::ConsumerReconnecting { consumer, .. }) => {
                if let Some(m) = e
                    .app
                    .consumers
                    .iter_mut()
                    .find(|m| m.spec.client == ci && m.handle == Some(*consumer))
                {
                    m.allow_rewind();
                    m.last_loss = Some(now);
                }
            }
            ClientEvent::Lagged { missed } => {
                e.violation(format!("client {ci}'s event stream lost {missed} events"));
            }
            _ => {}
        }
        e.log(format!("client {ci} event {ev:?}"));
    }
}

/// Checks client `ci`'s queues every 500 ms until the clients close: a producer's pending
/// messages within `max_pending_messages`, a consumer's receiver queue within its size plus
/// one batch.
pub async fn limits_task(ctx: Arc<Ctx>, ci: usize) {
    let rt = ctx.runtimes[ci].clone();
    loop {
        rt.sleep(Duration::from_millis(500)).await;
        if ctx.is_closing() {
            return;
        }
        let stats = ctx.clients[ci].stats();
        let mut e = ctx.env();
        let mut found = Vec::new();
        for ps in &stats.producers {
            let Some(m) = e
                .app
                .producers
                .iter()
                .find(|m| m.spec.client == ci && m.handle == Some(ps.id))
            else {
                continue;
            };
            let limit = if m.spec.max_pending == 0 {
                1000
            } else {
                m.spec.max_pending
            };
            if ps.pending_messages > limit {
                found.push(format!(
                    "{} holds {} pending messages, above max_pending_messages {limit}",
                    m.spec.label, ps.pending_messages
                ));
            }
        }
        for cs in &stats.consumers {
            let Some(m) = e
                .app
                .consumers
                .iter()
                .find(|m| m.spec.client == ci && m.handle == Some(cs.id))
            else {
                continue;
            };
            if e.p.topics[m.spec.topic].partitions > 0 {
                continue;
            }
            // a batch may overshoot the permits by its size minus one (10 messages at most)
            let limit = m.spec.queue_size.max(1) as usize + 9;
            if cs.queued_messages > limit {
                found.push(format!(
                    "{} queues {} messages, above its receiver queue of {} (+ one batch)",
                    m.spec.label, cs.queued_messages, m.spec.queue_size
                ));
            }
        }
        for v in found {
            e.violation(v);
        }
    }
}

/// Closes client `ci` (`close().await`) and records that it finished.
pub async fn close_task(ctx: Arc<Ctx>, ci: usize) {
    ctx.env().log(format!("app closes client {ci}"));
    let r = ctx.clients[ci].close().await;
    let mut e = ctx.env();
    e.log(format!("client {ci} closed: {r:?}"));
    e.app.closed[ci] = true;
}
