//! Checks the compiled protocol definition against a table of field numbers, labels, types and
//! defaults taken from apache/pulsar's `PulsarApi.proto`, so a typo in `proto/PulsarApi.proto`
//! fails here. Also checks the shape of the generated `BaseCommand`.

#![allow(clippy::unwrap_used)] // tests unwrap to fail loudly

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use pulsar_proto::pb;

/// (message, field, number, label, type, default). The type is the scalar name or the last
/// segment of the message/enum name.
#[rustfmt::skip]
const FIELDS: &[(&str, &str, i32, &str, &str, &str)] = &[
    ("Schema", "name", 1, "required", "string", ""),
    ("Schema", "schema_data", 3, "required", "bytes", ""),
    ("Schema", "type", 4, "required", "Type", ""),
    ("Schema", "properties", 5, "repeated", "KeyValue", ""),
    ("MessageIdData", "ledgerId", 1, "required", "uint64", ""),
    ("MessageIdData", "entryId", 2, "required", "uint64", ""),
    ("MessageIdData", "partition", 3, "optional", "int32", "-1"),
    ("MessageIdData", "batch_index", 4, "optional", "int32", "-1"),
    ("MessageIdData", "ack_set", 5, "repeated", "int64", ""),
    ("MessageIdData", "batch_size", 6, "optional", "int32", ""),
    ("MessageIdData", "first_chunk_message_id", 7, "optional", "MessageIdData", ""),
    ("KeyValue", "key", 1, "required", "string", ""),
    ("KeyValue", "value", 2, "required", "string", ""),
    ("KeyLongValue", "key", 1, "required", "string", ""),
    ("KeyLongValue", "value", 2, "required", "uint64", ""),
    ("IntRange", "start", 1, "required", "int32", ""),
    ("IntRange", "end", 2, "required", "int32", ""),
    ("EncryptionKeys", "key", 1, "required", "string", ""),
    ("EncryptionKeys", "value", 2, "required", "bytes", ""),
    ("EncryptionKeys", "metadata", 3, "repeated", "KeyValue", ""),
    ("MessageMetadata", "producer_name", 1, "required", "string", ""),
    ("MessageMetadata", "sequence_id", 2, "required", "uint64", ""),
    ("MessageMetadata", "publish_time", 3, "required", "uint64", ""),
    ("MessageMetadata", "properties", 4, "repeated", "KeyValue", ""),
    ("MessageMetadata", "replicated_from", 5, "optional", "string", ""),
    ("MessageMetadata", "partition_key", 6, "optional", "string", ""),
    ("MessageMetadata", "replicate_to", 7, "repeated", "string", ""),
    ("MessageMetadata", "compression", 8, "optional", "CompressionType", "NONE"),
    ("MessageMetadata", "uncompressed_size", 9, "optional", "uint32", "0"),
    ("MessageMetadata", "num_messages_in_batch", 11, "optional", "int32", "1"),
    ("MessageMetadata", "event_time", 12, "optional", "uint64", "0"),
    ("MessageMetadata", "encryption_keys", 13, "repeated", "EncryptionKeys", ""),
    ("MessageMetadata", "encryption_algo", 14, "optional", "string", ""),
    ("MessageMetadata", "encryption_param", 15, "optional", "bytes", ""),
    ("MessageMetadata", "schema_version", 16, "optional", "bytes", ""),
    ("MessageMetadata", "partition_key_b64_encoded", 17, "optional", "bool", "false"),
    ("MessageMetadata", "ordering_key", 18, "optional", "bytes", ""),
    ("MessageMetadata", "deliver_at_time", 19, "optional", "int64", ""),
    ("MessageMetadata", "marker_type", 20, "optional", "int32", ""),
    ("MessageMetadata", "txnid_least_bits", 22, "optional", "uint64", ""),
    ("MessageMetadata", "txnid_most_bits", 23, "optional", "uint64", ""),
    ("MessageMetadata", "highest_sequence_id", 24, "optional", "uint64", "0"),
    ("MessageMetadata", "null_value", 25, "optional", "bool", "false"),
    ("MessageMetadata", "uuid", 26, "optional", "string", ""),
    ("MessageMetadata", "num_chunks_from_msg", 27, "optional", "int32", ""),
    ("MessageMetadata", "total_chunk_msg_size", 28, "optional", "int32", ""),
    ("MessageMetadata", "chunk_id", 29, "optional", "int32", ""),
    ("MessageMetadata", "null_partition_key", 30, "optional", "bool", "false"),
    ("SingleMessageMetadata", "properties", 1, "repeated", "KeyValue", ""),
    ("SingleMessageMetadata", "partition_key", 2, "optional", "string", ""),
    ("SingleMessageMetadata", "payload_size", 3, "required", "int32", ""),
    ("SingleMessageMetadata", "compacted_out", 4, "optional", "bool", "false"),
    ("SingleMessageMetadata", "event_time", 5, "optional", "uint64", "0"),
    ("SingleMessageMetadata", "partition_key_b64_encoded", 6, "optional", "bool", "false"),
    ("SingleMessageMetadata", "ordering_key", 7, "optional", "bytes", ""),
    ("SingleMessageMetadata", "sequence_id", 8, "optional", "uint64", ""),
    ("SingleMessageMetadata", "null_value", 9, "optional", "bool", "false"),
    ("SingleMessageMetadata", "null_partition_key", 10, "optional", "bool", "false"),
    ("BrokerEntryMetadata", "broker_timestamp", 1, "optional", "uint64", ""),
    ("BrokerEntryMetadata", "index", 2, "optional", "uint64", ""),
    ("CommandConnect", "client_version", 1, "required", "string", ""),
    ("CommandConnect", "auth_method", 2, "optional", "AuthMethod", ""),
    ("CommandConnect", "auth_method_name", 5, "optional", "string", ""),
    ("CommandConnect", "auth_data", 3, "optional", "bytes", ""),
    ("CommandConnect", "protocol_version", 4, "optional", "int32", "0"),
    ("CommandConnect", "proxy_to_broker_url", 6, "optional", "string", ""),
    ("CommandConnect", "original_principal", 7, "optional", "string", ""),
    ("CommandConnect", "original_auth_data", 8, "optional", "string", ""),
    ("CommandConnect", "original_auth_method", 9, "optional", "string", ""),
    ("CommandConnect", "feature_flags", 10, "optional", "FeatureFlags", ""),
    ("CommandConnect", "proxy_version", 11, "optional", "string", ""),
    ("FeatureFlags", "supports_auth_refresh", 1, "optional", "bool", "false"),
    ("FeatureFlags", "supports_broker_entry_metadata", 2, "optional", "bool", "false"),
    ("FeatureFlags", "supports_partial_producer", 3, "optional", "bool", "false"),
    ("FeatureFlags", "supports_topic_watchers", 4, "optional", "bool", "false"),
    ("FeatureFlags", "supports_get_partitioned_metadata_without_auto_creation", 5, "optional", "bool", "false"),
    ("FeatureFlags", "supports_repl_dedup_by_lid_and_eid", 6, "optional", "bool", "false"),
    ("CommandConnected", "server_version", 1, "required", "string", ""),
    ("CommandConnected", "protocol_version", 2, "optional", "int32", "0"),
    ("CommandConnected", "max_message_size", 3, "optional", "int32", ""),
    ("CommandConnected", "feature_flags", 4, "optional", "FeatureFlags", ""),
    ("CommandAuthResponse", "client_version", 1, "optional", "string", ""),
    ("CommandAuthResponse", "response", 2, "optional", "AuthData", ""),
    ("CommandAuthResponse", "protocol_version", 3, "optional", "int32", "0"),
    ("CommandAuthChallenge", "server_version", 1, "optional", "string", ""),
    ("CommandAuthChallenge", "challenge", 2, "optional", "AuthData", ""),
    ("CommandAuthChallenge", "protocol_version", 3, "optional", "int32", "0"),
    ("AuthData", "auth_method_name", 1, "optional", "string", ""),
    ("AuthData", "auth_data", 2, "optional", "bytes", ""),
    ("KeySharedMeta", "keySharedMode", 1, "required", "KeySharedMode", ""),
    ("KeySharedMeta", "hashRanges", 3, "repeated", "IntRange", ""),
    ("KeySharedMeta", "allowOutOfOrderDelivery", 4, "optional", "bool", "false"),
    ("CommandSubscribe", "topic", 1, "required", "string", ""),
    ("CommandSubscribe", "subscription", 2, "required", "string", ""),
    ("CommandSubscribe", "subType", 3, "required", "SubType", ""),
    ("CommandSubscribe", "consumer_id", 4, "required", "uint64", ""),
    ("CommandSubscribe", "request_id", 5, "required", "uint64", ""),
    ("CommandSubscribe", "consumer_name", 6, "optional", "string", ""),
    ("CommandSubscribe", "priority_level", 7, "optional", "int32", ""),
    ("CommandSubscribe", "durable", 8, "optional", "bool", "true"),
    ("CommandSubscribe", "start_message_id", 9, "optional", "MessageIdData", ""),
    ("CommandSubscribe", "metadata", 10, "repeated", "KeyValue", ""),
    ("CommandSubscribe", "read_compacted", 11, "optional", "bool", ""),
    ("CommandSubscribe", "schema", 12, "optional", "Schema", ""),
    ("CommandSubscribe", "initialPosition", 13, "optional", "InitialPosition", "Latest"),
    ("CommandSubscribe", "replicate_subscription_state", 14, "optional", "bool", ""),
    ("CommandSubscribe", "force_topic_creation", 15, "optional", "bool", "true"),
    ("CommandSubscribe", "start_message_rollback_duration_sec", 16, "optional", "uint64", "0"),
    ("CommandSubscribe", "keySharedMeta", 17, "optional", "KeySharedMeta", ""),
    ("CommandSubscribe", "subscription_properties", 18, "repeated", "KeyValue", ""),
    ("CommandSubscribe", "consumer_epoch", 19, "optional", "uint64", ""),
    ("CommandPartitionedTopicMetadata", "topic", 1, "required", "string", ""),
    ("CommandPartitionedTopicMetadata", "request_id", 2, "required", "uint64", ""),
    ("CommandPartitionedTopicMetadata", "original_principal", 3, "optional", "string", ""),
    ("CommandPartitionedTopicMetadata", "original_auth_data", 4, "optional", "string", ""),
    ("CommandPartitionedTopicMetadata", "original_auth_method", 5, "optional", "string", ""),
    ("CommandPartitionedTopicMetadata", "metadata_auto_creation_enabled", 6, "optional", "bool", "true"),
    ("CommandPartitionedTopicMetadataResponse", "partitions", 1, "optional", "uint32", ""),
    ("CommandPartitionedTopicMetadataResponse", "request_id", 2, "required", "uint64", ""),
    ("CommandPartitionedTopicMetadataResponse", "response", 3, "optional", "LookupType", ""),
    ("CommandPartitionedTopicMetadataResponse", "error", 4, "optional", "ServerError", ""),
    ("CommandPartitionedTopicMetadataResponse", "message", 5, "optional", "string", ""),
    ("CommandLookupTopic", "topic", 1, "required", "string", ""),
    ("CommandLookupTopic", "request_id", 2, "required", "uint64", ""),
    ("CommandLookupTopic", "authoritative", 3, "optional", "bool", "false"),
    ("CommandLookupTopic", "original_principal", 4, "optional", "string", ""),
    ("CommandLookupTopic", "original_auth_data", 5, "optional", "string", ""),
    ("CommandLookupTopic", "original_auth_method", 6, "optional", "string", ""),
    ("CommandLookupTopic", "advertised_listener_name", 7, "optional", "string", ""),
    ("CommandLookupTopic", "properties", 8, "repeated", "KeyValue", ""),
    ("CommandLookupTopicResponse", "brokerServiceUrl", 1, "optional", "string", ""),
    ("CommandLookupTopicResponse", "brokerServiceUrlTls", 2, "optional", "string", ""),
    ("CommandLookupTopicResponse", "response", 3, "optional", "LookupType", ""),
    ("CommandLookupTopicResponse", "request_id", 4, "required", "uint64", ""),
    ("CommandLookupTopicResponse", "authoritative", 5, "optional", "bool", "false"),
    ("CommandLookupTopicResponse", "error", 6, "optional", "ServerError", ""),
    ("CommandLookupTopicResponse", "message", 7, "optional", "string", ""),
    ("CommandLookupTopicResponse", "proxy_through_service_url", 8, "optional", "bool", "false"),
    ("CommandProducer", "topic", 1, "required", "string", ""),
    ("CommandProducer", "producer_id", 2, "required", "uint64", ""),
    ("CommandProducer", "request_id", 3, "required", "uint64", ""),
    ("CommandProducer", "producer_name", 4, "optional", "string", ""),
    ("CommandProducer", "encrypted", 5, "optional", "bool", "false"),
    ("CommandProducer", "metadata", 6, "repeated", "KeyValue", ""),
    ("CommandProducer", "schema", 7, "optional", "Schema", ""),
    ("CommandProducer", "epoch", 8, "optional", "uint64", "0"),
    ("CommandProducer", "user_provided_producer_name", 9, "optional", "bool", "true"),
    ("CommandProducer", "producer_access_mode", 10, "optional", "ProducerAccessMode", "Shared"),
    ("CommandProducer", "topic_epoch", 11, "optional", "uint64", ""),
    ("CommandProducer", "txn_enabled", 12, "optional", "bool", "false"),
    ("CommandProducer", "initial_subscription_name", 13, "optional", "string", ""),
    ("CommandSend", "producer_id", 1, "required", "uint64", ""),
    ("CommandSend", "sequence_id", 2, "required", "uint64", ""),
    ("CommandSend", "num_messages", 3, "optional", "int32", "1"),
    ("CommandSend", "txnid_least_bits", 4, "optional", "uint64", "0"),
    ("CommandSend", "txnid_most_bits", 5, "optional", "uint64", "0"),
    ("CommandSend", "highest_sequence_id", 6, "optional", "uint64", "0"),
    ("CommandSend", "is_chunk", 7, "optional", "bool", "false"),
    ("CommandSend", "marker", 8, "optional", "bool", "false"),
    ("CommandSend", "message_id", 9, "optional", "MessageIdData", ""),
    ("CommandSendReceipt", "producer_id", 1, "required", "uint64", ""),
    ("CommandSendReceipt", "sequence_id", 2, "required", "uint64", ""),
    ("CommandSendReceipt", "message_id", 3, "optional", "MessageIdData", ""),
    ("CommandSendReceipt", "highest_sequence_id", 4, "optional", "uint64", "0"),
    ("CommandSendError", "producer_id", 1, "required", "uint64", ""),
    ("CommandSendError", "sequence_id", 2, "required", "uint64", ""),
    ("CommandSendError", "error", 3, "required", "ServerError", ""),
    ("CommandSendError", "message", 4, "required", "string", ""),
    ("CommandMessage", "consumer_id", 1, "required", "uint64", ""),
    ("CommandMessage", "message_id", 2, "required", "MessageIdData", ""),
    ("CommandMessage", "redelivery_count", 3, "optional", "uint32", "0"),
    ("CommandMessage", "ack_set", 4, "repeated", "int64", ""),
    ("CommandMessage", "consumer_epoch", 5, "optional", "uint64", ""),
    ("CommandAck", "consumer_id", 1, "required", "uint64", ""),
    ("CommandAck", "ack_type", 2, "required", "AckType", ""),
    ("CommandAck", "message_id", 3, "repeated", "MessageIdData", ""),
    ("CommandAck", "validation_error", 4, "optional", "ValidationError", ""),
    ("CommandAck", "properties", 5, "repeated", "KeyLongValue", ""),
    ("CommandAck", "txnid_least_bits", 6, "optional", "uint64", "0"),
    ("CommandAck", "txnid_most_bits", 7, "optional", "uint64", "0"),
    ("CommandAck", "request_id", 8, "optional", "uint64", ""),
    ("CommandAckResponse", "consumer_id", 1, "required", "uint64", ""),
    ("CommandAckResponse", "txnid_least_bits", 2, "optional", "uint64", "0"),
    ("CommandAckResponse", "txnid_most_bits", 3, "optional", "uint64", "0"),
    ("CommandAckResponse", "error", 4, "optional", "ServerError", ""),
    ("CommandAckResponse", "message", 5, "optional", "string", ""),
    ("CommandAckResponse", "request_id", 6, "optional", "uint64", ""),
    ("CommandFlow", "consumer_id", 1, "required", "uint64", ""),
    ("CommandFlow", "messagePermits", 2, "required", "uint32", ""),
    ("CommandSeek", "consumer_id", 1, "required", "uint64", ""),
    ("CommandSeek", "request_id", 2, "required", "uint64", ""),
    ("CommandSeek", "message_id", 3, "optional", "MessageIdData", ""),
    ("CommandSeek", "message_publish_time", 4, "optional", "uint64", ""),
    ("CommandTopicMigrated", "resource_id", 1, "required", "uint64", ""),
    ("CommandTopicMigrated", "resource_type", 2, "required", "ResourceType", ""),
    ("CommandTopicMigrated", "brokerServiceUrl", 3, "optional", "string", ""),
    ("CommandTopicMigrated", "brokerServiceUrlTls", 4, "optional", "string", ""),
    ("CommandCloseProducer", "producer_id", 1, "required", "uint64", ""),
    ("CommandCloseProducer", "request_id", 2, "required", "uint64", ""),
    ("CommandCloseProducer", "assignedBrokerServiceUrl", 3, "optional", "string", ""),
    ("CommandCloseProducer", "assignedBrokerServiceUrlTls", 4, "optional", "string", ""),
    ("CommandCloseConsumer", "consumer_id", 1, "required", "uint64", ""),
    ("CommandCloseConsumer", "request_id", 2, "required", "uint64", ""),
    ("CommandCloseConsumer", "assignedBrokerServiceUrl", 3, "optional", "string", ""),
    ("CommandCloseConsumer", "assignedBrokerServiceUrlTls", 4, "optional", "string", ""),
    ("CommandRedeliverUnacknowledgedMessages", "consumer_id", 1, "required", "uint64", ""),
    ("CommandRedeliverUnacknowledgedMessages", "message_ids", 2, "repeated", "MessageIdData", ""),
    ("CommandRedeliverUnacknowledgedMessages", "consumer_epoch", 3, "optional", "uint64", ""),
    ("CommandSuccess", "request_id", 1, "required", "uint64", ""),
    ("CommandSuccess", "schema", 2, "optional", "Schema", ""),
    ("CommandProducerSuccess", "request_id", 1, "required", "uint64", ""),
    ("CommandProducerSuccess", "producer_name", 2, "required", "string", ""),
    ("CommandProducerSuccess", "last_sequence_id", 3, "optional", "int64", "-1"),
    ("CommandProducerSuccess", "schema_version", 4, "optional", "bytes", ""),
    ("CommandProducerSuccess", "topic_epoch", 5, "optional", "uint64", ""),
    ("CommandProducerSuccess", "producer_ready", 6, "optional", "bool", "true"),
    ("CommandError", "request_id", 1, "required", "uint64", ""),
    ("CommandError", "error", 2, "required", "ServerError", ""),
    ("CommandError", "message", 3, "required", "string", ""),
    ("CommandGetLastMessageIdResponse", "last_message_id", 1, "required", "MessageIdData", ""),
    ("CommandGetLastMessageIdResponse", "request_id", 2, "required", "uint64", ""),
    ("CommandGetLastMessageIdResponse", "consumer_mark_delete_position", 3, "optional", "MessageIdData", ""),
    ("CommandGetTopicsOfNamespace", "request_id", 1, "required", "uint64", ""),
    ("CommandGetTopicsOfNamespace", "namespace", 2, "required", "string", ""),
    ("CommandGetTopicsOfNamespace", "mode", 3, "optional", "Mode", "PERSISTENT"),
    ("CommandGetTopicsOfNamespace", "topics_pattern", 4, "optional", "string", ""),
    ("CommandGetTopicsOfNamespace", "topics_hash", 5, "optional", "string", ""),
    ("CommandGetTopicsOfNamespaceResponse", "request_id", 1, "required", "uint64", ""),
    ("CommandGetTopicsOfNamespaceResponse", "topics", 2, "repeated", "string", ""),
    ("CommandGetTopicsOfNamespaceResponse", "filtered", 3, "optional", "bool", "false"),
    ("CommandGetTopicsOfNamespaceResponse", "topics_hash", 4, "optional", "string", ""),
    ("CommandGetTopicsOfNamespaceResponse", "changed", 5, "optional", "bool", "true"),
    ("CommandWatchTopicList", "request_id", 1, "required", "uint64", ""),
    ("CommandWatchTopicList", "watcher_id", 2, "required", "uint64", ""),
    ("CommandWatchTopicList", "namespace", 3, "required", "string", ""),
    ("CommandWatchTopicList", "topics_pattern", 4, "required", "string", ""),
    ("CommandWatchTopicList", "topics_hash", 5, "optional", "string", ""),
    ("CommandWatchTopicUpdate", "watcher_id", 1, "required", "uint64", ""),
    ("CommandWatchTopicUpdate", "new_topics", 2, "repeated", "string", ""),
    ("CommandWatchTopicUpdate", "deleted_topics", 3, "repeated", "string", ""),
    ("CommandWatchTopicUpdate", "topics_hash", 4, "required", "string", ""),
    ("CommandNewTxn", "request_id", 1, "required", "uint64", ""),
    ("CommandNewTxn", "txn_ttl_millis", 2, "optional", "uint64", "0"),
    ("CommandNewTxn", "tc_id", 3, "optional", "uint64", "0"),
    ("CommandEndTxn", "request_id", 1, "required", "uint64", ""),
    ("CommandEndTxn", "txnid_least_bits", 2, "optional", "uint64", "0"),
    ("CommandEndTxn", "txnid_most_bits", 3, "optional", "uint64", "0"),
    ("CommandEndTxn", "txn_action", 4, "optional", "TxnAction", ""),
    ("BaseCommand", "type", 1, "required", "Type", ""),
    ("BaseCommand", "connect", 2, "optional", "CommandConnect", ""),
    ("BaseCommand", "connected", 3, "optional", "CommandConnected", ""),
    ("BaseCommand", "subscribe", 4, "optional", "CommandSubscribe", ""),
    ("BaseCommand", "producer", 5, "optional", "CommandProducer", ""),
    ("BaseCommand", "send", 6, "optional", "CommandSend", ""),
    ("BaseCommand", "send_receipt", 7, "optional", "CommandSendReceipt", ""),
    ("BaseCommand", "send_error", 8, "optional", "CommandSendError", ""),
    ("BaseCommand", "message", 9, "optional", "CommandMessage", ""),
    ("BaseCommand", "ack", 10, "optional", "CommandAck", ""),
    ("BaseCommand", "flow", 11, "optional", "CommandFlow", ""),
    ("BaseCommand", "unsubscribe", 12, "optional", "CommandUnsubscribe", ""),
    ("BaseCommand", "success", 13, "optional", "CommandSuccess", ""),
    ("BaseCommand", "error", 14, "optional", "CommandError", ""),
    ("BaseCommand", "close_producer", 15, "optional", "CommandCloseProducer", ""),
    ("BaseCommand", "close_consumer", 16, "optional", "CommandCloseConsumer", ""),
    ("BaseCommand", "producer_success", 17, "optional", "CommandProducerSuccess", ""),
    ("BaseCommand", "ping", 18, "optional", "CommandPing", ""),
    ("BaseCommand", "pong", 19, "optional", "CommandPong", ""),
    ("BaseCommand", "redeliverUnacknowledgedMessages", 20, "optional", "CommandRedeliverUnacknowledgedMessages", ""),
    ("BaseCommand", "partitionMetadata", 21, "optional", "CommandPartitionedTopicMetadata", ""),
    ("BaseCommand", "partitionMetadataResponse", 22, "optional", "CommandPartitionedTopicMetadataResponse", ""),
    ("BaseCommand", "lookupTopic", 23, "optional", "CommandLookupTopic", ""),
    ("BaseCommand", "lookupTopicResponse", 24, "optional", "CommandLookupTopicResponse", ""),
    ("BaseCommand", "consumerStats", 25, "optional", "CommandConsumerStats", ""),
    ("BaseCommand", "consumerStatsResponse", 26, "optional", "CommandConsumerStatsResponse", ""),
    ("BaseCommand", "reachedEndOfTopic", 27, "optional", "CommandReachedEndOfTopic", ""),
    ("BaseCommand", "seek", 28, "optional", "CommandSeek", ""),
    ("BaseCommand", "getLastMessageId", 29, "optional", "CommandGetLastMessageId", ""),
    ("BaseCommand", "getLastMessageIdResponse", 30, "optional", "CommandGetLastMessageIdResponse", ""),
    ("BaseCommand", "active_consumer_change", 31, "optional", "CommandActiveConsumerChange", ""),
    ("BaseCommand", "getTopicsOfNamespace", 32, "optional", "CommandGetTopicsOfNamespace", ""),
    ("BaseCommand", "getTopicsOfNamespaceResponse", 33, "optional", "CommandGetTopicsOfNamespaceResponse", ""),
    ("BaseCommand", "getSchema", 34, "optional", "CommandGetSchema", ""),
    ("BaseCommand", "getSchemaResponse", 35, "optional", "CommandGetSchemaResponse", ""),
    ("BaseCommand", "authChallenge", 36, "optional", "CommandAuthChallenge", ""),
    ("BaseCommand", "authResponse", 37, "optional", "CommandAuthResponse", ""),
    ("BaseCommand", "ackResponse", 38, "optional", "CommandAckResponse", ""),
    ("BaseCommand", "getOrCreateSchema", 39, "optional", "CommandGetOrCreateSchema", ""),
    ("BaseCommand", "getOrCreateSchemaResponse", 40, "optional", "CommandGetOrCreateSchemaResponse", ""),
    ("BaseCommand", "newTxn", 50, "optional", "CommandNewTxn", ""),
    ("BaseCommand", "newTxnResponse", 51, "optional", "CommandNewTxnResponse", ""),
    ("BaseCommand", "addPartitionToTxn", 52, "optional", "CommandAddPartitionToTxn", ""),
    ("BaseCommand", "addPartitionToTxnResponse", 53, "optional", "CommandAddPartitionToTxnResponse", ""),
    ("BaseCommand", "addSubscriptionToTxn", 54, "optional", "CommandAddSubscriptionToTxn", ""),
    ("BaseCommand", "addSubscriptionToTxnResponse", 55, "optional", "CommandAddSubscriptionToTxnResponse", ""),
    ("BaseCommand", "endTxn", 56, "optional", "CommandEndTxn", ""),
    ("BaseCommand", "endTxnResponse", 57, "optional", "CommandEndTxnResponse", ""),
    ("BaseCommand", "endTxnOnPartition", 58, "optional", "CommandEndTxnOnPartition", ""),
    ("BaseCommand", "endTxnOnPartitionResponse", 59, "optional", "CommandEndTxnOnPartitionResponse", ""),
    ("BaseCommand", "endTxnOnSubscription", 60, "optional", "CommandEndTxnOnSubscription", ""),
    ("BaseCommand", "endTxnOnSubscriptionResponse", 61, "optional", "CommandEndTxnOnSubscriptionResponse", ""),
    ("BaseCommand", "tcClientConnectRequest", 62, "optional", "CommandTcClientConnectRequest", ""),
    ("BaseCommand", "tcClientConnectResponse", 63, "optional", "CommandTcClientConnectResponse", ""),
    ("BaseCommand", "watchTopicList", 64, "optional", "CommandWatchTopicList", ""),
    ("BaseCommand", "watchTopicListSuccess", 65, "optional", "CommandWatchTopicListSuccess", ""),
    ("BaseCommand", "watchTopicUpdate", 66, "optional", "CommandWatchTopicUpdate", ""),
    ("BaseCommand", "watchTopicListClose", 67, "optional", "CommandWatchTopicListClose", ""),
    ("BaseCommand", "topicMigrated", 68, "optional", "CommandTopicMigrated", ""),
];

