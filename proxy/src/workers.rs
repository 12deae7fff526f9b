//! The data path's workers, one per CPU the process may use, in the shape
//! `server.runtime` picks.
//!
//! - `perCore`: the main thread's current-thread runtime is worker 0 and
//!   also runs the rest (admin, reload, trace export, background tasks);
//!   workers 1.. are threads of their own, each a current-thread runtime.
//!   Every worker accepts on its own `SO_REUSEPORT` listener (the kernel
//!   spreads connections over them), and the upstream client keeps one
//!   connection pool per worker ([`index`]), so a request and its upstream
//!   call never leave the thread that accepted the connection.
//! - `workStealing`: one multi-thread runtime; every thread is worker 0 and
//!   shares one pool.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// How many workers keep a connection pool of their own (1 unless a
/// [`Workers`] with extra threads was started).
static POOLS: AtomicUsize = AtomicUsize::new(1);

/// The worker this thread is (0 on the main thread and on any thread that
/// is not a per-core worker).
pub(crate) fn index() -> usize {
    INDEX.with(Cell::get)
}

/// How many upstream connection pools a client should keep.
pub(crate) fn pools() -> usize {
    POOLS.load(Ordering::Relaxed)
}

/// One worker per CPU the process may use: `TOKIO_WORKER_THREADS` if set
/// (as tokio's own multi-thread runtime reads it), else
/// `available_parallelism`, which reads a cgroup CPU quota (a Kubernetes
/// `limits.cpu`, rounded down, at least one) and the CPU affinity mask.
pub fn count() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}

/// The per-core workers beyond the caller's own runtime (none in the
/// work-stealing shape). They run until this is dropped.
pub struct Workers {
    extra: Vec<Worker>,
}

struct Worker {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Workers {
    /// No threads of its own: everything runs on the caller's runtime.
    pub fn none() -> Workers {
        Workers { extra: Vec::new() }
    }

    /// Starts `extra` worker threads (1..=extra), each driving a
    /// current-thread runtime, and marks the calling thread worker 0.
    pub fn spawn(extra: usize) -> std::io::Result<Workers> {
        let mut workers = Workers { extra: Vec::new() };
        for i in 1..=extra {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("tollgate-w{i}"))
                .spawn(move || {
                    INDEX.with(|c| c.set(i));
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .thread_name(format!("tollgate-w{i}-blocking"))
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = handle_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = handle_tx.send(Ok(rt.handle().clone()));
                    // Runs the worker's tasks until asked to stop (or the
                    // owner is gone); dropping the runtime then ends them.
                    rt.block_on(async move {
                        let _ = stopped.await;
                    });
                })?;
            let handle = handle_rx
                .recv()
                .map_err(|_| std::io::Error::other("worker thread ended at start"))??;
            workers.extra.push(Worker {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        INDEX.with(|c| c.set(0));
        POOLS.store(extra + 1, Ordering::Relaxed);
        Ok(workers)
    }

    /// The runtimes of workers 1.. (empty in the work-stealing shape).
    pub(crate) fn extra(&self) -> impl Iterator<Item = &Handle> {
        self.extra.iter().map(|w| &w.handle)
    }

    /// Workers in all: the caller's runtime and the extra threads.
    pub fn len(&self) -> usize {
        self.extra.len() + 1
    }

    /// Never empty: the caller's runtime is a worker. (For clippy's
    /// `len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.extra {
            if let Some(stop) = w.stop.take() {
                let _ = stop.send(());
            }
        }
        for w in &mut self.extra {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        if !self.extra.is_empty() {
            POOLS.store(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_extra_worker_knows_its_index_and_runs_tasks() {
        let workers = Workers::spawn(2).unwrap();
        assert_eq!(workers.len(), 3);
        assert_eq!(pools(), 3);
        assert_eq!(index(), 0);
        let seen: Vec<usize> = workers
            .extra()
            .map(|h| {
                let (tx, rx) = std::sync::mpsc::channel();
                h.spawn(async move { tx.send(index()).unwrap() });
                rx.recv().unwrap()
            })
            .collect();
        assert_eq!(seen, vec![1, 2]);
        drop(workers);
        assert_eq!(pools(), 1);
    }
}
