//! The scheduling core of the EPP: everything that decides where a request goes, with no
//! network, no gRPC, no Kubernetes and no async runtime underneath, so the same code serves
//! the ext_proc service, tests and a simulator in virtual time.
//!
//! Time and randomness are parameters: the [`datastore::Datastore`] holds a
//! [`time::Clock`] ([`time::SystemClock`] in production, [`time::ManualClock`] for virtual
//! time) that stamps metrics and gives every decision its "now", and a
//! [`director::Director`] built [`with_seed`](director::Director::with_seed) draws every
//! random choice from one seeded generator.
//!
//! # Add a scorer
//!
//! Create `src/scheduling/plugins/<name>.rs` with a `TYPE` constant, a type implementing
//! [`scheduling::Scorer`] and a `factory` returning
//! [`PluginRoles::scorer`](scheduling::registry::PluginRoles::scorer), and add its module
//! name to the `in_tree_plugins!` list in `plugins/mod.rs` (one line: it declares the
//! module and registers the type in [`scheduling::registry::IN_TREE`]). The [`scheduling`]
//! module docs show a complete scorer.
#![forbid(unsafe_code)]

pub mod config;
pub mod datastore;
pub mod director;
pub mod flowcontrol;
pub mod prefix;
pub mod request;
pub mod scheduling;
pub mod telemetry;
pub mod time;
pub mod tokens;
