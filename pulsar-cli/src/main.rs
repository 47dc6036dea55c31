//! `pulsar-cli`: produce, consume and read Apache Pulsar messages and measure throughput, on the
//! blocking client. Errors are one line on stderr and a non-zero exit code.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod args;
mod auth;
mod connect;
mod error;
mod output;
mod perf;
mod produce;
mod progress;
mod receive;

use clap::Parser;

use crate::args::{Cli, Command, Perf};
use crate::error::CliError;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("pulsar-cli: error: {e}");
        std::process::exit(e.exit_code());
    }
}

fn run(cli: &Cli) -> Result<(), CliError> {
    let client = connect::client(&cli.global)?;
    let format = cli.global.format;
    let result = match &cli.command {
        Command::Produce(a) => produce::run(&client, a, format),
        Command::Consume(a) => receive::consume(&client, a, format),
        Command::Read(a) => receive::read(&client, a, format),
        Command::Perf(Perf::Produce(a)) => perf::produce(&client, a, format),
        Command::Perf(Perf::Consume(a)) => perf::consume(&client, a, format),
    };
    // Close gracefully either way; the command's own error matters more than a close error.
    let closed = client.close();
    result?;
    closed.map_err(CliError::from)
}
