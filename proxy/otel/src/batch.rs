//! The export task: takes finished spans from the queue, sends them in
//! batches (when a batch is full or its delay has passed), counts what was
//! sent and what was lost, and on stop sends what is left.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

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

/// Runs until `stop` fires (or every sender is gone), then sends what is
/// queued and returns.
pub(crate) async fn run<E: SpanExporter>(
    mut rx: mpsc::Receiver<SpanData>,
    mut stop: oneshot::Receiver<()>,
    exporter: E,
    limits: Limits,
    counters: Arc<dyn Counters>,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(limits.batch);
    let mut stopping = false;
    while !stopping {
        // Wait for the first span of a batch.
        tokio::select! {
            biased;
            _ = &mut stop => stopping = true,
            got = rx.recv() => match got {
                Some(span) => batch.push(span),
                None => stopping = true,
            },
        }
        // Fill it until it is full or its delay has passed.
        let deadline = Instant::now() + limits.delay;
        while !stopping && batch.len() < limits.batch {
            tokio::select! {
                biased;
                _ = &mut stop => stopping = true,
                got = tokio::time::timeout_at(deadline, rx.recv()) => match got {
                    Ok(Some(span)) => batch.push(span),
                    Ok(None) => stopping = true,
                    Err(_) => break,
                },
            }
        }
        if stopping {
            rx.close();
            while let Ok(span) = rx.try_recv() {
                batch.push(span);
                if batch.len() >= limits.batch {
                    send(&exporter, &mut batch, limits.timeout, &*counters).await;
                }
            }
        }
        send(&exporter, &mut batch, limits.timeout, &*counters).await;
    }
    let _ = exporter.shutdown();
}

async fn send<E: SpanExporter>(
    exporter: &E,
    batch: &mut Vec<SpanData>,
    timeout: Duration,
    counters: &dyn Counters,
) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    let spans = std::mem::take(batch);
    match tokio::time::timeout(timeout, exporter.export(spans)).await {
        Ok(Ok(())) => counters.exported(n),
        _ => counters.dropped(DropReason::ExportFailed, n),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Mutex;

    use opentelemetry::trace::{SpanContext, SpanKind, Status};
    use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
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

    /// Records batch sizes; refuses every batch while `down`.
    #[derive(Debug, Clone, Default)]
    struct Collector {
        batches: Arc<Mutex<Vec<usize>>>,
        down: Arc<AtomicBool>,
    }

    impl SpanExporter for Collector {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if self.down.load(Ordering::Relaxed) {
                return Err(OTelSdkError::InternalFailure("collector down".into()));
            }
            self.batches.lock().unwrap().push(batch.len());
            Ok(())
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

    #[tokio::test]
    async fn full_batches_go_at_once_and_the_rest_on_stop() {
        let (tx, rx) = mpsc::channel(100);
        let (stop_tx, stop_rx) = oneshot::channel();
        let c = Collector::default();
        let count = Arc::new(Count::default());
        let task = tokio::spawn(run(rx, stop_rx, c.clone(), limits(100, 4), count.clone()));
        for _ in 0..10 {
            tx.send(span()).await.unwrap();
        }
        // Two full batches go without waiting for the (hour-long) delay.
        while c.batches.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
        stop_tx.send(()).unwrap();
        task.await.unwrap();
        assert_eq!(*c.batches.lock().unwrap(), vec![4, 4, 2]);
        assert_eq!(count.exported.load(Ordering::Relaxed), 10);
        assert_eq!(count.failed.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_goes_after_its_delay() {
        let (tx, rx) = mpsc::channel(100);
        let (_stop_tx, stop_rx) = oneshot::channel();
        let c = Collector::default();
        let count = Arc::new(Count::default());
        let l = Limits {
            delay: Duration::from_millis(500),
            ..limits(100, 50)
        };
        tokio::spawn(run(rx, stop_rx, c.clone(), l, count.clone()));
        tx.send(span()).await.unwrap();
        tx.send(span()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(c.batches.lock().unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*c.batches.lock().unwrap(), vec![2]);
    }

    #[tokio::test]
    async fn a_refused_batch_is_counted_as_dropped() {
        let (tx, rx) = mpsc::channel(100);
        let (stop_tx, stop_rx) = oneshot::channel();
        let c = Collector::default();
        c.down.store(true, Ordering::Relaxed);
        let count = Arc::new(Count::default());
        let task = tokio::spawn(run(rx, stop_rx, c.clone(), limits(100, 3), count.clone()));
        for _ in 0..5 {
            tx.send(span()).await.unwrap();
        }
        stop_tx.send(()).unwrap();
        task.await.unwrap();
        assert_eq!(count.failed.load(Ordering::Relaxed), 5);
        assert_eq!(count.exported.load(Ordering::Relaxed), 0);
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
