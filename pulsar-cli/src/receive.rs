//! `consume` (a subscription) and `read` (a non-durable position, like the Java tool's reader).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use pulsar_blocking::core::{Message, MessageId, SchemaInfo};
use pulsar_blocking::{Client, InitialPosition, SubscriptionType};

use crate::args::{
    Consume, Format, ModeArg, PositionArg, Read, ReceiveArgs, SchemaTypeArg, SubscriptionTypeArg,
};
use crate::connect::seconds;
use crate::decode::AutoDecoder;
use crate::error::CliError;
use crate::output::Printer;
use crate::progress::{Pacer, Progress};

/// The core's subscription type for the flag.
pub fn subscription_type(t: SubscriptionTypeArg) -> SubscriptionType {
    match t {
        SubscriptionTypeArg::Exclusive => SubscriptionType::Exclusive,
        SubscriptionTypeArg::Shared => SubscriptionType::Shared,
        SubscriptionTypeArg::Failover => SubscriptionType::Failover,
        SubscriptionTypeArg::KeyShared => SubscriptionType::KeyShared,
    }
}

/// The core's initial position for the flag.
pub fn position(p: PositionArg) -> InitialPosition {
    match p {
        PositionArg::Latest => InitialPosition::Latest,
        PositionArg::Earliest => InitialPosition::Earliest,
    }
}

/// Runs `consume`.
pub fn consume(client: &Client, args: &Consume, format: Format) -> Result<(), CliError> {
    let builder = if args.regex {
        client.consumer_pattern(args.topic.clone())
    } else {
        client.consumer(args.topic.clone())
    };
    let mut builder = builder
        .subscription(args.subscription_name.clone())
        .subscription_type(subscription_type(args.subscription_type))
        .initial_position(position(args.subscription_position))
        .durable(args.subscription_mode == ModeArg::Durable);
    if let Some(q) = args.receive.queue_size.filter(|q| *q > 0) {
        builder = builder.receiver_queue_size(q);
    }
    let auto = args.receive.schema_type == SchemaTypeArg::AutoConsume;
    if auto {
        builder = builder.configure(|o| o.schema = Some(SchemaInfo::auto_consume()));
    }
    let crypto = crate::crypto::decryption(args.receive.encryption_key_value_file.as_deref())?;
    builder = builder.configure(|o| o.crypto = crypto);
    let consumer = builder.subscribe()?;
    let decoder = auto.then(|| AutoDecoder::new(client));
    let count = receive_loop(
        |t| consumer.receive_timeout(t),
        |m| consumer.ack(m),
        decoder.as_ref(),
        &args.receive,
        format,
    )?;
    consumer.close()?;
    eprintln!("{count} messages successfully consumed");
    Ok(())
}

/// Where `read` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first retained message.
    Earliest,
    /// After the last message.
    Latest,
    /// After (or at, when inclusive) this message: ledger, entry, partition, batch index.
    At(u64, u64, i32, i32),
}

impl Start {
    /// The core's message id for this position.
    pub fn message_id(self) -> MessageId {
        match self {
            Start::Earliest => MessageId::EARLIEST,
            Start::Latest => MessageId::LATEST,
            Start::At(ledger, entry, partition, batch) => {
                let mut id = MessageId::new(ledger, entry, partition);
                id.batch_index = batch;
                id
            }
        }
    }
}

/// The position of `read -m` and `perf read -m`: `earliest`, `latest` (any case), or a message id
/// `ledger:entry[:partition[:batch[:batch_size]]]` as the CLI prints it (partition and batch
/// default to -1; the batch size of a batched message's id is accepted and not needed); a usage
/// error otherwise.
pub fn parse_start(s: &str) -> Result<Start, CliError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "earliest" => return Ok(Start::Earliest),
        "latest" => return Ok(Start::Latest),
        _ => {}
    }
    let bad = || {
        CliError::Usage(format!(
            "start message id {s:?}: expected latest, earliest or \
             ledger:entry[:partition[:batch[:batch_size]]]"
        ))
    };
    let parts: Vec<&str> = s.trim().split(':').collect();
    if !(2..=5).contains(&parts.len()) {
        return Err(bad());
    }
    let number = |i: usize| -> Result<i64, CliError> {
        parts
            .get(i)
            .map_or(Ok(-1), |p| p.parse::<i64>().map_err(|_| bad()))
    };
    let (ledger, entry) = (number(0)?, number(1)?);
    let (partition, batch, batch_size) = (number(2)?, number(3)?, number(4)?);
    if ledger < 0
        || entry < 0
        || partition > i64::from(i32::MAX)
        || batch > i64::from(i32::MAX)
        || batch_size > i64::from(i32::MAX)
    {
        return Err(bad());
    }
    Ok(Start::At(
        ledger as u64,
        entry as u64,
        partition.max(-1) as i32,
        batch.max(-1) as i32,
    ))
}

