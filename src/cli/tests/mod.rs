//! Tests of the EPP command line: Go `flag` semantics, every flag, validation and environment.

mod env;
mod sources;
mod syntax;
mod tracing_flag;
mod usage;
mod values;

use std::collections::HashMap;

use crate::cli::{CliError, Options, parse};
use epp_datalayer::metric_spec::MetricSpec;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ok(list: &[&str]) -> Options {
    parse(args(list), &env(&[])).unwrap_or_else(|e| panic!("{list:?}: {e}"))
}

fn err(list: &[&str]) -> CliError {
    parse(args(list), &env(&[])).unwrap_err()
}

fn spec(name: &str) -> Option<MetricSpec> {
    MetricSpec::parse(name).unwrap()
}
