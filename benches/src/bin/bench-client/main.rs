//! This project's client running one benchmark workload on one runtime.
//!
//! `bench-client --runtime tokio|smol|blocking --spec '<json Spec>'` prints `RESULT {json}`.
//! The harness (`pulsar-bench`) starts one such process per run, so that CPU time and peak
//! memory are this client's alone. Fixed-rate sends are paced by the runtime's own timer on the
//! async runtimes (as an application on them would) and by `thread::sleep` on the blocking one,
//! waking on whole milliseconds of the schedule (`Schedule::wake_at`: tokio's timer granularity,
//! so that a finer timer does not charge smol and blocking for a wake-up per message). tokio
//! runs a current-thread runtime (the driver and the application share one thread); smol runs the application in `block_on` and the driver on its
//! global executor; blocking runs the driver thread of `pulsar-blocking`.

mod asynch;
mod blocking;

use std::sync::Arc;
use std::time::Duration;

use pulsar_benches::latency::Recorder;
use pulsar_benches::procfs;
use pulsar_benches::spec::{
    ClientResult, Spec, BATCH_DELAY_US, BATCH_MAX_BYTES, BATCH_MAX_MESSAGES, MAX_PENDING,
    RECEIVER_QUEUE,
};
use pulsar_benches::window::Counters;
use pulsar_benches::BenchError;
use pulsar_blocking::core::producer::BatchingOptions;
use pulsar_blocking::crypto::{Encryptor, PemKeyReader};
use pulsar_blocking::{ConsumerOptions, ProducerOptions};

/// Acknowledged sends, failures and the stop flag of the running workload.
pub(crate) static COUNTERS: Counters = Counters::new();

/// Publish latencies of a paced run.
pub(crate) fn publish_latency() -> &'static Recorder {
    static R: std::sync::OnceLock<Recorder> = std::sync::OnceLock::new();
    R.get_or_init(Recorder::new)
}

/// End-to-end latencies.
pub(crate) fn e2e_latency() -> &'static Recorder {
    static R: std::sync::OnceLock<Recorder> = std::sync::OnceLock::new();
    R.get_or_init(Recorder::new)
}

/// The producer settings every client uses.
pub(crate) fn producer_options(spec: &Spec, options: &mut ProducerOptions) {
    options.max_pending_messages = MAX_PENDING;
    options.batching = if spec.batching {
        BatchingOptions::enabled().with_limits(
            BATCH_MAX_MESSAGES,
            BATCH_MAX_BYTES,
            Duration::from_micros(BATCH_DELAY_US),
        )
    } else {
        BatchingOptions::default()
    };
    if let (Some(name), Some(file)) = (&spec.encryption_key_name, &spec.encryption_key_file) {
        let reader = PemKeyReader::files(Some(file.into()), None);
        options.encryption = Some(Arc::new(Encryptor::new([name.as_str()], Arc::new(reader))));
    }
}

/// The consumer settings every client uses.
pub(crate) fn consumer_options(options: &mut ConsumerOptions) {
    options.receiver_queue_size = RECEIVER_QUEUE;
}

/// Seconds as a duration (negative or NaN: zero).
pub(crate) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

fn parse_args() -> Result<(String, Spec), BenchError> {
    let mut runtime = None;
    let mut spec = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runtime" => runtime = args.next(),
            "--spec" => {
                let text = args
                    .next()
                    .ok_or_else(|| BenchError::Usage("--spec needs JSON".into()))?;
                spec = Some(
                    serde_json::from_str::<Spec>(&text)
                        .map_err(|e| BenchError::Usage(format!("bad spec: {e}")))?,
                );
            }
            other => return Err(BenchError::Usage(format!("unknown argument {other}"))),
        }
    }
    match (runtime, spec) {
        (Some(r), Some(s)) => Ok((r, s)),
        _ => Err(BenchError::Usage(
            "bench-client --runtime tokio|smol|blocking --spec JSON".into(),
        )),
    }
}

fn run() -> Result<ClientResult, BenchError> {
    let (runtime, spec) = parse_args()?;
    let cpu0 = procfs::process_cpu_s();
    let mut result = match runtime.as_str() {
        "tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BenchError::io("tokio runtime"))?;
            rt.block_on(async {
                let client = pulsar_tokio::Client::builder(spec.url.clone())
                    .build()
                    .map_err(BenchError::client)?;
                let r = asynch::run(client.handle(), &spec, |at| {
                    Box::pin(tokio::time::sleep_until(at.into()))
                })
                .await;
                let _ = client.close().await;
                r
            })?
        }
        "smol" => smol::block_on(async {
            let client = pulsar_smol::Client::builder(spec.url.clone())
                .build()
                .map_err(BenchError::client)?;
            let r = asynch::run(client.handle(), &spec, |at| {
                Box::pin(async move {
                    smol::Timer::at(at).await;
                })
            })
            .await;
            let _ = client.close().await;
            r
        })?,
        "blocking" => {
            let client = pulsar_blocking::Client::builder(spec.url.clone())
                .build()
                .map_err(BenchError::client)?;
            let r = blocking::run(&client, &spec);
            let _ = client.close();
            r?
        }
        other => return Err(BenchError::Usage(format!("unknown runtime {other}"))),
    };
    result.total_cpu_s = procfs::process_cpu_s() - cpu0;
    result.peak_rss_kib = procfs::self_kib("VmHWM");
    Ok(result)
}

fn main() {
    match run() {
        Ok(r) => println!("{}", r.to_line()),
        Err(e) => {
            eprintln!("bench-client: {e}");
            std::process::exit(1);
        }
    }
}
