//! Settlement tasks in flight: a hold that must wait for its store settles
//! in a task counted here, so shutdown can wait for them all before it saves
//! the budget state.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// Settlement tasks in flight, so shutdown can wait for them before it
/// saves the budget state.
#[derive(Clone, Default)]
pub struct SettleTasks {
    inner: Arc<Tasks>,
}

#[derive(Default)]
struct Tasks {
    running: AtomicUsize,
    idle: Notify,
}

struct Running(Arc<Tasks>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl SettleTasks {
    /// Runs `task` on the current runtime. Outside one, `task` is dropped,
    /// and with it the admission, which releases itself.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.start(Box::pin(task));
    }

    /// Runs `task` here until it first has to wait, then as [`spawn`]
    /// does: a memory-store settlement never waits, so it finishes in place
    /// without waking another worker. Only for tasks that wait on nothing
    /// but the runtime's own pools (a store client's connection must be
    /// polled by the task that will own it).
    ///
    /// [`spawn`]: SettleTasks::spawn
    pub fn run_in_place(&self, task: impl Future<Output = ()> + Send + 'static) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut task = Box::pin(task);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if task.as_mut().poll(&mut cx).is_pending() {
            self.start(task);
        }
    }

    fn start(&self, task: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.inner.running.fetch_add(1, Ordering::AcqRel);
        let running = Running(self.inner.clone());
        rt.spawn(async move {
            let _running = running;
            task.await;
        });
    }

    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Acquire)
    }

    /// Waits until no settlement runs; false if `within` passed first.
    pub async fn wait_idle(&self, within: Duration) -> bool {
        let idle = async {
            loop {
                let notified = self.inner.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.running() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(within, idle).await.is_ok()
    }
}
