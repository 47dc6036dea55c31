//! The async client (`pulsar-async`: its driver, waiter tables, send tables, back-pressure,
//! callbacks, flush, close and drop) under the deterministic simulation (issue 14).
//!
//! The same seed decides the same cluster, network, faults and workload as in the core
//! simulation ([`Params`]), plus how the application uses the async API ([`params`]). Each
//! client runs on a simulated [`Runtime`](pulsar_async::Runtime) ([`runtime`]): the clock is the
//! scheduler's, timers are scheduler entries, connections are links of the simulated network
//! to the model brokers ([`env`](mod@env)), and every task (the clients' drivers, the application's
//! producers, consumers and observers) runs on one deterministic [`executor`], polled until idle
//! between two scheduler events. The application records what it observes in the core
//! simulation's models, and `check.rs` judges them the same way.

pub mod consumer;
pub mod env;
pub mod executor;
pub mod models;
pub mod observers;
pub mod params;
pub mod producer;
pub mod runtime;

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use futures::future::poll_fn;
use pulsar_async::{ClientHandle, ClientOptions};

use crate::sim::async_world::env::{Env, Ev};
use crate::sim::async_world::executor::{Executor, Spawner};
use crate::sim::async_world::params::AsyncParams;
use crate::sim::async_world::runtime::SimRuntime;
use crate::sim::broker::ModelCluster;
use crate::sim::check::{all_messages, check_log, unsettled};
use crate::sim::fabric::configure_client;
use crate::sim::params::Params;
use crate::sim::world::RunResult;

/// Most scheduler events one run may process.
const MAX_STEPS: u64 = 3_000_000;
/// Most events at one instant before the run counts as a livelock.
const MAX_SAME_INSTANT: u64 = 200_000;
/// Most task polls between two scheduler events before the run counts as a livelock.
const MAX_POLLS: u64 = 200_000;

/// Locks a mutex of the run. Only the simulation thread ever locks them, so a lock already
/// held means a re-entrant call (a bug of the harness): panic instead of deadlocking.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.try_lock() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => panic!("re-entrant lock in the simulation"),
    }
}

/// What the application's tasks share.
#[derive(Debug)]
pub struct Ctx {
    /// The environment (network, cluster, records, trace).
    pub env: Arc<Mutex<Env>>,
    /// One runtime per client.
    pub runtimes: Vec<SimRuntime>,
    /// The clients.
    pub clients: Vec<ClientHandle>,
    /// Spawns tasks.
    pub spawner: Spawner,
}

impl Ctx {
    /// The environment, locked (never hold it across a call into the client).
    pub fn env(&self) -> MutexGuard<'_, Env> {
        lock(&self.env)
    }

    /// Whether the clients are being closed.
    pub fn is_closing(&self) -> bool {
        self.env().app.closing
    }

    /// Ready once the clients are being closed.
    pub async fn closing(&self) {
        poll_fn(|cx| self.env().app.poll_closing(cx)).await;
    }
}

/// Runs the async simulation of `p` to the end and checks everything (`echo` prints every
/// trace line).
pub fn run(p: Params, echo: bool) -> RunResult {
    let ap = AsyncParams::from_params(&p);
    let env = Arc::new(Mutex::new(Env::new(p.clone(), ap.clone(), echo)));
    lock(&env).log(format!("start seed {} ({ap})", p.seed));
    let mut exec = Executor::new();
    let spawner = exec.spawner();
    let ctx = start_clients(&p, &env, &spawner);
    spawn_workload(&ctx, &p);
    lock(&env).fab.start_chaos();
    let steps = run_loop(&ctx, &mut exec);
    let result = finish(&env, steps, exec.polls);
    // The end: every task dropped (the drivers with them), then nothing may hold the world.
    drop(ctx);
    exec.shutdown();
    let mut result = result;
    let holders = Arc::strong_count(&env);
    if holders != 1 {
        result.violations.push(format!(
            "the run's world is still held {} times after every task was dropped (a leak)",
            holders - 1
        ));
    }
    result
}

/// Starts every client on its simulated runtime, as the core simulation configures them.
fn start_clients(p: &Params, env: &Arc<Mutex<Env>>, spawner: &Spawner) -> Arc<Ctx> {
    let mut seeds = crate::sim::rng::SimRng::new(p.seed ^ 0xA5C1_0000_0000_0005);
    let mut runtimes = Vec::new();
    let mut clients = Vec::new();
    for i in 0..p.clients {
        let rt = SimRuntime::new(env.clone(), i, spawner.clone());
        let mut options = ClientOptions::new(ModelCluster::service_url(p.brokers));
        options.core.seed = seeds.next_u64() ^ i as u64;
        configure_client(&mut options.core, p);
        options.event_buffer = 1 << 20;
        match pulsar_async::start(rt.clone(), options) {
            Ok(c) => clients.push(c),
            Err(e) => panic!("client {i} did not start: {e}"),
        }
        runtimes.push(rt);
    }
    Arc::new(Ctx {
        env: env.clone(),
        runtimes,
        clients,
        spawner: spawner.clone(),
    })
}

