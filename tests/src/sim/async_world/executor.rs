//! A single-threaded, deterministic executor: tasks in a map keyed by a counter, a FIFO queue of
//! task ids to poll, and wakers that put their task on the queue once (until it is polled).
//!
//! The world polls the queue until it is empty between two scheduler events, so which task runs
//! when depends only on the order of wakes, which depends only on the seed.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Wake, Waker};

use pulsar_async::BoxFuture;

use crate::sim::async_world::lock;

/// Spawns tasks onto an [`Executor`] (cheap to clone, `Send + Sync`: a runtime holds one).
#[derive(Clone)]
pub struct Spawner(Arc<Mutex<Queue>>);

impl std::fmt::Debug for Spawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spawner")
    }
}

impl Spawner {
    /// Queues `future` as a new task: it is first polled after the tasks queued before it.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.spawn_boxed(Box::pin(future));
    }

    /// [`spawn`](Self::spawn) of a boxed future.
    pub fn spawn_boxed(&self, future: BoxFuture<()>) {
        lock(&self.0).spawned.push_back(future);
    }
}

/// The run queue, shared with the wakers and spawners.
#[derive(Default)]
struct Queue {
    ready: VecDeque<u64>,
    spawned: VecDeque<BoxFuture<()>>,
}

/// A task's waker: puts the task on the run queue unless it is already there.
struct TaskWaker {
    id: u64,
    queued: AtomicBool,
    /// Weak: a waker kept somewhere after the run ends does not keep the queue alive.
    queue: Weak<Mutex<Queue>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::Relaxed) {
            if let Some(queue) = self.queue.upgrade() {
                lock(&queue).ready.push_back(self.id);
            }
        }
    }
}

struct Task {
    future: BoxFuture<()>,
    flag: Arc<TaskWaker>,
    waker: Waker,
}

/// The executor of one run.
pub struct Executor {
    queue: Arc<Mutex<Queue>>,
    tasks: BTreeMap<u64, Task>,
    next_id: u64,
    /// Polls so far.
    pub polls: u64,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("tasks", &self.tasks.len())
            .field("polls", &self.polls)
            .finish_non_exhaustive()
    }
}

impl Default for Executor {
    fn default() -> Self {
        Executor::new()
    }
}

impl Executor {
    /// An executor without tasks.
    pub fn new() -> Executor {
        Executor {
            queue: Arc::default(),
            tasks: BTreeMap::new(),
            next_id: 0,
            polls: 0,
        }
    }

    /// A handle that spawns onto this executor.
    pub fn spawner(&self) -> Spawner {
        Spawner(self.queue.clone())
    }

    /// Tasks not finished.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether every task finished.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Polls queued tasks (and tasks spawned meanwhile) until none is queued; `Err` after
    /// `max_polls` polls (a livelock: tasks that keep waking each other).
    pub fn run_until_idle(&mut self, max_polls: u64) -> Result<(), String> {
        let mut polls = 0u64;
        loop {
            self.adopt_spawned();
            let next = lock(&self.queue).ready.pop_front();
            let Some(id) = next else {
                return Ok(());
            };
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            task.flag.queued.store(false, Ordering::Relaxed);
            let mut cx = Context::from_waker(&task.waker);
            let done = task.future.as_mut().poll(&mut cx).is_ready();
            if done {
                // Dropped here, with no lock held: its drop may wake others or close sockets.
                drop(self.tasks.remove(&id));
            }
            polls += 1;
            self.polls += 1;
            if polls > max_polls {
                return Err(format!(
                    "livelock: {polls} task polls without the tasks going idle"
                ));
            }
        }
    }

    fn adopt_spawned(&mut self) {
        loop {
            let next = lock(&self.queue).spawned.pop_front();
            let Some(future) = next else {
                return;
            };
            self.next_id += 1;
            let id = self.next_id;
            let flag = Arc::new(TaskWaker {
                id,
                queued: AtomicBool::new(true),
                queue: Arc::downgrade(&self.queue),
            });
            let waker = Waker::from(flag.clone());
            self.tasks.insert(
                id,
                Task {
                    future,
                    flag,
                    waker,
                },
            );
            lock(&self.queue).ready.push_back(id);
        }
    }

    /// Drops every task (and every task spawned while they drop), in id order.
    pub fn shutdown(&mut self) {
        loop {
            let tasks = std::mem::take(&mut self.tasks);
            let spawned = std::mem::take(&mut lock(&self.queue).spawned);
            if tasks.is_empty() && spawned.is_empty() {
                break;
            }
            drop(tasks);
            drop(spawned);
        }
        lock(&self.queue).ready.clear();
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shutdown();
    }
}
