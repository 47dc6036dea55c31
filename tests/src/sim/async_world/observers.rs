//! Tasks that watch a client the way an application can: its event stream (a consumer that
//! loses its registration may see its messages again), its stats (queues within their limits,
//! every 500 ms), and its close at the end of the run.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pulsar_async::{ClientEvent, Event};

use crate::sim::async_world::Ctx;
use crate::sim::records::queue_limit_violations;

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
        let found =
            queue_limit_violations(&e.fab.p, ci, &stats, &e.app.producers, &e.app.consumers);
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
