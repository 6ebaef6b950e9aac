//! The `precise` block of a policy in `summary.json`: its KV-event traffic and precise-index
//! counters, each the mean over seeds, plus the share of decisions scored from the index and
//! the share of batches lost.

use serde_json::{Map, Value};

use crate::results::RunResult;

/// The mean over `runs` of their precise counters; `None` when no run had a precise index.
/// Keys are sorted (serde_json's map), so the output is deterministic.
pub(crate) fn precise_summary(runs: &[&RunResult]) -> Option<Value> {
    let per_seed: Vec<Value> = runs
        .iter()
        .filter_map(|r| r.precise.as_ref())
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect();
    if per_seed.is_empty() {
        return None;
    }
    let mut out = mean(&per_seed);
    let ratio = |num: &str, den: &str| {
        let den = out[den].as_f64().unwrap_or(0.0);
        (den > 0.0).then(|| out[num].as_f64().unwrap_or(0.0) / den)
    };
    let scored = ratio("decisions_scored_precisely", "decisions");
    let lost = ratio("batches_lost", "batches_published");
    if let Value::Object(map) = &mut out {
        map.insert("scored_precisely_fraction".into(), scored.into());
        map.insert("batches_lost_fraction".into(), lost.into());
    }
    Some(out)
}

/// Field by field mean of JSON objects whose leaves are numbers (a key missing from some
/// values counts as 0 there).
fn mean(values: &[Value]) -> Value {
    let n = values.len() as f64;
    let mut keys: Vec<&String> = values
        .iter()
        .filter_map(Value::as_object)
        .flat_map(Map::keys)
        .collect();
    keys.sort();
    keys.dedup();
    let mut out = Map::new();
    for key in keys {
        let children: Vec<Value> = values
            .iter()
            .map(|v| v.get(key).cloned().unwrap_or(Value::Null))
            .collect();
        let value = if children.iter().any(Value::is_object) {
            let objects: Vec<Value> = children
                .into_iter()
                .map(|c| match c {
                    Value::Object(_) => c,
                    _ => Value::Object(Map::new()),
                })
                .collect();
            mean(&objects)
        } else {
            let sum: f64 = children.iter().filter_map(Value::as_f64).sum();
            Value::from(sum / n)
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::PreciseRun;

    fn run(precise: Option<PreciseRun>) -> RunResult {
        RunResult {
            policy: "p".into(),
            seed: 1,
            requests: Vec::new(),
            pods: Vec::new(),
            stages: Vec::new(),
            simulated_s: 0.0,
            wall_s: 0.0,
            decision_us: Vec::new(),
            decision_records: None,
            precise,
            classes: Vec::new(),
            flow_control: false,
        }
    }

    #[test]
    fn means_over_seeds_with_reason_maps_and_fractions() {
        let mut a = PreciseRun {
            batches_published: 10,
            batches_lost: 2,
            decisions: 4,
            decisions_scored_precisely: 3,
            ..PreciseRun::default()
        };
        a.fallback_switches.insert("gap".into(), 2);
        let b = PreciseRun {
            batches_published: 30,
            batches_lost: 6,
            decisions: 4,
            decisions_scored_precisely: 1,
            ..PreciseRun::default()
        };
        let (a, b) = (run(Some(a)), run(Some(b)));
        let s = precise_summary(&[&a, &b]).expect("precise");
        assert_eq!(s["batches_published"], 20.0);
        assert_eq!(s["fallback_switches"]["gap"], 1.0);
        assert_eq!(s["scored_precisely_fraction"], 0.5);
        assert_eq!(s["batches_lost_fraction"], 0.2);
        assert!(precise_summary(&[&run(None)]).is_none());
    }
}
