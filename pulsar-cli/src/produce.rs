//! `produce`: send the given messages N times.

use std::collections::VecDeque;
use std::io::IsTerminal;

use bytes::Bytes;
use pulsar_blocking::core::producer::BatchingOptions;
use pulsar_blocking::{Client, OutgoingMessage, Receipt};

use crate::args::{Format, Produce};
use crate::crypto;
use crate::error::CliError;
use crate::output::Printer;
use crate::progress::{Pacer, Progress};
use crate::schema;

/// Receipts waited for at most this far behind the sends (bounds memory on long runs).
const RECEIPT_WINDOW: usize = 1000;

/// Runs `produce`.
pub fn run(client: &Client, args: &Produce, format: Format) -> Result<(), CliError> {
    let schema = schema::value_schema(
        &args.value_schema,
        args.key_schema.as_deref(),
        args.key_value_encoding_type.as_deref(),
    )?;
    let payloads = schema.encode_all(&payloads(args)?, args.key_value_key.as_deref())?;
    if schema.is_key_value() && args.key.is_some() {
        return Err(CliError::Usage(
            "--key and a key-value schema: the key-value key (-kvk) is the message's key".into(),
        ));
    }
    let schema = schema.info();
    let properties = properties(&args.properties)?;
    let mut builder = client.producer(args.topic.clone());
    let (batching, chunking) = (!args.disable_batching, args.chunking);
    let encryption = crypto::encryptor(
        &args.encryption_key_names,
        args.encryption_key_value_file.as_deref(),
    )?;
    builder = builder.configure(move |o| {
        o.encryption = encryption;
        if batching && !chunking {
            o.batching = BatchingOptions::enabled();
        }
        o.chunking = chunking;
        o.schema = Some(schema);
    });
    let producer = builder.create()?;
    let printer = Printer::new(format, false);
    let total = args.num_produce.saturating_mul(payloads.len() as u64);
    let long = total >= 1000 && (format != Format::Text || !std::io::stdout().is_terminal());
    let progress = Progress::new(Some(total), "msgs", long);
    let mut pacer = Pacer::new(args.rate);
    let mut receipts: VecDeque<Receipt> = VecDeque::new();
    let mut done = 0u64;
    for _ in 0..args.num_produce {
        for (payload, separated_key) in &payloads {
            pacer.wait();
            let mut message = OutgoingMessage::new(payload.clone());
            if let Some(key) = &args.key {
                message = message.with_key(key.clone());
            }
            if let Some(key) = separated_key {
                message = message.with_key_bytes(key);
            }
            for (k, v) in &properties {
                message = message.with_property(k.clone(), v.clone());
            }
            if let Some(t) = args.event_time {
                message = message.with_event_time(t);
            }
            receipts.push_back(producer.send_async(message)?);
            while receipts.len() > RECEIPT_WINDOW {
                finish_one(&mut receipts, &printer, &args.topic, &progress)?;
                done += 1;
            }
        }
    }
    while !receipts.is_empty() {
        finish_one(&mut receipts, &printer, &args.topic, &progress)?;
        done += 1;
    }
    progress.finish();
    producer.close()?;
    printer.summary(&format!("{done} messages successfully produced"));
    Ok(())
}

fn finish_one(
    receipts: &mut VecDeque<Receipt>,
    printer: &Printer,
    topic: &str,
    progress: &Progress,
) -> Result<(), CliError> {
    if let Some(receipt) = receipts.pop_front() {
        let id = receipt.wait()?;
        printer.receipt(topic, &id)?;
        progress.inc(1);
    }
    Ok(())
}

/// The values of `-m` split at the separator, then the contents of each `-f` file.
fn payloads(args: &Produce) -> Result<Vec<Bytes>, CliError> {
    if args.separator.is_empty() {
        return Err(CliError::Usage("--separator must not be empty".into()));
    }
    let mut out: Vec<Bytes> = args
        .messages
        .iter()
        .flat_map(|m| m.split(args.separator.as_str()))
        .map(|m| Bytes::copy_from_slice(m.as_bytes()))
        .collect();
    for path in &args.files {
        let data = std::fs::read(path)
            .map_err(|e| CliError::io(format!("reading {}", path.display()), e))?;
        out.push(Bytes::from(data));
    }
    if out.is_empty() {
        return Err(CliError::Usage(
            "nothing to send: give messages with -m or files with -f".into(),
        ));
    }
    Ok(out)
}

/// `key=value` pairs; each flag value may hold several separated by commas.
pub fn properties(values: &[String]) -> Result<Vec<(String, String)>, CliError> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| CliError::Usage(format!("property {kv:?} is not key=value")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_forms() {
        let p = properties(&["a=1,b=2".into(), "c=x=y".into()]).unwrap();
        assert_eq!(
            p,
            [
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "x=y".into())
            ]
        );
        assert!(properties(&["novalue".into()]).is_err());
    }
}
