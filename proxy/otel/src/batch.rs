//! The export task: takes finished spans from the queue, sends them in
//! batches (when a batch is full or its delay has passed), counts what was
//! sent and what was lost, and on stop sends what is left.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_sdk::trace::SpanData;

use tokio::sync::{oneshot, Notify};

use crate::{Counters, DropReason, Env};

/// The queue's and the batches' sizes and times (`OTEL_BSP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) queue: usize,
    pub(crate) batch: usize,
    pub(crate) delay: Duration,
    pub(crate) timeout: Duration,
}

impl Limits {
    pub(crate) fn from_env(env: Env<'_>, queue: Option<usize>, timeout: Duration) -> Limits {
        let num = |name: &str| env(name).and_then(|v| v.trim().parse::<u64>().ok());
        let queue = queue
            .or_else(|| num("OTEL_BSP_MAX_QUEUE_SIZE").map(|n| n as usize))
            .unwrap_or(2048)
            .max(1);
        Limits {
            queue,
            batch: num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
                .map(|n| n as usize)
                .unwrap_or(512)
                .clamp(1, queue),
            delay: Duration::from_millis(num("OTEL_BSP_SCHEDULE_DELAY").unwrap_or(5000)),
            timeout: num("OTEL_BSP_EXPORT_TIMEOUT")
                .map(Duration::from_millis)
                .unwrap_or(timeout),
        }
    }
}

/// The queue between the span processor (any thread, never blocking) and
/// the export task: a vector behind a mutex, so ending a span is a push; the
/// task is woken only when a batch is full, else it wakes on its delay.
/// (A channel would wake it for every span: a context switch per span.)
pub(crate) struct Queue {
    spans: Mutex<Vec<SpanData>>,
    full: Notify,
    limits: Limits,
}

impl Queue {
    pub(crate) fn new(limits: Limits) -> Queue {
        Queue {
            spans: Mutex::new(Vec::with_capacity(limits.batch)),
            full: Notify::new(),
            limits,
        }
    }

    /// Adds a finished span; false (and not kept) when the queue is full.
    pub(crate) fn push(&self, span: SpanData) -> bool {
        let mut q = self.spans.lock().expect("lock");
        if q.len() >= self.limits.queue {
            return false;
        }
        q.push(span);
        if q.len() == self.limits.batch {
            self.full.notify_one();
        }
        true
    }

    fn take(&self) -> Vec<SpanData> {
        std::mem::take(&mut *self.spans.lock().expect("lock"))
    }
}

/// Where batches go (the OTLP exporter; a fake in tests).
pub(crate) trait Export: Send + Sync + 'static {
    /// Sends a batch; on success, how many of its spans the collector
    /// rejected (a partial success).
    fn export(&self, batch: &[SpanData]) -> impl Future<Output = Result<u64, ()>> + Send;
}

/// Runs until `stop` fires, then sends what is queued and returns.
pub(crate) async fn run<E: Export>(
    queue: Arc<Queue>,
    mut stop: oneshot::Receiver<()>,
    exporter: E,
    counters: Arc<dyn Counters>,
) {
    let limits = queue.limits;
    let mut stopping = false;
    while !stopping {
        tokio::select! {
            biased;
            _ = &mut stop => stopping = true,
            _ = queue.full.notified() => {}
            _ = tokio::time::sleep(limits.delay) => {}
        }
        let spans = queue.take();
        for batch in spans.chunks(limits.batch) {
            send(&exporter, batch, limits.timeout, &*counters).await;
        }
    }
}

