//! A summary of the criterion microbenchmarks found in `target/criterion`.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One criterion benchmark's latest estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct CriterionEntry {
    /// `group/function/value`.
    pub id: String,
    /// Mean time per iteration, nanoseconds.
    pub mean_ns: f64,
    /// Elements per iteration, when the benchmark declared an element throughput.
    pub elements: Option<u64>,
    /// Bytes per iteration, when it declared a byte throughput.
    pub bytes: Option<u64>,
}

impl CriterionEntry {
    /// Nanoseconds per element (or per iteration without an element count).
    pub fn ns_per_element(&self) -> f64 {
        self.mean_ns / self.elements.unwrap_or(1).max(1) as f64
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") {
                if p.join("estimates.json").is_file() && p.join("benchmark.json").is_file() {
                    out.push(p);
                }
            } else if p.file_name().is_none_or(|n| n != "report" && n != "base") {
                walk(&p, out);
            }
        }
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Every benchmark under `dir` (a `target/criterion` directory), sorted by id.
pub fn collect(dir: &Path) -> Vec<CriterionEntry> {
    let mut dirs = Vec::new();
    walk(dir, &mut dirs);
    let mut out: Vec<CriterionEntry> = dirs
        .into_iter()
        .filter_map(|d| {
            let bench = read_json(&d.join("benchmark.json"))?;
            let est = read_json(&d.join("estimates.json"))?;
            Some(CriterionEntry {
                id: bench["full_id"].as_str()?.to_owned(),
                mean_ns: est["mean"]["point_estimate"].as_f64()?,
                elements: bench["throughput"]["Elements"].as_u64(),
                bytes: bench["throughput"]["Bytes"].as_u64(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_criterion_tree() {
        let root = std::env::temp_dir().join(format!("crit-{}", std::process::id()));
        let new = root.join("frame_encode/ours_100B/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::create_dir_all(root.join("report")).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"full_id":"frame_encode/ours/100B","throughput":{"Elements":64}}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"mean":{"point_estimate":6400.0}}"#,
        )
        .unwrap();
        let got = collect(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "frame_encode/ours/100B");
        assert_eq!(got[0].ns_per_element(), 100.0);
    }
}
