//! The transaction simulation's view of the model cluster (the coordinators' outcomes, the
//! cursors, the logs) and its checks: settling, and the end of a run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pulsar_core::TxnId;
use pulsar_embedded::core::TxnStatus;

use super::{output_parts, Ev, Owner, TxnWorld, IN, OUT};
use crate::sim::world::RunResult;

impl TxnWorld {
    // ---- the model's view -------------------------------------------------------------------------

    pub(super) fn status(&self, t: TxnId) -> Option<TxnStatus> {
        self.fab
            .cluster
            .store()
            .txns
            .get(&(t.most_bits, t.least_bits))
            .map(|r| r.status)
    }

    pub(super) fn acked_in_cursor(&self, topic: &str, ledger: u64, entry: u64) -> bool {
        let Some(log) = self.fab.cluster.store().log(topic) else {
            return false;
        };
        let (Some(cursor), Some(index)) = (log.cursors.get("pipe"), log.index_of(ledger, entry))
        else {
            return false;
        };
        cursor.is_acked(index)
    }

    /// Whether a committed pipeline transaction other than `txn` acknowledged the message.
    pub(super) fn acked_elsewhere(&self, txn: TxnId, topic: &str, ledger: u64, entry: u64) -> bool {
        self.txns.iter().any(|(k, t)| {
            *k != txn
                && t.inputs
                    .iter()
                    .any(|(tp, l, e, _)| tp == topic && *l == ledger && *e == entry)
                && self.status(*k) == Some(TxnStatus::Committed)
        })
    }

    /// Source payloads of committed transactions, and of the others.
    pub(super) fn source_payloads(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut committed = BTreeSet::new();
        let mut other = BTreeSet::new();
        for (k, t) in &self.txns {
            if t.owner != Owner::Source {
                continue;
            }
            let set = if self.status(*k) == Some(TxnStatus::Committed) {
                &mut committed
            } else {
                &mut other
            };
            set.extend(t.payloads.iter().cloned());
        }
        (committed, other)
    }

    /// Output payloads visible in the logs of `txn-out` (entries of committed transactions),
    /// with how many times each input appears.
    pub(super) fn visible_outputs(&self) -> BTreeMap<String, u32> {
        let store = self.fab.cluster.store();
        let mut counts = BTreeMap::new();
        for (topic, log) in &store.topics {
            if !topic.starts_with(OUT) {
                continue;
            }
            for e in &log.entries {
                let Some(key) = e.metadata.txnid_most_bits.zip(e.metadata.txnid_least_bits) else {
                    continue;
                };
                let committed = store
                    .txns
                    .get(&key)
                    .is_some_and(|r| r.status == TxnStatus::Committed);
                if !committed {
                    continue;
                }
                let text = String::from_utf8_lossy(&e.payload).into_owned();
                if let Some((_, src)) = output_parts(&text) {
                    *counts.entry(src.to_owned()).or_insert(0) += 1;
                }
            }
        }
        counts
    }

    // ---- settling and the end ---------------------------------------------------------------------

    pub(super) fn unsettled(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if self.src_opening.is_some() || !self.ending.is_empty() {
            missing.push("a transaction is still being opened or ended".into());
        }
        let open = self
            .fab
            .cluster
            .store()
            .txns
            .values()
            .filter(|r| r.status == TxnStatus::Open)
            .count();
        if open > 0 {
            missing.push(format!(
                "{open} transactions still open at the coordinators"
            ));
        }
        let (committed, _) = self.source_payloads();
        let seen: BTreeSet<&str> = self
            .verified
            .values()
            .filter_map(|v| output_parts(v).map(|(_, s)| s))
            .collect();
        let absent = committed
            .iter()
            .filter(|p| !seen.contains(p.as_str()))
            .count();
        if absent > 0 {
            missing.push(format!(
                "{absent} committed source messages not yet at the verifier"
            ));
        }
        for t in &self.fab.p.topics {
            if !t.name.starts_with(IN) {
                continue;
            }
            if let Some(b) = self.fab.cluster.backlog(&t.name, "pipe") {
                if b > 0 {
                    missing.push(format!("backlog {b} on {} for the pipeline", t.name));
                }
            }
        }
        missing
    }

    pub(super) fn check(&mut self) {
        if self.settled {
            return;
        }
        let missing = self.unsettled();
        let now = self.now();
        if missing.is_empty() || now >= self.fab.p.chaos + self.fab.p.settle_bound {
            if !missing.is_empty() {
                for m in missing {
                    self.violation(format!(
                        "not settled {:?} after healing: {m}",
                        self.fab.p.settle_bound
                    ));
                }
            } else {
                self.log("settled: every transaction ended, the pipeline caught up");
            }
            self.settled = true;
            self.closing = true;
            let at = self.at();
            for ci in 0..self.clients.len() {
                self.clients[ci].core.close(at);
                self.drain(ci);
            }
            let bound = self.fab.p.client.operation_timeout + Duration::from_secs(5);
            self.fab.sched.after(bound, Ev::CloseClients);
            return;
        }
        self.fab.sched.after(Duration::from_secs(1), Ev::Check);
    }

    pub(super) fn finish(mut self) -> RunResult {
        if !self.fab.fatal {
            let (committed, other) = self.source_payloads();
            let visible = self.visible_outputs();
            for p in &committed {
                let n = visible.get(p).copied().unwrap_or(0);
                if n != 1 {
                    self.violation(format!(
                        "committed input {p} is in the output's committed entries {n} times"
                    ));
                }
            }
            for p in &other {
                if visible.contains_key(p) {
                    self.violation(format!(
                        "input {p} of an aborted transaction is in the output"
                    ));
                }
            }
            let mut at_verifier: BTreeMap<&str, u32> = BTreeMap::new();
            for v in self.verified.values() {
                if let Some((_, src)) = output_parts(v) {
                    *at_verifier.entry(src).or_insert(0) += 1;
                }
            }
            let dup: Vec<String> = at_verifier
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(p, n)| format!("{p} x{n}"))
                .collect();
            if !dup.is_empty() {
                self.violation(format!(
                    "inputs delivered more than once downstream: {dup:?}"
                ));
            }
            self.fab.stats.acked = committed.len() as u64;
            self.fab.stats.failed = other.len() as u64;
            self.fab.stats.received = self.verified.len() as u64;
        }
        let text = format!(
            "end: {} violations, {} transactions, stats {:?}",
            self.fab.violations.len(),
            self.txns.len(),
            self.fab.stats
        );
        self.log(text);
        let (trace_hash, trace_lines, tail) = self.fab.trace_summary();
        RunResult {
            trace_hash,
            trace_lines,
            violations: self.fab.violations,
            tail,
            steps: self.steps,
            sim_time: self.fab.sched.now(),
            stats: self.fab.stats,
        }
    }
}
