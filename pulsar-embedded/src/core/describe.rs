//! One-line summaries of commands, for traces.

use pulsar_proto::pb;

/// A one-line summary of a command (for traces).
pub fn describe(cmd: &pb::BaseCommand) -> String {
    use pb::base_command::Type;
    let kind = cmd.kind();
    match kind {
        Some(Type::Send) => cmd.send.as_deref().map_or_else(String::new, |s| {
            format!(
                "SEND p{} seq {} n {}",
                s.producer_id,
                s.sequence_id,
                s.num_messages.unwrap_or(1)
            )
        }),
        Some(Type::SendReceipt) => cmd.send_receipt.as_deref().map_or_else(String::new, |s| {
            let id = s
                .message_id
                .as_ref()
                .map(|m| format!("{}:{}", m.ledger_id as i64, m.entry_id as i64))
                .unwrap_or_default();
            format!(
                "SEND_RECEIPT p{} seq {} id {id}",
                s.producer_id, s.sequence_id
            )
        }),
        Some(Type::SendError) => cmd.send_error.as_deref().map_or_else(String::new, |s| {
            format!(
                "SEND_ERROR p{} seq {} err {}",
                s.producer_id, s.sequence_id, s.error
            )
        }),
        Some(Type::Message) => cmd.message.as_deref().map_or_else(String::new, |m| {
            format!(
                "MESSAGE c{} {}:{} redeliveries {} epoch {:?}",
                m.consumer_id,
                m.message_id.ledger_id,
                m.message_id.entry_id,
                m.redelivery_count.unwrap_or(0),
                m.consumer_epoch
            )
        }),
        Some(Type::Ack) => cmd.ack.as_deref().map_or_else(String::new, |a| {
            let ids: Vec<String> = a
                .message_id
                .iter()
                .map(|m| {
                    format!(
                        "{}:{}:{}{}",
                        m.ledger_id,
                        m.entry_id,
                        m.batch_index.unwrap_or(-1),
                        if m.ack_set.is_empty() { "" } else { "+set" }
                    )
                })
                .collect();
            format!(
                "ACK c{} type {} [{}]",
                a.consumer_id,
                a.ack_type,
                ids.join(" ")
            )
        }),
        Some(Type::Flow) => cmd.flow.as_deref().map_or_else(String::new, |f| {
            format!("FLOW c{} permits {}", f.consumer_id, f.message_permits)
        }),
        _ => describe_more(cmd),
    }
}

/// The rest of [`describe`].
fn describe_more(cmd: &pb::BaseCommand) -> String {
    use pb::base_command::Type;
    let kind = cmd.kind();
    match kind {
        Some(Type::Producer) => cmd.producer.as_deref().map_or_else(String::new, |p| {
            format!(
                "PRODUCER p{} req {} {} name {:?} epoch {}",
                p.producer_id,
                p.request_id,
                p.topic,
                p.producer_name,
                p.epoch.unwrap_or(0)
            )
        }),
        Some(Type::Subscribe) => cmd.subscribe.as_deref().map_or_else(String::new, |s| {
            let start = s
                .start_message_id
                .as_ref()
                .map(|m| {
                    format!(
                        " start {}:{} batch {:?}",
                        m.ledger_id as i64, m.entry_id as i64, m.batch_index
                    )
                })
                .unwrap_or_default();
            format!(
                "SUBSCRIBE c{} req {} {} sub {} type {} durable {} initial {} epoch {:?}{start}",
                s.consumer_id,
                s.request_id,
                s.topic,
                s.subscription,
                s.sub_type,
                s.durable.unwrap_or(true),
                s.initial_position.unwrap_or(0),
                s.consumer_epoch
            )
        }),
        Some(Type::Error) => cmd.error.as_deref().map_or_else(String::new, |e| {
            format!("ERROR req {} err {} {}", e.request_id, e.error, e.message)
        }),
        Some(Type::Success) => cmd
            .success
            .as_deref()
            .map_or_else(String::new, |s| format!("SUCCESS req {}", s.request_id)),
        Some(Type::ProducerSuccess) => {
            cmd.producer_success
                .as_deref()
                .map_or_else(String::new, |s| {
                    format!(
                        "PRODUCER_SUCCESS req {} name {} last_seq {}",
                        s.request_id,
                        s.producer_name,
                        s.last_sequence_id.unwrap_or(-1)
                    )
                })
        }
        Some(Type::Lookup) => cmd.lookup_topic.as_deref().map_or_else(String::new, |l| {
            format!(
                "LOOKUP req {} {} auth {}",
                l.request_id,
                l.topic,
                l.authoritative.unwrap_or(false)
            )
        }),
        Some(Type::LookupResponse) => {
            cmd.lookup_topic_response
                .as_deref()
                .map_or_else(String::new, |l| {
                    format!(
                        "LOOKUP_RESPONSE req {} type {} url {:?} err {:?}",
                        l.request_id,
                        l.response.unwrap_or(-1),
                        l.broker_service_url,
                        l.error
                    )
                })
        }
        Some(Type::CloseProducer) => cmd.close_producer.as_deref().map_or_else(String::new, |c| {
            format!(
                "CLOSE_PRODUCER p{} req {} url {:?}",
                c.producer_id, c.request_id, c.assigned_broker_service_url
            )
        }),
        Some(Type::CloseConsumer) => cmd.close_consumer.as_deref().map_or_else(String::new, |c| {
            format!(
                "CLOSE_CONSUMER c{} req {} url {:?}",
                c.consumer_id, c.request_id, c.assigned_broker_service_url
            )
        }),
        Some(Type::RedeliverUnacknowledgedMessages) => cmd
            .redeliver_unacknowledged_messages
            .as_deref()
            .map_or_else(String::new, |r| {
                format!(
                    "REDELIVER c{} ids {} epoch {:?}",
                    r.consumer_id,
                    r.message_ids.len(),
                    r.consumer_epoch
                )
            }),
        Some(k) => format!("{k:?}"),
        None => format!("unknown type {}", cmd.r#type),
    }
}
