//! A process-wide budget for request-body bytes buffered across all ext_proc streams.
//!
//! Each stream holds a [`BudgetLease`] that grows with its buffered body and gives every
//! byte back when dropped, so the budget is released when the stream ends for any reason
//! (routed, rejected, reset by the client, or a gRPC error).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use epp_core::telemetry::metrics::EppMetrics;

/// Default of `--max-buffered-request-bytes`: 1 GiB.
pub const DEFAULT_BUFFER_BUDGET: usize = 1 << 30;

/// The shared budget; one per process (per [`crate::ExtProcService`]).
#[derive(Debug)]
pub struct BufferBudget {
    /// Most bytes all streams may buffer together.
    limit: usize,
    used: AtomicUsize,
    /// Mirrors `used` in `inference_extension_buffered_request_bytes`.
    metrics: Arc<EppMetrics>,
}

/// A stream would have taken the budget past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request body buffer budget exhausted ({limit} bytes)")]
pub struct BudgetExhausted {
    /// `--max-buffered-request-bytes`.
    pub limit: usize,
}

impl BufferBudget {
    /// A budget of `limit` bytes (> 0) shared by every stream.
    pub fn new(limit: usize, metrics: Arc<EppMetrics>) -> Arc<Self> {
        Arc::new(BufferBudget {
            limit,
            used: AtomicUsize::new(0),
            metrics,
        })
    }

    /// Bytes buffered now, across all streams.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// An empty lease for one stream.
    pub fn lease(self: &Arc<Self>) -> BudgetLease {
        BudgetLease {
            budget: Arc::clone(self),
            held: 0,
        }
    }

    fn take(&self, bytes: usize) -> Result<(), BudgetExhausted> {
        let limit = self.limit;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .map_err(|_| {
                self.metrics.buffer_budget_rejected();
                BudgetExhausted { limit }
            })?;
        self.metrics.buffered_request_bytes(bytes as i64);
        Ok(())
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.metrics.buffered_request_bytes(-(bytes as i64));
    }
}

/// One stream's share of the budget; returns it all when dropped.
#[derive(Debug)]
pub struct BudgetLease {
    budget: Arc<BufferBudget>,
    held: usize,
}

impl BudgetLease {
    /// Takes `bytes` more, or nothing when that would pass the limit.
    pub fn grow(&mut self, bytes: usize) -> Result<(), BudgetExhausted> {
        if bytes == 0 {
            return Ok(());
        }
        self.budget.take(bytes)?;
        self.held += bytes;
        Ok(())
    }

    /// Returns everything held (the body was handed on or dropped).
    pub fn release(&mut self) {
        if self.held > 0 {
            self.budget.give_back(self.held);
            self.held = 0;
        }
    }

    /// Bytes this stream holds.
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for BudgetLease {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use epp_core::telemetry::metrics::MetricsLimits;

    fn budget(limit: usize) -> Arc<BufferBudget> {
        BufferBudget::new(limit, EppMetrics::new(MetricsLimits::default()))
    }

    #[test]
    fn leases_share_the_limit_exactly() {
        let budget = budget(100);
        let mut a = budget.lease();
        let mut b = budget.lease();
        a.grow(60).expect("within the limit");
        b.grow(40).expect("exactly at the limit");
        assert_eq!(budget.used(), 100);
        assert_eq!(b.grow(1), Err(BudgetExhausted { limit: 100 }));
        assert_eq!(b.held(), 40, "a refused grow takes nothing");
        drop(a);
        assert_eq!(budget.used(), 40);
        b.grow(60).expect("room again");
        b.release();
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn metrics_follow_the_budget() {
        let metrics = EppMetrics::new(MetricsLimits::default());
        let budget = BufferBudget::new(10, Arc::clone(&metrics));
        let mut lease = budget.lease();
        lease.grow(7).expect("fits");
        assert!(lease.grow(4).is_err());
        let page = metrics.render();
        assert!(
            page.contains("\ninference_extension_buffered_request_bytes 7\n"),
            "{page}"
        );
        assert!(
            page.contains("\ninference_extension_buffer_budget_rejections_total 1\n"),
            "{page}"
        );
        drop(lease);
        let page = metrics.render();
        assert!(
            page.contains("\ninference_extension_buffered_request_bytes 0\n"),
            "{page}"
        );
    }
}
