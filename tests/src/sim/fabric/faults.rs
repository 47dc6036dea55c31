//! Fault injection and healing: resets, half-open connections, clogs, partitions, broker
//! crashes and topic moves at the seed's rates during the chaos phase, then the healing.

use std::time::Duration;

use crate::sim::broker::{ConnId, MoveKind};
use crate::sim::fabric::{Fabric, NetEv, SimEvent};
use crate::sim::net::{Dir, Phase};

impl<E: SimEvent> Fabric<E> {
    /// Schedules the first fault and the end of the chaos phase.
    pub fn start_chaos(&mut self) {
        if self.p.has_faults() {
            self.schedule_fault();
        }
        let chaos = self.p.chaos;
        self.sched.at(chaos, NetEv::Heal.into());
    }

    fn schedule_fault(&mut self) {
        let f = &self.p.faults;
        let total = f.reset + f.half_open + f.clog + f.partition + f.crash + f.move_topic;
        if total <= 0.0 {
            return;
        }
        let mean = 60.0 / total;
        let d = Duration::from_secs_f64(self.fault_rng.next_f64() * 2.0 * mean);
        self.sched.after(d, NetEv::Fault.into());
    }

    /// Injects one fault, drawn by the seed's rates, and schedules the next.
    pub(crate) fn fault(&mut self) {
        if self.healed {
            return;
        }
        self.schedule_fault();
        let f = &self.p.faults;
        let weights = [
            f.reset,
            f.half_open,
            f.clog,
            f.partition,
            f.crash,
            f.move_topic,
        ];
        let total: f64 = weights.iter().sum();
        let mut x = self.fault_rng.next_f64() * total;
        let mut kind = 0;
        for (k, w) in weights.iter().enumerate() {
            if x < *w {
                kind = k;
                break;
            }
            x -= w;
        }
        let open: Vec<ConnId> = self
            .net
            .live()
            .into_iter()
            .filter(|id| self.net.link(*id).is_some_and(|l| l.phase == Phase::Open))
            .collect();
        self.stats.faults += 1;
        match kind {
            0 => self.fault_reset(&open),
            1 => self.fault_half_open(&open),
            2 => self.fault_clog(&open),
            3 => self.fault_partition(),
            4 => self.fault_crash(),
            _ => self.fault_move(),
        }
    }

    fn fault_reset(&mut self, open: &[ConnId]) {
        if let Some(&id) = self.fault_rng.pick(open) {
            self.log(format!("FAULT reset {id}"));
            let now = self.now();
            let ws = self.net.reset(now, id);
            self.schedule_wakes(ws);
        }
    }

    fn fault_half_open(&mut self, open: &[ConnId]) {
        let cands: Vec<ConnId> = open
            .iter()
            .copied()
            .filter(|id| {
                self.net
                    .link(*id)
                    .is_some_and(|l| l.broker_open && l.client_open)
            })
            .collect();
        if let Some(&id) = self.fault_rng.pick(&cands) {
            self.log(format!("FAULT half-open {id}"));
            let now = self.now();
            self.cluster.on_closed(now, id);
            self.net.half_open(id);
            self.drain_cluster();
        }
    }

    fn fault_clog(&mut self, open: &[ConnId]) {
        if let Some(&id) = self.fault_rng.pick(open) {
            let dir = if self.fault_rng.chance(0.5) {
                Dir::ToBroker
            } else {
                Dir::ToClient
            };
            let d = self
                .fault_rng
                .duration(Duration::from_millis(200), Duration::from_secs(6));
            self.log(format!("FAULT clog {id} {dir:?} for {d:?}"));
            let now = self.now();
            self.net.clog(id, dir, now + d);
        }
    }

    fn fault_partition(&mut self) {
        let client = self.fault_rng.index(self.p.clients);
        let broker = self.fault_rng.index(self.p.brokers);
        let d = self
            .fault_rng
            .duration(Duration::from_secs(1), Duration::from_secs(12));
        self.log(format!("FAULT partition c{client}-b{broker} for {d:?}"));
        self.net.block(client, broker);
        self.sched
            .after(d, NetEv::Unblock { client, broker }.into());
    }

    fn fault_crash(&mut self) {
        let up: Vec<usize> = (0..self.p.brokers)
            .filter(|b| self.cluster.is_up(*b))
            .collect();
        let Some(&b) = self.fault_rng.pick(&up) else {
            return;
        };
        let d = self
            .fault_rng
            .duration(Duration::from_millis(500), Duration::from_secs(8));
        self.log(format!("FAULT crash b{b} for {d:?}"));
        let now = self.now();
        let conns = self.cluster.crash(now, b);
        for id in conns {
            if let Some(l) = self.net.link_mut(id) {
                l.broker_open = false;
            }
            if self.fault_rng.chance(0.5) {
                let ws = self.net.reset(now, id);
                self.schedule_wakes(ws);
            } else {
                self.log(format!("  {id} left half-open by the crash"));
                self.net.half_open(id);
            }
        }
        self.drain_cluster();
        self.sched.after(d, NetEv::Restart(b).into());
    }

    fn fault_move(&mut self) {
        let topics: Vec<String> = self.p.topics.iter().map(|t| t.name.clone()).collect();
        let up: Vec<usize> = (0..self.p.brokers)
            .filter(|b| self.cluster.is_up(*b))
            .collect();
        if let (Some(t), Some(&b)) = (
            self.fault_rng.pick(&topics).cloned(),
            self.fault_rng.pick(&up),
        ) {
            let how = match self.fault_rng.range(0, 2) {
                0 => MoveKind::Close,
                1 => MoveKind::CloseWithUrl,
                _ => MoveKind::Migrated,
            };
            self.log(format!("FAULT move {t} to b{b} ({how:?})"));
            let now = self.now();
            self.cluster.move_topic(now, &t, b, how);
            self.drain_cluster();
        }
    }

    /// A partition ends (unless the run already healed): held data and SYNs go on.
    pub(crate) fn unblock(&mut self, client: usize, broker: usize) {
        if !self.healed {
            self.log(format!("partition c{client}-b{broker} heals"));
            let wakes = self.net.unblock(client, broker);
            self.schedule_wakes(wakes);
            self.retry_syns();
        }
    }

    /// A crashed broker restarts.
    pub(crate) fn restart(&mut self, b: usize) {
        let now = self.now();
        self.cluster.restart(now, b);
        self.drain_cluster();
    }

    /// The chaos phase ends: partitions and clogs end, brokers restart, no more faults; the
    /// settle checks begin a second later.
    pub(crate) fn heal(&mut self) {
        self.healed = true;
        self.log("HEAL: partitions and clogs end, brokers restart, no more faults");
        let now = self.now();
        let ws = self.net.heal();
        self.schedule_wakes(ws);
        for b in 0..self.p.brokers {
            self.cluster.restart(now, b);
        }
        self.cluster.set_faults_enabled(false);
        self.drain_cluster();
        self.retry_syns();
        self.sched.after(Duration::from_secs(1), E::settle_check());
    }
}