/// Spawns the application: producers, consumers and each client's observers.
fn spawn_workload(ctx: &Arc<Ctx>, p: &Params) {
    for ci in 0..p.clients {
        ctx.spawner.spawn(observers::events_task(ctx.clone(), ci));
        ctx.spawner.spawn(observers::limits_task(ctx.clone(), ci));
    }
    let start = || {
        ctx.env()
            .app_delay(Duration::ZERO, Duration::from_millis(500))
    };
    for i in 0..p.producers.len() {
        let task = producer::producer_task(ctx.clone(), i, start());
        ctx.spawner.spawn(task);
    }
    for i in 0..p.consumers.len() {
        let task = consumer::consumer_task(ctx.clone(), i, start());
        ctx.spawner.spawn(task);
    }
}

/// Polls the tasks until idle, then hands the next scheduler event over, until every client
/// closed (or a fatal violation). Returns the number of scheduler events.
fn run_loop(ctx: &Arc<Ctx>, exec: &mut Executor) -> u64 {
    let mut steps = 0u64;
    let mut last = Duration::ZERO;
    let mut same = 0u64;
    loop {
        if let Err(e) = exec.run_until_idle(MAX_POLLS) {
            ctx.env().fatal(e);
            return steps;
        }
        let mut e = ctx.env();
        if e.fab.fatal {
            return steps;
        }
        if e.app.closing && e.app.closed.iter().all(|c| *c) {
            e.log("every client closed");
            return steps;
        }
        let Some((now, ev)) = e.fab.sched.pop() else {
            e.violation("the event queue ran dry before the run finished".into());
            return steps;
        };
        steps += 1;
        if now == last {
            same += 1;
            if same > MAX_SAME_INSTANT {
                e.fatal(format!("livelock: {same} events at one instant"));
                return steps;
            }
        } else {
            same = 0;
            last = now;
        }
        if steps > MAX_STEPS {
            e.fatal(format!("no progress: {MAX_STEPS} events without finishing"));
            return steps;
        }
        if steps & 4095 == 0 {
            e.collect_garbage();
        }
        match ev {
            Ev::Check => {
                if check_settled(&mut e) {
                    drop(e);
                    begin_close(ctx);
                }
            }
            Ev::CloseBound => {
                for ci in 0..e.app.closed.len() {
                    if !e.app.closed[ci] {
                        e.violation(format!(
                            "client {ci} did not finish closing within the operation timeout"
                        ));
                    }
                }
                return steps;
            }
            other => e.handle(other),
        }
    }
}

/// Whether the run settled (or the bound passed, with violations); otherwise checks again in
/// a second.
fn check_settled(e: &mut Env) -> bool {
    if e.app.closing {
        return false;
    }
    let missing = unsettled(&e.app.producers, &e.app.subs, &e.fab.cluster);
    let now = e.now();
    if missing.is_empty() {
        e.log("settled: every send finished, every subscription caught up");
        return true;
    }
    if now >= e.fab.p.chaos + e.fab.p.settle_bound {
        let bound = e.fab.p.settle_bound;
        for m in missing {
            e.violation(format!("not settled {bound:?} after healing: {m}"));
        }
        return true;
    }
    e.fab.sched.after(Duration::from_secs(1), Ev::Check);
    false
}

/// The application closes every client (the tasks waiting for it stop).
fn begin_close(ctx: &Arc<Ctx>) {
    let bound = {
        let mut e = ctx.env();
        e.app.begin_closing();
        e.fab.p.client.operation_timeout + Duration::from_secs(5)
    };
    ctx.env().fab.sched.after(bound, Ev::CloseBound);
    for ci in 0..ctx.clients.len() {
        ctx.spawner.spawn(observers::close_task(ctx.clone(), ci));
    }
}

/// The end-of-run checks over the log, and the result.
fn finish(env: &Arc<Mutex<Env>>, steps: u64, polls: u64) -> RunResult {
    let mut e = lock(env);
    if !e.fab.fatal {
        let v = check_log(e.fab.cluster.store(), e.fab.p.dedup, &e.app.producers);
        for x in v {
            e.violation(x);
        }
    }
    e.fab.stats.persisted = all_messages(e.fab.cluster.store())
        .map(|m| m.values().map(|v| v.len() as u64).sum())
        .unwrap_or(0);
    let stats = e.fab.stats.clone();
    let n = e.fab.violations.len();
    e.log(format!(
        "end: {n} violations, stats {stats:?}, {polls} task polls"
    ));
    let (trace_hash, trace_lines, tail) = e.fab.trace_summary();
    RunResult {
        trace_hash,
        trace_lines,
        violations: e.fab.violations.clone(),
        tail,
        steps,
        sim_time: e.now(),
        stats,
    }
}
