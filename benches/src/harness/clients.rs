//! The clients compared, and the measurements each cannot take.

use serde::{Deserialize, Serialize};

/// A client under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ClientKind {
    /// This project on tokio (current-thread runtime).
    SansioTokio,
    /// This project on smol.
    SansioSmol,
    /// This project, blocking adapter.
    SansioBlocking,
    /// pulsar-rs (crates.io `pulsar` 6.x) on tokio (current-thread runtime).
    PulsarRs,
    /// The Java client, through `pulsar-perf`.
    Java,
    /// The official Python client (C++ core).
    Python,
}

/// A phase of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Phase {
    /// Producer throughput and CPU per message, as fast as possible.
    Produce,
    /// Draining a backlog, individual acknowledgements.
    Consume,
    /// Draining a backlog, cumulative acknowledgements.
    ConsumeCumulative,
    /// Publish latency at fixed offered rates.
    Latency,
    /// End-to-end latency at a fixed rate.
    E2e,
    /// CPU per message against payload size.
    PayloadSize,
    /// Many producers over one connection.
    Producers,
    /// Resident memory per idle producer (batching on).
    IdleProducers,
    /// Resident memory per idle producer (batching off).
    IdleProducersUnbatched,
    /// Resident memory per idle consumer.
    IdleConsumers,
    /// Transactional producer throughput and CPU per message (100 messages per transaction).
    TxnProduce,
    /// Producer throughput and CPU per message with end-to-end encryption (RSA key, batching).
    EncryptProduce,
}

impl Phase {
    /// Every phase, in running order.
    pub const ALL: [Phase; 12] = [
        Phase::Produce,
        Phase::Consume,
        Phase::ConsumeCumulative,
        Phase::Latency,
        Phase::E2e,
        Phase::PayloadSize,
        Phase::Producers,
        Phase::IdleProducers,
        Phase::IdleProducersUnbatched,
        Phase::IdleConsumers,
        Phase::TxnProduce,
        Phase::EncryptProduce,
    ];

    /// Short name (command line, CSV).
    pub fn id(self) -> &'static str {
        match self {
            Phase::Produce => "produce",
            Phase::Consume => "consume",
            Phase::ConsumeCumulative => "consume-cumulative",
            Phase::Latency => "latency",
            Phase::E2e => "e2e",
            Phase::PayloadSize => "payload-size",
            Phase::Producers => "producers",
            Phase::IdleProducers => "idle-producers",
            Phase::IdleProducersUnbatched => "idle-producers-unbatched",
            Phase::IdleConsumers => "idle-consumers",
            Phase::TxnProduce => "txn-produce",
            Phase::EncryptProduce => "encrypt-produce",
        }
    }

    /// By short name.
    pub fn from_id(id: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.id() == id)
    }

    /// The clients a phase runs (scaling and memory phases compare fewer clients).
    pub fn clients(self) -> &'static [ClientKind] {
        use ClientKind::*;
        match self {
            Phase::PayloadSize | Phase::Producers => &[SansioTokio, PulsarRs, Java],
            // pulsar-rs and the Python client have no transactions
            Phase::TxnProduce => &[SansioTokio, SansioSmol, SansioBlocking, Java],
            // pulsar-rs has no end-to-end encryption; the Python client is not a throughput peer
            Phase::EncryptProduce => &[SansioTokio, SansioSmol, SansioBlocking, Java],
            Phase::IdleProducers | Phase::IdleProducersUnbatched | Phase::IdleConsumers => {
                &[SansioTokio, SansioSmol, SansioBlocking, PulsarRs, Python]
            }
            Phase::ConsumeCumulative => {
                &[SansioTokio, SansioSmol, SansioBlocking, PulsarRs, Python]
            }
            _ => &ClientKind::ALL,
        }
    }
}

impl ClientKind {
    /// Every client, in report order.
    pub const ALL: [ClientKind; 6] = [
        ClientKind::SansioTokio,
        ClientKind::SansioSmol,
        ClientKind::SansioBlocking,
        ClientKind::PulsarRs,
        ClientKind::Java,
        ClientKind::Python,
    ];

    /// Short name (command line, CSV, charts).
    pub fn id(self) -> &'static str {
        match self {
            ClientKind::SansioTokio => "sansio-tokio",
            ClientKind::SansioSmol => "sansio-smol",
            ClientKind::SansioBlocking => "sansio-blocking",
            ClientKind::PulsarRs => "pulsar-rs",
            ClientKind::Java => "java",
            ClientKind::Python => "python",
        }
    }

    /// By short name.
    pub fn from_id(id: &str) -> Option<ClientKind> {
        ClientKind::ALL.into_iter().find(|c| c.id() == id)
    }

    /// Whether this is one of this project's runtimes.
    pub fn is_ours(self) -> bool {
        matches!(
            self,
            ClientKind::SansioTokio | ClientKind::SansioSmol | ClientKind::SansioBlocking
        )
    }

    /// The runtime argument of `bench-client`.
    pub fn runtime(self) -> Option<&'static str> {
        match self {
            ClientKind::SansioTokio => Some("tokio"),
            ClientKind::SansioSmol => Some("smol"),
            ClientKind::SansioBlocking => Some("blocking"),
            _ => None,
        }
    }

    /// Why this client cannot take a phase's measurement, if it cannot.
    pub fn not_applicable(self, phase: Phase) -> Option<&'static str> {
        match (self, phase) {
            (
                ClientKind::Java,
                Phase::IdleProducers | Phase::IdleProducersUnbatched | Phase::IdleConsumers,
            ) => Some("pulsar-perf cannot hold idle producers or consumers"),
            (ClientKind::Java, Phase::ConsumeCumulative) => {
                Some("pulsar-perf consume acknowledges every message individually")
            }
            (ClientKind::Java, Phase::E2e) => Some(
                "pulsar-perf consume measures from the publish timestamp in ms, without a \
                 scheduled send time or warm-up exclusion",
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for c in ClientKind::ALL {
            assert_eq!(ClientKind::from_id(c.id()), Some(c));
        }
        for p in Phase::ALL {
            assert_eq!(Phase::from_id(p.id()), Some(p));
        }
        assert_eq!(
            serde_json::to_string(&ClientKind::SansioTokio).unwrap(),
            "\"sansio-tokio\""
        );
    }
}