/// (enum, value name, number).
#[rustfmt::skip]
const ENUM_VALUES: &[(&str, &str, i32)] = &[
    ("Schema.Type", "None", 0),
    ("Schema.Type", "String", 1),
    ("Schema.Type", "Json", 2),
    ("Schema.Type", "Protobuf", 3),
    ("Schema.Type", "Avro", 4),
    ("Schema.Type", "Bool", 5),
    ("Schema.Type", "Int8", 6),
    ("Schema.Type", "Int16", 7),
    ("Schema.Type", "Int32", 8),
    ("Schema.Type", "Int64", 9),
    ("Schema.Type", "Float", 10),
    ("Schema.Type", "Double", 11),
    ("Schema.Type", "Date", 12),
    ("Schema.Type", "Time", 13),
    ("Schema.Type", "Timestamp", 14),
    ("Schema.Type", "KeyValue", 15),
    ("Schema.Type", "Instant", 16),
    ("Schema.Type", "LocalDate", 17),
    ("Schema.Type", "LocalTime", 18),
    ("Schema.Type", "LocalDateTime", 19),
    ("Schema.Type", "ProtobufNative", 20),
    ("Schema.Type", "AutoConsume", 21),
    ("CompressionType", "NONE", 0),
    ("CompressionType", "LZ4", 1),
    ("CompressionType", "ZLIB", 2),
    ("CompressionType", "ZSTD", 3),
    ("CompressionType", "SNAPPY", 4),
    ("ProducerAccessMode", "Shared", 0),
    ("ProducerAccessMode", "Exclusive", 1),
    ("ProducerAccessMode", "WaitForExclusive", 2),
    ("ProducerAccessMode", "ExclusiveWithFencing", 3),
    ("ServerError", "UnknownError", 0),
    ("ServerError", "MetadataError", 1),
    ("ServerError", "PersistenceError", 2),
    ("ServerError", "AuthenticationError", 3),
    ("ServerError", "AuthorizationError", 4),
    ("ServerError", "ConsumerBusy", 5),
    ("ServerError", "ServiceNotReady", 6),
    ("ServerError", "ProducerBlockedQuotaExceededError", 7),
    ("ServerError", "ProducerBlockedQuotaExceededException", 8),
    ("ServerError", "ChecksumError", 9),
    ("ServerError", "UnsupportedVersionError", 10),
    ("ServerError", "TopicNotFound", 11),
    ("ServerError", "SubscriptionNotFound", 12),
    ("ServerError", "ConsumerNotFound", 13),
    ("ServerError", "TooManyRequests", 14),
    ("ServerError", "TopicTerminatedError", 15),
    ("ServerError", "ProducerBusy", 16),
    ("ServerError", "InvalidTopicName", 17),
    ("ServerError", "IncompatibleSchema", 18),
    ("ServerError", "ConsumerAssignError", 19),
    ("ServerError", "TransactionCoordinatorNotFound", 20),
    ("ServerError", "InvalidTxnStatus", 21),
    ("ServerError", "NotAllowedError", 22),
    ("ServerError", "TransactionConflict", 23),
    ("ServerError", "TransactionNotFound", 24),
    ("ServerError", "ProducerFenced", 25),
    ("AuthMethod", "AuthMethodNone", 0),
    ("AuthMethod", "AuthMethodYcaV1", 1),
    ("AuthMethod", "AuthMethodAthens", 2),
    ("ProtocolVersion", "v0", 0),
    ("ProtocolVersion", "v1", 1),
    ("ProtocolVersion", "v2", 2),
    ("ProtocolVersion", "v3", 3),
    ("ProtocolVersion", "v4", 4),
    ("ProtocolVersion", "v5", 5),
    ("ProtocolVersion", "v6", 6),
    ("ProtocolVersion", "v7", 7),
    ("ProtocolVersion", "v8", 8),
    ("ProtocolVersion", "v9", 9),
    ("ProtocolVersion", "v10", 10),
    ("ProtocolVersion", "v11", 11),
    ("ProtocolVersion", "v12", 12),
    ("ProtocolVersion", "v13", 13),
    ("ProtocolVersion", "v14", 14),
    ("ProtocolVersion", "v15", 15),
    ("ProtocolVersion", "v16", 16),
    ("ProtocolVersion", "v17", 17),
    ("ProtocolVersion", "v18", 18),
    ("ProtocolVersion", "v19", 19),
    ("ProtocolVersion", "v20", 20),
    ("ProtocolVersion", "v21", 21),
    ("KeySharedMode", "AUTO_SPLIT", 0),
    ("KeySharedMode", "STICKY", 1),
    ("CommandSubscribe.SubType", "Exclusive", 0),
    ("CommandSubscribe.SubType", "Shared", 1),
    ("CommandSubscribe.SubType", "Failover", 2),
    ("CommandSubscribe.SubType", "Key_Shared", 3),
    ("CommandSubscribe.InitialPosition", "Latest", 0),
    ("CommandSubscribe.InitialPosition", "Earliest", 1),
    ("CommandLookupTopicResponse.LookupType", "Redirect", 0),
    ("CommandLookupTopicResponse.LookupType", "Connect", 1),
    ("CommandLookupTopicResponse.LookupType", "Failed", 2),
    ("CommandAck.AckType", "Individual", 0),
    ("CommandAck.AckType", "Cumulative", 1),
    ("CommandAck.ValidationError", "UncompressedSizeCorruption", 0),
    ("CommandAck.ValidationError", "DecompressionError", 1),
    ("CommandAck.ValidationError", "ChecksumMismatch", 2),
    ("CommandAck.ValidationError", "BatchDeSerializeError", 3),
    ("CommandAck.ValidationError", "DecryptionError", 4),
    ("CommandTopicMigrated.ResourceType", "Producer", 0),
    ("CommandTopicMigrated.ResourceType", "Consumer", 1),
    ("TxnAction", "COMMIT", 0),
    ("TxnAction", "ABORT", 1),
    ("BaseCommand.Type", "CONNECT", 2),
    ("BaseCommand.Type", "CONNECTED", 3),
    ("BaseCommand.Type", "SUBSCRIBE", 4),
    ("BaseCommand.Type", "PRODUCER", 5),
    ("BaseCommand.Type", "SEND", 6),
    ("BaseCommand.Type", "SEND_RECEIPT", 7),
    ("BaseCommand.Type", "SEND_ERROR", 8),
    ("BaseCommand.Type", "MESSAGE", 9),
    ("BaseCommand.Type", "ACK", 10),
    ("BaseCommand.Type", "FLOW", 11),
    ("BaseCommand.Type", "UNSUBSCRIBE", 12),
    ("BaseCommand.Type", "SUCCESS", 13),
    ("BaseCommand.Type", "ERROR", 14),
    ("BaseCommand.Type", "CLOSE_PRODUCER", 15),
    ("BaseCommand.Type", "CLOSE_CONSUMER", 16),
    ("BaseCommand.Type", "PRODUCER_SUCCESS", 17),
    ("BaseCommand.Type", "PING", 18),
    ("BaseCommand.Type", "PONG", 19),
    ("BaseCommand.Type", "REDELIVER_UNACKNOWLEDGED_MESSAGES", 20),
    ("BaseCommand.Type", "PARTITIONED_METADATA", 21),
    ("BaseCommand.Type", "PARTITIONED_METADATA_RESPONSE", 22),
    ("BaseCommand.Type", "LOOKUP", 23),
    ("BaseCommand.Type", "LOOKUP_RESPONSE", 24),
    ("BaseCommand.Type", "CONSUMER_STATS", 25),
    ("BaseCommand.Type", "CONSUMER_STATS_RESPONSE", 26),
    ("BaseCommand.Type", "REACHED_END_OF_TOPIC", 27),
    ("BaseCommand.Type", "SEEK", 28),
    ("BaseCommand.Type", "GET_LAST_MESSAGE_ID", 29),
    ("BaseCommand.Type", "GET_LAST_MESSAGE_ID_RESPONSE", 30),
    ("BaseCommand.Type", "ACTIVE_CONSUMER_CHANGE", 31),
    ("BaseCommand.Type", "GET_TOPICS_OF_NAMESPACE", 32),
    ("BaseCommand.Type", "GET_TOPICS_OF_NAMESPACE_RESPONSE", 33),
    ("BaseCommand.Type", "GET_SCHEMA", 34),
    ("BaseCommand.Type", "GET_SCHEMA_RESPONSE", 35),
    ("BaseCommand.Type", "AUTH_CHALLENGE", 36),
    ("BaseCommand.Type", "AUTH_RESPONSE", 37),
    ("BaseCommand.Type", "ACK_RESPONSE", 38),
    ("BaseCommand.Type", "GET_OR_CREATE_SCHEMA", 39),
    ("BaseCommand.Type", "GET_OR_CREATE_SCHEMA_RESPONSE", 40),
    ("BaseCommand.Type", "NEW_TXN", 50),
    ("BaseCommand.Type", "NEW_TXN_RESPONSE", 51),
    ("BaseCommand.Type", "ADD_PARTITION_TO_TXN", 52),
    ("BaseCommand.Type", "ADD_PARTITION_TO_TXN_RESPONSE", 53),
    ("BaseCommand.Type", "ADD_SUBSCRIPTION_TO_TXN", 54),
    ("BaseCommand.Type", "ADD_SUBSCRIPTION_TO_TXN_RESPONSE", 55),
    ("BaseCommand.Type", "END_TXN", 56),
    ("BaseCommand.Type", "END_TXN_RESPONSE", 57),
    ("BaseCommand.Type", "END_TXN_ON_PARTITION", 58),
    ("BaseCommand.Type", "END_TXN_ON_PARTITION_RESPONSE", 59),
    ("BaseCommand.Type", "END_TXN_ON_SUBSCRIPTION", 60),
    ("BaseCommand.Type", "END_TXN_ON_SUBSCRIPTION_RESPONSE", 61),
    ("BaseCommand.Type", "TC_CLIENT_CONNECT_REQUEST", 62),
    ("BaseCommand.Type", "TC_CLIENT_CONNECT_RESPONSE", 63),
    ("BaseCommand.Type", "WATCH_TOPIC_LIST", 64),
    ("BaseCommand.Type", "WATCH_TOPIC_LIST_SUCCESS", 65),
    ("BaseCommand.Type", "WATCH_TOPIC_UPDATE", 66),
    ("BaseCommand.Type", "WATCH_TOPIC_LIST_CLOSE", 67),
    ("BaseCommand.Type", "TOPIC_MIGRATED", 68),
];

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("embedded descriptor set decodes")
}

