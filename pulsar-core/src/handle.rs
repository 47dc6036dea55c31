//! Handles: small `Copy` newtypes naming connections, producers, consumers, requests and sends.
//!
//! Every handle of a [`Client`](crate::Client) comes from one monotonic counter, so a value is never
//! reused, not even across handle kinds. The wire `producer_id`, `consumer_id` and `request_id` are the
//! handle values themselves, which makes dispatch of broker commands a map lookup.

use std::fmt;

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub(crate) u64);

        impl $name {
            /// The raw value (also the id used on the wire where the protocol has one).
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "#{}"), self.0)
            }
        }
    };
}

handle!(
    /// A connection to a broker (or to a proxy / the service URL).
    ConnectionId,
    "conn"
);
handle!(
    /// A producer created with [`Client::create_producer`](crate::Client::create_producer).
    ProducerId,
    "producer"
);
handle!(
    /// A consumer created with [`Client::subscribe`](crate::Client::subscribe).
    ConsumerId,
    "consumer"
);
handle!(
    /// An application request (lookup, metadata, ...) whose answer arrives as an [`Event`](crate::Event).
    RequestId,
    "request"
);
handle!(
    /// One message handed to [`Client::send`](crate::Client::send); its receipt names it.
    SendId,
    "send"
);

/// A transaction's id, given by its coordinator: `most_bits` is the coordinator's id (the partition
/// of `pulsar/system/transaction_coordinator_assign` that serves it) and `least_bits` the
/// coordinator's sequence number. Shown as `(most,least)`, as the Java client shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnId {
    /// The coordinator's id.
    pub most_bits: u64,
    /// The coordinator's sequence number.
    pub least_bits: u64,
}

impl TxnId {
    /// The id of transaction `least_bits` of coordinator `most_bits`.
    pub fn new(most_bits: u64, least_bits: u64) -> TxnId {
        TxnId {
            most_bits,
            least_bits,
        }
    }
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.most_bits, self.least_bits)
    }
}

/// Where a transaction stands (the Java client's `Transaction.State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TxnState {
    /// Sends and acknowledgements are accepted.
    Open,
    /// A commit was asked: it waits for the transaction's sends and acknowledgements, then ends
    /// the transaction at its coordinator.
    Committing,
    /// An abort was asked (or a commit turned into one after a failed operation).
    Aborting,
    /// Committed: its messages are visible and its acknowledgements applied.
    Committed,
    /// Aborted: its messages are never delivered and its acknowledgements are dropped.
    Aborted,
    /// The coordinator refused to end the transaction (not found, invalid status).
    Error,
    /// The transaction's timeout passed before a commit or abort: the coordinator aborts it.
    TimedOut,
}

/// The single monotonic source of every handle value of one client.
#[derive(Debug, Clone)]
pub(crate) struct IdGen {
    next: u64,
}

impl IdGen {
    pub(crate) fn new() -> Self {
        IdGen { next: 1 }
    }

    /// The next never-used value.
    pub(crate) fn next(&mut self) -> u64 {
        let v = self.next;
        self.next += 1;
        v
    }

    /// Whether `value` was handed out already (a request id the client did send at some point).
    pub(crate) fn issued(&self, value: u64) -> bool {
        value != 0 && value < self.next
    }

    pub(crate) fn connection(&mut self) -> ConnectionId {
        ConnectionId(self.next())
    }
    pub(crate) fn producer(&mut self) -> ProducerId {
        ProducerId(self.next())
    }
    pub(crate) fn consumer(&mut self) -> ConsumerId {
        ConsumerId(self.next())
    }
    pub(crate) fn request(&mut self) -> RequestId {
        RequestId(self.next())
    }
    pub(crate) fn send(&mut self) -> SendId {
        SendId(self.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_never_repeat_across_kinds() {
        let mut ids = IdGen::new();
        let a = ids.connection().get();
        let b = ids.producer().get();
        let c = ids.request().get();
        let d = ids.send().get();
        let e = ids.consumer().get();
        let all = [a, b, c, d, e];
        for (i, x) in all.iter().enumerate() {
            for y in all.iter().skip(i + 1) {
                assert_ne!(x, y);
            }
        }
        assert!(a < b && b < c && c < d && d < e);
        assert_eq!(ConnectionId(7).to_string(), "conn#7");
    }
}
