//! The vLLM V1 engine model, clock-free: the caller passes `now` (a [`Duration`] since any
//! epoch it likes), so `epp-sim` steps it on the wall clock and `epp-lab` in virtual time.
//!
//! * [`kv_cache`]: the refcounted block pool with a prefix-hash index and LRU eviction.
//! * [`engine`]: one server's scheduler, stepped by `schedule` then `complete`.
//! * [`step_time`]: how long a step lasts (roofline, linear, table backends).
//! * [`profiles`]: model architectures and GPUs the roofline model is built from.
//!
//! [`Duration`]: std::time::Duration

pub mod profiles;
pub mod step_time;

pub use profiles::{Gpu, ModelArch, ModelProfile};
pub use step_time::{BatchShape, LinearStepTime, Roofline, StepTime};