fn find_message<'a>(messages: &'a [DescriptorProto], path: &str) -> Option<&'a DescriptorProto> {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let message = messages.iter().find(|m| m.name() == head)?;
    match rest {
        None => Some(message),
        Some(rest) => find_message(&message.nested_type, rest),
    }
}

fn find_enum<'a>(set: &'a FileDescriptorSet, path: &str) -> Option<&'a EnumDescriptorProto> {
    let file = &set.file[0];
    match path.rsplit_once('.') {
        None => file.enum_type.iter().find(|e| e.name() == path),
        Some((parent, name)) => find_message(&file.message_type, parent)?
            .enum_type
            .iter()
            .find(|e| e.name() == name),
    }
}

fn scalar_name(ty: Type) -> &'static str {
    match ty {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => "",
    }
}

#[test]
fn package_and_syntax() {
    let set = descriptor_set();
    assert_eq!(set.file.len(), 1);
    assert_eq!(set.file[0].package(), "pulsar.proto");
    // proto2 files leave `syntax` empty in their descriptor.
    assert!(
        matches!(set.file[0].syntax(), "" | "proto2"),
        "{:?}",
        set.file[0].syntax()
    );
}

#[test]
fn fields_match_the_reference_table() {
    let set = descriptor_set();
    let messages = &set.file[0].message_type;
    let mut problems = Vec::new();
    for &(message, field, number, label, ty, default) in FIELDS {
        let Some(descriptor) = find_message(messages, message) else {
            problems.push(format!("message {message} missing"));
            continue;
        };
        let Some(f) = descriptor.field.iter().find(|f| f.name() == field) else {
            problems.push(format!("{message}.{field} missing"));
            continue;
        };
        let actual_label = match f.label() {
            Label::Optional => "optional",
            Label::Required => "required",
            Label::Repeated => "repeated",
        };
        let actual_type = match f.r#type() {
            Type::Message | Type::Enum | Type::Group => {
                f.type_name().rsplit('.').next().unwrap_or_default()
            }
            scalar => scalar_name(scalar),
        };
        let actual = (f.number(), actual_label, actual_type, f.default_value());
        if actual != (number, label, ty, default) {
            problems.push(format!(
                "{message}.{field}: got {actual:?}, want {:?}",
                (number, label, ty, default)
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn no_unexpected_fields_in_checked_messages() {
    // Every field of a message in the table must be in the table: catches extra or renumbered
    // fields that the per-field check cannot see.
    let set = descriptor_set();
    let messages = &set.file[0].message_type;
    let mut checked: Vec<&str> = FIELDS.iter().map(|row| row.0).collect();
    checked.dedup();
    for message in checked {
        let descriptor = find_message(messages, message).expect("message exists");
        for f in &descriptor.field {
            assert!(
                FIELDS
                    .iter()
                    .any(|row| row.0 == message && row.1 == f.name()),
                "{message}.{} (= {}) is not in the reference table",
                f.name(),
                f.number()
            );
        }
    }
}

#[test]
fn enum_values_match_the_reference_table() {
    let set = descriptor_set();
    let mut problems = Vec::new();
    for &(enum_path, name, number) in ENUM_VALUES {
        let Some(descriptor) = find_enum(&set, enum_path) else {
            problems.push(format!("enum {enum_path} missing"));
            continue;
        };
        match descriptor.value.iter().find(|v| v.name() == name) {
            Some(v) if v.number() == number => {}
            Some(v) => problems.push(format!(
                "{enum_path}.{name} = {}, want {number}",
                v.number()
            )),
            None => problems.push(format!("{enum_path}.{name} missing")),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_command_field_number_equals_its_type() {
    let set = descriptor_set();
    let base = find_message(&set.file[0].message_type, "BaseCommand").expect("BaseCommand");
    let types = &base.enum_type[0];
    let bodies: Vec<_> = base.field.iter().filter(|f| f.number() != 1).collect();
    assert_eq!(
        bodies.len(),
        types.value.len(),
        "one body field per command type"
    );
    assert_eq!(pb::BaseCommand::all_types().len(), types.value.len());
    for value in &types.value {
        assert!(
            bodies.iter().any(|f| f.number() == value.number()),
            "no body field for {} = {}",
            value.name(),
            value.number()
        );
    }
    let numbers: Vec<i32> = types.value.iter().map(|v| v.number()).collect();
    let expected: Vec<i32> = (2..=40).chain(50..=68).collect();
    assert_eq!(numbers, expected);
}

#[test]
fn protocol_version_is_21() {
    assert_eq!(
        pulsar_proto::PROTOCOL_VERSION,
        pb::ProtocolVersion::V21 as i32
    );
}

#[test]
fn base_command_stays_small() {
    let size = std::mem::size_of::<pb::BaseCommand>();
    assert!(
        size < 600,
        "BaseCommand is {size} bytes: are the command fields boxed?"
    );
}

#[test]
fn from_sets_type_and_body() {
    for &kind in pb::BaseCommand::all_types() {
        let empty = pb::BaseCommand {
            r#type: kind as i32,
            ..Default::default()
        };
        assert!(!empty.has_body(kind), "{kind:?}");
    }
    let ping = pb::BaseCommand::from(pb::CommandPing {});
    assert_eq!(ping.kind(), Some(pb::base_command::Type::Ping));
    assert!(ping.ping.is_some());
    let flow = pb::BaseCommand::from(pb::CommandFlow {
        consumer_id: 3,
        message_permits: 1000,
    });
    assert_eq!(flow.kind(), Some(pb::base_command::Type::Flow));
    assert_eq!(flow.flow.as_ref().map(|f| f.message_permits), Some(1000));
    let migrated = pb::BaseCommand::from(pb::CommandTopicMigrated::default());
    assert_eq!(migrated.r#type, 68);
    assert!(migrated.has_body(pb::base_command::Type::TopicMigrated));
    let unknown = pb::BaseCommand {
        r#type: 69,
        ..Default::default()
    };
    assert_eq!(unknown.kind(), None);
}