/// Runs `read`: a reader (non-durable, like the Java tool's) from the start position; a message
/// id is honoured by the broker itself, so it works on partitioned topics too.
pub fn read(client: &Client, args: &Read, format: Format) -> Result<(), CliError> {
    let start = parse_start(&args.start_message_id)?;
    let mut builder = client
        .reader(args.topic.clone())
        .start_message_id(start.message_id());
    if args.inclusive {
        builder = builder.start_inclusive();
    }
    if let Some(q) = args.receive.queue_size.filter(|q| *q > 0) {
        builder = builder.receiver_queue_size(q);
    }
    let auto = args.receive.schema_type == SchemaTypeArg::AutoConsume;
    if auto {
        builder = builder.configure(|o| o.schema = Some(SchemaInfo::auto_consume()));
    }
    let crypto = crate::crypto::decryption(args.receive.encryption_key_value_file.as_deref())?;
    builder = builder.configure(|o| o.crypto = crypto);
    let reader = builder.create()?;
    let decoder = auto.then(|| AutoDecoder::new(client));
    let count = receive_loop(
        |t| reader.receive_timeout(t),
        |_| Ok(()),
        decoder.as_ref(),
        &args.receive,
        format,
    )?;
    reader.close()?;
    eprintln!("{count} messages successfully read");
    Ok(())
}

/// Receives until `-n` messages arrived (0: forever), printing (decoded with `decoder` when
/// given) and acknowledging them.
fn receive_loop(
    receive: impl Fn(Duration) -> Result<Option<Message>, pulsar_blocking::Error>,
    ack: impl Fn(&Message) -> Result<(), pulsar_blocking::Error>,
    decoder: Option<&AutoDecoder<'_>>,
    args: &ReceiveArgs,
    format: Format,
) -> Result<u64, CliError> {
    let printer = Printer::new(format, args.hex);
    let n = args.num_messages;
    let timeout = args.timeout.map(|t| seconds(t, "--timeout")).transpose()?;
    let long = (n == 0 || n >= 1000) && (args.hide_content || !std::io::stdout().is_terminal());
    let progress = Progress::new((n > 0).then_some(n), "msgs", long);
    let mut pacer = Pacer::new(args.rate);
    let mut count = 0u64;
    let mut last = Instant::now();
    while n == 0 || count < n {
        pacer.wait();
        let slice = match timeout {
            Some(t) => t.saturating_sub(last.elapsed()).min(Duration::from_secs(1)),
            None => Duration::from_secs(1),
        };
        match receive(slice)? {
            Some(message) => {
                last = Instant::now();
                count += 1;
                if !args.hide_content {
                    let value = decoder.and_then(|d| d.decode(&message));
                    printer.message(&message, value.as_ref())?;
                } else if count.is_multiple_of(1000) && !progress.is_shown() {
                    eprintln!("Received {count} messages");
                }
                progress.inc(1);
                ack(&message)?;
            }
            None => {
                if let Some(t) = timeout.filter(|t| last.elapsed() >= *t) {
                    return Err(CliError::Incomplete(format!(
                        "received {count} of {n} messages: none for {:.1} s (--timeout)",
                        t.as_secs_f64()
                    )));
                }
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions() {
        assert_eq!(parse_start("earliest").unwrap(), Start::Earliest);
        assert_eq!(parse_start("Latest").unwrap(), Start::Latest);
        assert_eq!(parse_start("12:34").unwrap(), Start::At(12, 34, -1, -1));
        assert_eq!(parse_start("12:34:-1:5").unwrap(), Start::At(12, 34, -1, 5));
        assert_eq!(parse_start("12:34:2").unwrap(), Start::At(12, 34, 2, -1));
        // a batched message's id as printed (with the batch size)
        assert_eq!(
            parse_start("12:34:-1:5:10").unwrap(),
            Start::At(12, 34, -1, 5)
        );
        let id = Start::At(12, 34, 2, 5).message_id();
        assert_eq!(
            (id.ledger_id, id.entry_id, id.partition, id.batch_index),
            (12, 34, 2, 5)
        );
        for bad in ["", "12", "a:b", "-1:2", "1:2:3:4:5:6", "1:2:3:4:x"] {
            assert!(parse_start(bad).is_err(), "{bad}");
        }
    }
}
