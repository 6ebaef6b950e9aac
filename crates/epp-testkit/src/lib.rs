//! Test scaffolding shared by tests, benches and `epp-bench`. Never a dependency of a
//! production crate.
#![forbid(unsafe_code)]
