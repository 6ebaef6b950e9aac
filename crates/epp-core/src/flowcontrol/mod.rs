//! Flow control: while the pool is saturated, requests wait in the EPP by priority and
//! fairness instead of piling onto model servers.
//!
//! - [`queues`]: the waiting room (bands, flows, ordering, limits, displacement, expiry).
//! - [`saturation`]: when the pool is full (the utilization and concurrency detectors).
//! - [`controller`]: admit now or wait, dispatch as the pool frees up, cancellation.

pub mod controller;
pub mod metrics;
pub mod queues;
pub mod saturation;

pub use controller::{
    Admission, Dispatch, FlowController, FlowObserver, FlowStats, Refusal, Waiting,
};

pub use queues::{
    Arrival, BandStats, Dispatched, FlowQueues, Limits, Ordering, QueueConfig, Refused, Rejection,
    Ticket,
};
pub use saturation::{ConcurrencyDetector, Saturation, SaturationDetector, UtilizationDetector};
