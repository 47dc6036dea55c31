//! The Java tools' multi-letter single-dash flags (`pulsar-client -ml 64M`, `pulsar-perf consume
//! -ss sub -time 10`): clap's short flags are one letter, so these are rewritten to their long
//! names before parsing. Each alias applies only in the subcommand it belongs to.

/// Subcommand names, by depth: `produce`, `consume`, `read`, `perf`, then `perf`'s own.
const TOP: &[&str] = &["produce", "consume", "read", "perf"];
const PERF: &[&str] = &["produce", "consume", "read"];

/// (subcommand path where it applies — empty: everywhere, Java flag, long flag).
const ALIASES: &[(&[&str], &str, &str)] = &[
    (&[], "-ml", "--memory-limit"),
    (&["produce"], "-db", "--disable-batching"),
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

/// The arguments with the Java spellings replaced (`-time 10` and `-time=10` alike). Nothing
/// after `--` is touched.
pub fn rewrite(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut path: Vec<&'static str> = Vec::new();
    let mut out = Vec::new();
    let mut rest = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || rest {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            rest = true;
            out.push(arg);
            continue;
        }
        if !arg.starts_with('-') {
            let level = match path.as_slice() {
                [] => TOP,
                ["perf"] => PERF,
                _ => &[],
            };
            if let Some(name) = level.iter().find(|n| **n == arg) {
                path.push(name);
            }
            out.push(arg);
            continue;
        }
        let (flag, value) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (arg.as_str(), None),
        };
        let long = ALIASES
            .iter()
            .find(|(scope, java, _)| {
                *java == flag && (scope.is_empty() || *scope == path.as_slice())
            })
            .map(|(_, _, long)| *long);
        match (long, value) {
            (Some(long), Some(v)) => out.push(format!("{long}={v}")),
            (Some(long), None) => out.push(long.to_string()),
            (None, _) => out.push(arg),
        }
    }
    out
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
    }
}
