//! `tracing` spans for the lifecycle of connections (`pulsar_connection`, with the connection's
//! id and address): one span from the connect request to the close, with an event when the
//! handshake completes and one when the connection closes or fails (with the reason). Nothing
//! per message or per frame; without a subscriber a span costs a few atomic loads.

use std::collections::BTreeMap;

use pulsar_core::{BrokerAddress, ConnectionId, Error};

/// The span of every open or opening connection, and whether its handshake completed.
#[derive(Debug, Default)]
pub(super) struct ConnectionSpans {
    open: BTreeMap<ConnectionId, (tracing::Span, bool)>,
}

impl ConnectionSpans {
    /// The core asked the runtime to connect `conn` to `address`.
    pub(super) fn connecting(&mut self, conn: ConnectionId, address: &BrokerAddress) {
        let span = tracing::info_span!("pulsar_connection", conn = conn.get(), address = %address);
        tracing::debug!(parent: &span, "connecting");
        self.open.insert(conn, (span, false));
    }

    /// `conn` finished its handshake.
    pub(super) fn opened(&mut self, conn: ConnectionId) {
        if let Some((span, opened)) = self.open.get_mut(&conn) {
            *opened = true;
            tracing::info!(parent: &*span, "connection ready (handshake complete)");
        }
    }

    /// `conn` went away; its span ends here.
    pub(super) fn closed(&mut self, conn: ConnectionId, reason: &Error) {
        match self.open.remove(&conn) {
            Some((span, true)) => tracing::info!(parent: &span, %reason, "connection closed"),
            Some((span, false)) => tracing::warn!(parent: &span, %reason, "connection failed"),
            None => tracing::debug!(conn = conn.get(), %reason, "connection closed"),
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Instant;

    use pulsar_core::ConnectionId;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// Records span names and event messages, in order.
    #[derive(Default, Clone)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl Seen {
        fn push(&self, s: String) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(s);
        }
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
        }
    }

    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl Subscriber for Seen {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            self.push(format!("span {}", span.metadata().name()));
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut m = Message(String::new());
            event.record(&mut m);
            self.push(m.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn a_connection_has_one_span_from_connect_to_close() {
        let seen = Seen::default();
        let mut st = super::super::tests::state(8, Arc::default());
        tracing::subscriber::with_default(seen.clone(), || {
            let request = st
                .start_request(None, |core, now| core.lookup_topic(now, "t"))
                .unwrap();
            assert_eq!(st.connection_spans.len(), 1);
            assert_eq!(seen.take(), ["span pulsar_connection", "connecting"]);
            let conn: ConnectionId = match st.io.pop_front() {
                Some(pulsar_core::IoRequest::Connect { conn, .. }) => conn,
                other => panic!("{other:?}"),
            };
            st.core
                .handle_connect_failed(Instant::now(), conn, "refused".into())
                .unwrap();
            st.drain();
            assert_eq!(
                st.connection_spans.len(),
                0,
                "the span ends with the connection"
            );
            assert_eq!(seen.take(), ["connection failed"]);
            st.drop_request(request);
        });
    }
}
