//! The Java tools' multi-letter single-dash flags (`pulsar-client -ml 64M`, `pulsar-perf consume
//! -ss sub -time 10`): clap's short flags are one letter, so these are rewritten to their long
//! names before parsing. Each alias applies only in the subcommand it belongs to, and only to a
//! token in flag position: the value of a preceding option (`produce t -m -ml` sends the message
//! `-ml`) is left alone. Which options take a value comes from the clap definition itself.

use clap::{Arg, Command, CommandFactory};

use crate::args::Cli;

/// (subcommand path where it applies — empty: everywhere, Java flag, long flag).
const ALIASES: &[(&[&str], &str, &str)] = &[
    (&[], "-ml", "--memory-limit"),
    (&["produce"], "-db", "--disable-batching"),
    (&["produce"], "-vs", "--value-schema"),
    (&["produce"], "-ks", "--key-schema"),
    (&["produce"], "-kvet", "--key-value-encoding-type"),
    (&["produce"], "-kvk", "--key-value-key"),
    (&["produce"], "-ekn", "--encryption-key-name"),
    (&["produce"], "-ekv", "--encryption-key-value-file"),
    (&["consume"], "-ekv", "--encryption-key-value-file"),
    (&["read"], "-ekv", "--encryption-key-value-file"),
    (&["consume"], "-st", "--schema-type"),
    (&["read"], "-st", "--schema-type"),
    (&["perf", "produce"], "-db", "--disable-batching"),
    (&["perf", "produce"], "-bm", "--batch-max-messages"),
    (&["perf", "produce"], "-bb", "--batch-max-bytes"),
    (&["perf", "produce"], "-ch", "--chunking"),
    (&["perf", "produce"], "-pn", "--producer-name"),
    (&["perf", "produce"], "-mk", "--message-key-generation-mode"),
    (&["perf", "produce"], "-set", "--set-event-time"),
    (&["perf", "produce"], "-time", "--test-duration"),
    (&["perf", "consume"], "-ss", "--subscriptions"),
    (&["perf", "consume"], "-ns", "--num-subscriptions"),
    (&["perf", "consume"], "-st", "--subscription-type"),
    (&["perf", "consume"], "-sp", "--subscription-position"),
    (&["perf", "consume"], "-time", "--test-duration"),
    (&["perf", "read"], "-time", "--test-duration"),
];

/// What the next token is, after an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// A flag, a subcommand or a positional.
    Free,
    /// The value of the option before it, whatever it looks like.
    Value,
    /// The value of the option before it unless it starts with `-` (an optional value).
    MaybeValue,
}

/// The arguments with the Java spellings replaced (`-time 10` and `-time=10` alike). Nothing
/// after `--` is touched, nor any option's value.
pub fn rewrite(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut root = Cli::command();
    // Propagates the global options into every subcommand, so each level knows all its options.
    root.build();
    rewrite_with(&root, args)
}

/// [`rewrite`] for the command definition `root` (built).
fn rewrite_with(root: &Command, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut command = root;
    let mut path: Vec<&str> = Vec::new();
    let mut next = Next::Free;
    let mut out = Vec::new();
    let mut rest = false;
    for (i, arg) in args.into_iter().enumerate() {
        let value = match next {
            Next::Value => true,
            Next::MaybeValue => !arg.starts_with('-'),
            Next::Free => false,
        };
        next = Next::Free;
        if i == 0 || rest || value {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            rest = true;
            out.push(arg);
            continue;
        }
        if !arg.starts_with('-') || arg == "-" {
            if command.has_subcommands() {
                if let Some(sub) = command.find_subcommand(&arg) {
                    command = sub;
                    path.push(sub.get_name());
                }
            }
            out.push(arg);
            continue;
        }
        let (flag, attached) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (arg.as_str(), None),
        };
        let long = ALIASES
            .iter()
            .find(|(scope, java, _)| {
                *java == flag && (scope.is_empty() || *scope == path.as_slice())
            })
            .map(|(_, _, long)| *long);
        let flag = long.unwrap_or(flag);
        if attached.is_none() {
            next = after(command, flag);
        }
        match (long, attached) {
            (Some(long), Some(v)) => out.push(format!("{long}={v}")),
            (Some(long), None) => out.push(long.to_string()),
            (None, _) => out.push(arg),
        }
    }
    out
}

/// What follows `flag` (without an attached `=value`) in `command`: `--long`, or `-abc` (short
/// flags together, the last one possibly taking a value; characters after a short option that
/// takes a value are its value).
fn after(command: &Command, flag: &str) -> Next {
    if let Some(name) = flag.strip_prefix("--") {
        return command
            .get_arguments()
            .find(|a| {
                a.get_long() == Some(name)
                    || a.get_all_aliases()
                        .is_some_and(|aliases| aliases.contains(&name))
            })
            .map_or(Next::Free, takes);
    }
    let shorts = flag.trim_start_matches('-');
    for (i, c) in shorts.char_indices() {
        let Some(arg) = command.get_arguments().find(|a| a.get_short() == Some(c)) else {
            return Next::Free;
        };
        let next = takes(arg);
        if next != Next::Free {
            // the rest of the token, if any, is the value
            return if i + c.len_utf8() < shorts.len() {
                Next::Free
            } else {
                next
            };
        }
    }
    Next::Free
}

