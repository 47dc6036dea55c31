//! The simulation's cluster: the broker of `pulsar-embedded` (its sans-IO core), driven by the
//! simulator's network and clock, with its fault-injection knobs ([`Faults`], crashes, topic moves).

pub use pulsar_embedded::core::{
    describe, normalize_topic, partition_index, AcceptError, Cluster as ModelCluster,
    ClusterConfig, ConnId, Cursor, Entry, Faults, MoveKind, Output, ReceivedSend, SendOutcome,
    Store, TopicLog,
};
