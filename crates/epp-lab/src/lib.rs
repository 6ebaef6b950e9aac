//! `epp-lab`: runs the production scheduler (`epp_core`'s director, profiles, plugins and
//! prefix index) against simulated vLLM clusters (`epp_engine`) in virtual time.
//!
//! * [`experiment`]: the experiment file (cluster, workload, signals, policies, seeds) and
//!   the built-in presets.
//! * [`workload`]: request generation (inference-perf `shared_prefix`, random/synthetic,
//!   multi-turn, load stages) and traces (Mooncake, the EPP's request log).
//! * [`results`]: what one run records.
//! * [`sim`]: the discrete-event simulator that runs one (policy, seed).
//! * [`runner`]: every (policy, seed) of an experiment on a thread pool, then the report.
//! * [`report`]: `summary.json`, inference-perf stage files, CSVs, plots, the manifest.

pub mod cli;
pub mod experiment;
pub mod report;
pub mod results;
pub mod runner;
pub mod sim;
pub mod workload;