/// Whether `arg` takes a value, and whether it must.
fn takes(arg: &Arg) -> Next {
    if !arg.get_action().takes_values() {
        return Next::Free;
    }
    match arg.get_num_args() {
        Some(range) if range.min_values() == 0 => Next::MaybeValue,
        Some(range) if range.max_values() == 0 => Next::Free,
        _ => Next::Value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Vec<String> {
        rewrite(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn aliases_apply_in_their_subcommand_only() {
        assert_eq!(
            run(&[
                "x", "-ml", "64M", "perf", "consume", "t", "-ss", "a", "-time=5", "-st", "Shared"
            ]),
            [
                "x",
                "--memory-limit",
                "64M",
                "perf",
                "consume",
                "t",
                "--subscriptions",
                "a",
                "--test-duration=5",
                "--subscription-type",
                "Shared"
            ]
        );
        // -db belongs to produce, not to consume; -time not to plain read
        assert_eq!(run(&["x", "consume", "-db"]), ["x", "consume", "-db"]);
        assert_eq!(
            run(&["x", "read", "t", "-time"]),
            ["x", "read", "t", "-time"]
        );
        assert_eq!(
            run(&["x", "produce", "t", "-db"]),
            ["x", "produce", "t", "--disable-batching"]
        );
        // a topic named like a subcommand does not change the path once it is complete
        assert_eq!(
            run(&["x", "perf", "read", "consume", "-time", "1"]),
            ["x", "perf", "read", "consume", "--test-duration", "1"]
        );
        // nothing after --
        assert_eq!(
            run(&["x", "perf", "produce", "--", "-db"]),
            ["x", "perf", "produce", "--", "-db"]
        );
        assert_eq!(
            run(&[
                "x",
                "produce",
                "t",
                "-vs",
                "string",
                "-ks=string",
                "-kvet",
                "inline"
            ]),
            [
                "x",
                "produce",
                "t",
                "--value-schema",
                "string",
                "--key-schema=string",
                "--key-value-encoding-type",
                "inline"
            ]
        );
    }

    #[test]
    fn values_of_options_are_not_rewritten() {
        // the message -ml, then the flag -ml
        assert_eq!(
            run(&["x", "produce", "t", "-m", "-ml", "-ml", "1M"]),
            ["x", "produce", "t", "-m", "-ml", "--memory-limit", "1M"]
        );
        // long options and an alias's own value
        assert_eq!(
            run(&[
                "x",
                "produce",
                "t",
                "--key",
                "-db",
                "--messages",
                "-vs",
                "-db"
            ]),
            [
                "x",
                "produce",
                "t",
                "--key",
                "-db",
                "--messages",
                "-vs",
                "--disable-batching"
            ]
        );
        assert_eq!(
            run(&["x", "perf", "consume", "t", "-ss", "-time", "-time", "3"]),
            [
                "x",
                "perf",
                "consume",
                "t",
                "--subscriptions",
                "-time",
                "--test-duration",
                "3"
            ]
        );
        // a global option's value is neither rewritten nor taken for a subcommand
        assert_eq!(
            run(&["x", "--listener-name", "produce", "-ml", "1K", "read", "t"]),
            [
                "x",
                "--listener-name",
                "produce",
                "--memory-limit",
                "1K",
                "read",
                "t"
            ]
        );
        // global options are known in subcommands too
        assert_eq!(
            run(&["x", "produce", "t", "--token", "-ml", "-m", "-db"]),
            ["x", "produce", "t", "--token", "-ml", "-m", "-db"]
        );
        // a value attached to a short option ends the option: the next token is free
        assert_eq!(
            run(&["x", "produce", "t", "-kkey", "-db", "-m=-db"]),
            ["x", "produce", "t", "-kkey", "--disable-batching", "-m=-db"]
        );
        // an optional value is a value only when it does not look like a flag
        assert_eq!(
            run(&[
                "x",
                "--tls-enable-hostname-verification",
                "-ml",
                "1M",
                "read",
                "t"
            ]),
            [
                "x",
                "--tls-enable-hostname-verification",
                "--memory-limit",
                "1M",
                "read",
                "t"
            ]
        );
        // flags that take no value leave the next token free
        assert_eq!(
            run(&["x", "produce", "t", "-c", "-db"]),
            ["x", "produce", "t", "-c", "--disable-batching"]
        );
    }
}
