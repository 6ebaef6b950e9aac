//! The span queue: requests hand finished spans to a bounded channel and never wait; one
//! task, on its own thread, sends them to the exporter in batches. A full queue drops the span and counts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

use crate::settings::BatchSettings;

/// What happened to the spans handed to the queue so far.
#[derive(Debug, Default)]
pub struct SpanCounts {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

impl SpanCounts {
    /// Spans the collector accepted.
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Spans dropped because the queue was full (or the exporter had stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Spans in batches the collector refused or did not answer in time.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn count_drop(&self) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::warn!(
                dropped,
                "trace spans dropped: the export queue is full (OTEL_BSP_MAX_QUEUE_SIZE)"
            );
        }
    }
}

/// The SDK side: a [`SpanProcessor`] that only enqueues.
#[derive(Debug)]
pub(crate) struct QueueProcessor {
    spans: mpsc::Sender<SpanData>,
    counts: Arc<SpanCounts>,
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.spans.try_send(span).is_err() {
            self.counts.count_drop();
        }
    }

    /// Flushing waits for the export task, which is async: see [`ExportHandle::flush`].
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The task side: asks for a flush of everything queued.
#[derive(Debug)]
pub(crate) struct ExportHandle {
    flush: mpsc::Sender<oneshot::Sender<()>>,
}

impl ExportHandle {
    /// Exports everything queued so far; `false` if that did not finish within `limit`.
    pub(crate) async fn flush(&self, limit: Duration) -> bool {
        let (done, finished) = oneshot::channel();
        if self.flush.send(done).await.is_err() {
            return false;
        }
        tokio::time::timeout(limit, finished).await.is_ok()
    }
}

/// Starts the export task on its own thread and runtime, where `make_exporter` builds the
/// exporter: encoding and sending a batch then never delays a request's task on the
/// server's runtime. Returns the processor that feeds it and a handle to flush it, or why
/// the exporter could not be built.
pub(crate) fn start<E, F>(
    make_exporter: F,
    batch: BatchSettings,
    counts: Arc<SpanCounts>,
) -> Result<(QueueProcessor, ExportHandle), String>
where
    E: SpanExporter + 'static,
    F: FnOnce() -> Result<E, String> + Send + 'static,
{
    let (spans, queue) = mpsc::channel(batch.max_queue);
    let (flush, flushes) = mpsc::channel(4);
    let (built, outcome) = std::sync::mpsc::sync_channel(1);
    let task_counts = Arc::clone(&counts);
    std::thread::Builder::new()
        .name("otel-export".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = built.send(Err(format!("cannot start the export runtime: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let exporter = match make_exporter() {
                    Ok(exporter) => exporter,
                    Err(e) => {
                        let _ = built.send(Err(e));
                        return;
                    }
                };
                let _ = built.send(Ok(()));
                export_loop(exporter, queue, flushes, batch, task_counts).await;
            });
        })
        .map_err(|e| format!("cannot start the export thread: {e}"))?;
    outcome
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the export thread did not start".to_owned())??;
    Ok((QueueProcessor { spans, counts }, ExportHandle { flush }))
}

/// Sends a batch when it is full or `batch.delay` after the last send, and everything
/// queued when asked to flush. Ends when every sender is gone.
async fn export_loop<E: SpanExporter>(
    exporter: E,
    mut queue: mpsc::Receiver<SpanData>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
    batch: BatchSettings,
    counts: Arc<SpanCounts>,
) {
    let mut pending = Vec::with_capacity(batch.max_batch);
    let mut tick = tokio::time::interval(batch.delay);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            span = queue.recv() => {
                let Some(span) = span else { break };
                pending.push(span);
                if pending.len() >= batch.max_batch {
                    export(&exporter, &mut pending, &batch, &counts).await;
                }
            }
            _ = tick.tick() => export(&exporter, &mut pending, &batch, &counts).await,
            Some(done) = flushes.recv() => {
                while let Ok(span) = queue.try_recv() {
                    pending.push(span);
                    if pending.len() >= batch.max_batch {
                        export(&exporter, &mut pending, &batch, &counts).await;
                    }
                }
                export(&exporter, &mut pending, &batch, &counts).await;
                let _ = done.send(());
            }
        }
    }
    export(&exporter, &mut pending, &batch, &counts).await;
}

async fn export<E: SpanExporter>(
    exporter: &E,
    pending: &mut Vec<SpanData>,
    batch: &BatchSettings,
    counts: &SpanCounts,
) {
    if pending.is_empty() {
        return;
    }
    let spans = std::mem::replace(pending, Vec::with_capacity(batch.max_batch));
    let n = spans.len() as u64;
    match tokio::time::timeout(batch.export_timeout, exporter.export(spans)).await {
        Ok(Ok(())) => {
            counts.exported.fetch_add(n, Ordering::Relaxed);
        }
        Ok(Err(error)) => {
            counts.failed.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(spans = n, %error, "cannot export trace spans");
        }
        Err(_) => {
            counts.failed.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(spans = n, timeout = ?batch.export_timeout, "trace export timed out");
        }
    }
}
