//! The in-memory broker's answers to the setup commands every state-machine bench needs.

use pulsar_proto::pb::{self, base_command::Type};

/// The answer to CONNECT, LOOKUP or PARTITIONED_METADATA (a non-partitioned topic served by one
/// broker); `None` for any other command.
pub fn setup_answer(cmd: &pb::BaseCommand) -> Option<pb::BaseCommand> {
    Some(match cmd.kind()? {
        Type::Connect => pb::CommandConnected {
            server_version: "bench".into(),
            protocol_version: Some(21),
            ..Default::default()
        }
        .into(),
        Type::Lookup => pb::CommandLookupTopicResponse {
            broker_service_url: Some("pulsar://bench:6650".into()),
            response: Some(1),
            request_id: cmd.lookup_topic.as_ref()?.request_id,
            authoritative: Some(true),
            ..Default::default()
        }
        .into(),
        Type::PartitionedMetadata => pb::CommandPartitionedTopicMetadataResponse {
            partitions: Some(0),
            request_id: cmd.partition_metadata.as_ref()?.request_id,
            response: Some(0),
            ..Default::default()
        }
        .into(),
        _ => return None,
    })
}
