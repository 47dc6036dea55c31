//! Process CPU time and memory, from the kernel (`CLOCK_PROCESS_CPUTIME_ID` and `/proc`).

use std::fs;

/// CPU time used so far by every thread of this process, in seconds (nanosecond resolution).
pub fn process_cpu_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// A `kB` field of a `/proc/<pid>/status` text (`VmRSS`, `VmHWM`, ...).
pub fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// A `kB` field of this process's status (`VmRSS`, `VmHWM`).
pub fn self_kib(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_field_kib(&s, field))
        .unwrap_or(0)
}

/// A `kB` field of process `pid`'s status.
pub fn pid_kib(pid: u32, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kib(&s, field)
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds of process `pid` (all its threads, live or exited) from the
/// fields after the command name of a `/proc/<pid>/stat` line.
pub fn stat_cpu_s(stat: &str) -> Option<f64> {
    // The command name may contain spaces and parentheses: the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15 (1-based).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// `pid` and all its descendants (from `/proc/<pid>/task/<tid>/children`).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                let path = task.path().join("children");
                if let Ok(children) = fs::read_to_string(path) {
                    out.extend(
                        children
                            .split_whitespace()
                            .filter_map(|c| c.parse::<u32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    out
}

/// CPU seconds used so far by `pid` and its descendants.
pub fn tree_cpu_s(pid: u32) -> f64 {
    process_tree(pid)
        .into_iter()
        .filter_map(|p| fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| stat_cpu_s(&s))
        .sum()
}

/// The largest peak resident set (VmHWM, KiB) among `pid` and its descendants.
pub fn tree_peak_rss_kib(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .filter_map(|p| pid_kib(p, "VmHWM"))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let s = "Name:\tjava\nVmHWM:\t  123456 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(status_field_kib(s, "VmHWM"), Some(123_456));
        assert_eq!(status_field_kib(s, "VmRSS"), Some(2048));
        assert_eq!(status_field_kib(s, "VmSwap"), None);
    }

    #[test]
    fn parses_stat_cpu_with_odd_command_names() {
        let line = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(stat_cpu_s(line), Some(3.0));
    }

    #[test]
    fn own_process_is_visible() {
        let me = std::process::id();
        assert!(process_tree(me).contains(&me));
        assert!(self_kib("VmRSS") > 0);
        let spin: u64 = (0..2_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        assert!(process_cpu_s() > 0.0);
    }
}