async fn send<E: Export>(
    exporter: &E,
    batch: &[SpanData],
    timeout: Duration,
    counters: &dyn Counters,
) {
    let n = batch.len() as u64;
    match tokio::time::timeout(timeout, exporter.export(batch)).await {
        Ok(Ok(rejected)) => {
            let rejected = rejected.min(n);
            counters.exported(n - rejected);
            if rejected > 0 {
                counters.dropped(DropReason::ExportFailed, rejected);
            }
        }
        _ => counters.dropped(DropReason::ExportFailed, n),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Mutex;

    use opentelemetry::trace::{SpanContext, SpanKind, Status};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    #[derive(Default)]
    struct Count {
        exported: AtomicU64,
        full: AtomicU64,
        failed: AtomicU64,
    }

    impl Counters for Count {
        fn exported(&self, n: u64) {
            self.exported.fetch_add(n, Ordering::Relaxed);
        }
        fn dropped(&self, reason: DropReason, n: u64) {
            match reason {
                DropReason::QueueFull => &self.full,
                DropReason::ExportFailed => &self.failed,
            }
            .fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Records batch sizes; refuses every batch while `down`, rejects
    /// `reject` spans of each batch it takes.
    #[derive(Debug, Clone, Default)]
    struct Collector {
        batches: Arc<Mutex<Vec<usize>>>,
        down: Arc<AtomicBool>,
        reject: u64,
    }

    impl Export for Collector {
        async fn export(&self, batch: &[SpanData]) -> Result<u64, ()> {
            if self.down.load(Ordering::Relaxed) {
                return Err(());
            }
            self.batches.lock().unwrap().push(batch.len());
            Ok(self.reject)
        }
    }

    fn span() -> SpanData {
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "s".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    fn limits(queue: usize, batch: usize) -> Limits {
        Limits {
            queue,
            batch,
            delay: Duration::from_secs(3600),
            timeout: Duration::from_secs(1),
        }
    }

    fn start(
        l: Limits,
        c: &Collector,
        count: &Arc<Count>,
    ) -> (Arc<Queue>, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let q = Arc::new(Queue::new(l));
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(q.clone(), stop_rx, c.clone(), count.clone()));
        (q, stop_tx, task)
    }

    #[tokio::test]
    async fn full_batches_go_at_once_and_the_rest_on_stop() {
        let c = Collector::default();
        let count = Arc::new(Count::default());
        let (q, stop, task) = start(limits(100, 4), &c, &count);
        for _ in 0..4 {
            assert!(q.push(span()));
        }
        // A full batch goes without waiting for the (hour-long) delay.
        while c.batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        for _ in 0..6 {
            assert!(q.push(span()));
        }
        stop.send(()).unwrap();
        task.await.unwrap();
        let batches = c.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 10);
        assert_eq!(batches[0], 4);
        assert!(batches.iter().all(|&b| b <= 4), "{batches:?}");
        assert_eq!(count.exported.load(Ordering::Relaxed), 10);
        assert_eq!(count.failed.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_goes_after_its_delay() {
        let c = Collector::default();
        let count = Arc::new(Count::default());
        let l = Limits {
            delay: Duration::from_millis(500),
            ..limits(100, 50)
        };
        let (q, _stop, _task) = start(l, &c, &count);
        q.push(span());
        q.push(span());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(c.batches.lock().unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*c.batches.lock().unwrap(), vec![2]);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_refused_batch_is_counted_as_dropped() {
        let c = Collector::default();
        c.down.store(true, Ordering::Relaxed);
        let count = Arc::new(Count::default());
        let (q, stop, task) = start(limits(5, 5), &c, &count);
        let taken = (0..7).filter(|_| q.push(span())).count();
        // Five fit; the export of those five may start at once, so the
        // next two may fit too, but never more than the queue holds.
        assert!((5..=7).contains(&taken), "{taken}");
        stop.send(()).unwrap();
        task.await.unwrap();
        assert_eq!(count.failed.load(Ordering::Relaxed), taken as u64);
        assert_eq!(count.exported.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn spans_the_collector_rejects_are_counted_as_failed() {
        let c = Collector {
            reject: 1,
            ..Collector::default()
        };
        let count = Arc::new(Count::default());
        let (q, stop, task) = start(limits(100, 3), &c, &count);
        for _ in 0..3 {
            assert!(q.push(span()));
        }
        stop.send(()).unwrap();
        task.await.unwrap();
        assert_eq!(count.exported.load(Ordering::Relaxed), 2);
        assert_eq!(count.failed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn limits_follow_the_bsp_variables() {
        let env = |name: &str| match name {
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("100".to_string()),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" => Some("500".to_string()),
            "OTEL_BSP_SCHEDULE_DELAY" => Some("250".to_string()),
            _ => None,
        };
        let l = Limits::from_env(&env, None, Duration::from_secs(10));
        // A batch never exceeds the queue.
        assert_eq!(
            l,
            Limits {
                queue: 100,
                batch: 100,
                delay: Duration::from_millis(250),
                timeout: Duration::from_secs(10),
            }
        );
        let none = |_: &str| None;
        assert_eq!(
            Limits::from_env(&none, Some(7), Duration::from_secs(3)).queue,
            7
        );
    }
}
