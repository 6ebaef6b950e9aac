//! The vLLM V1 engine model, clock-free: the caller passes `now` (a [`Duration`] since any
//! epoch it likes), so `epp-sim` steps it on the wall clock and `epp-lab` in virtual time.
//!
//! * [`engine`]: one server's scheduler, stepped by `schedule` then `complete`.
//! * [`sequence`]: a request's state and the [`Client`] it reports tokens to.
//! * [`kv_cache`]: the refcounted block pool with a prefix-hash index and LRU eviction.
//! * [`events`]: the KV-cache events the pool records (vLLM's `BlockStored`, `BlockRemoved`,
//!   `AllBlocksCleared`).
//! * [`lora`]: adapter slots.
//! * [`step_time`]: how long a step lasts (roofline, linear, table backends).
//! * [`profiles`]: model architectures and GPUs the roofline model is built from.
//! * [`histogram`]: vLLM's TTFT and end-to-end latency histograms.
//!
//! [`Duration`]: std::time::Duration

pub mod engine;
pub mod events;
pub mod histogram;
pub mod kv_cache;
pub mod lora;
pub mod profiles;
pub mod sequence;
pub mod step_time;

pub use engine::{Counters, Engine, EngineConfig, EngineSnapshot, Retired};
pub use events::CacheEvent;
pub use profiles::{Gpu, ModelArch, ModelProfile};
pub use sequence::{Client, Emitted, Finish, FinishReason, NewSequence};
pub use step_time::{
    BatchShape, ConstantStepTime, DecodeGrid, LinearStepTime, Roofline, RooflineCoefficients,
    StepTable, StepTime,
};
