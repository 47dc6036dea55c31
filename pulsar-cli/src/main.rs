//! `pulsar-cli`: produce, consume and read Apache Pulsar messages and measure throughput, on the
//! blocking client, with the flags of Apache's `pulsar-client` and `pulsar-perf` tools.
//!
//! Errors are one line on stderr naming every cause, and a non-zero exit code. A service URL
//! that cannot be reached is reported within `--initial-connection-timeout` (5 s by default)
//! with the last connection error, instead of after the operation timeout.

#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(clippy::too_many_lines)]

mod args;
mod auth;
mod connect;
mod crypto;
mod decode;
mod error;
mod java_flags;
mod output;
mod perf;
mod produce;
mod progress;
mod reach;
mod receive;
mod schema;

use clap::Parser;

use crate::args::{Cli, Command, Perf};
use crate::error::{full_message, CliError};
use crate::reach::FirstConnection;

fn main() {
    let cli = Cli::parse_from(java_flags::rewrite(std::env::args()));
    if let Err(e) = run(&cli) {
        eprintln!("pulsar-cli: error: {}", full_message(&e));
        std::process::exit(e.exit_code());
    }
}

fn run(cli: &Cli) -> Result<(), CliError> {
    let connections = match &cli.command {
        Command::Perf(Perf::Produce(a)) => Some(a.run.max_connections),
        Command::Perf(Perf::Consume(a)) => Some(a.run.max_connections),
        Command::Perf(Perf::Read(a)) => Some(a.run.max_connections),
        _ => None,
    };
    let bound = connect::initial_connection_timeout(&cli.global)?;
    let client = connect::client(&cli.global, connections)?;
    let reach = FirstConnection::watch(&client, cli.global.url.trim(), bound);
    let format = cli.global.format;
    let result = match &cli.command {
        Command::Produce(a) => produce::run(&client, a, format),
        Command::Consume(a) => receive::consume(&client, a, format),
        Command::Read(a) => receive::read(&client, a, format),
        Command::Perf(Perf::Produce(a)) => perf::produce(&client, a, format),
        Command::Perf(Perf::Consume(a)) => perf::consume(&client, a, format),
        Command::Perf(Perf::Read(a)) => perf::read(&client, a, format),
    };
    // Close gracefully either way; the command's own error matters more than a close error,
    // and an unreachable service URL more than the error it caused.
    let closed = client.close();
    if let Some(unreachable) = reach.finish() {
        return Err(unreachable);
    }
    result?;
    closed.map_err(CliError::from)
}
