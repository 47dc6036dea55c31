//! `perf produce`, `perf consume` and `perf read`: Apache `pulsar-perf`'s workloads (several
//! topics, producers per topic, subscriptions and consumers per subscription), reporting
//! aggregated throughput (msg/s, MB/s) and HdrHistogram latency percentiles, with interim reports
//! and a progress bar on a terminal.

mod produce;
mod receive;
mod report;

pub use produce::produce;
pub use receive::{consume, read};
