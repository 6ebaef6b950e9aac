//! Standalone objectives (`--objectives-file`): a YAML or JSON list of `{name, priority}`,
//! standing in for InferenceObjective resources when there is no cluster.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use crate::watched_file::{FileContent, WatchedFile};
use epp_core::datastore::{Datastore, Objective};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    /// Unset means 0; negative priorities are sheddable.
    #[serde(default)]
    priority: i32,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Layout {
    List(Vec<Entry>),
    Wrapped { objectives: Vec<Entry> },
}

/// Parses objectives-file text; the error names the entry.
pub fn parse_objectives_file(text: &str) -> Result<Vec<Objective>, String> {
    let layout: Layout = serde_saphyr::from_str(text)
        .map_err(|e| format!("expected a list of {{name, priority}} entries: {e}"))?;
    let (Layout::List(entries)
    | Layout::Wrapped {
        objectives: entries,
    }) = layout;
    let mut seen = HashSet::new();
    let mut objectives = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        if entry.name.is_empty() {
            return Err(format!("entry {i}: name is empty"));
        }
        if !seen.insert(entry.name.clone()) {
            return Err(format!(
                "entry {i}: objective \"{}\" is listed twice",
                entry.name
            ));
        }
        objectives.push(Objective {
            name: entry.name,
            priority: entry.priority,
        });
    }
    Ok(objectives)
}

/// The content of an `--objectives-file`.
pub struct ObjectivesFile(pub Arc<Datastore>);

impl FileContent for ObjectivesFile {
    const WHAT: &'static str = "objectives";

    fn apply(&self, text: &str) -> Result<usize, String> {
        let objectives = parse_objectives_file(text)?;
        let count = objectives.len();
        self.0.replace_objectives(objectives);
        Ok(count)
    }
}

/// Watches an `--objectives-file`.
pub type ObjectivesFileWatcher = WatchedFile<ObjectivesFile>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_errors() {
        let parsed = parse_objectives_file(
            "- name: critical\n  priority: 2\n- name: batch\n  priority: -1\n- name: default\n",
        )
        .expect("valid");
        let pairs: Vec<(&str, i32)> = parsed
            .iter()
            .map(|o| (o.name.as_str(), o.priority))
            .collect();
        assert_eq!(pairs, [("critical", 2), ("batch", -1), ("default", 0)]);
        assert_eq!(
            parse_objectives_file(r#"{"objectives":[{"name":"a","priority":1}]}"#)
                .expect("json")
                .len(),
            1
        );
        let cases = [
            (
                "- name: a\n- name: a\n",
                "entry 1: objective \"a\" is listed twice",
            ),
            ("- name: \"\"\n", "entry 0: name is empty"),
            ("- name: a\n  prio: 1\n", "expected a list"),
            ("- name: a\n  priority: high\n", "expected a list"),
        ];
        for (text, expected) in cases {
            let err = parse_objectives_file(text).expect_err(text);
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn reload_replaces_objectives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("objectives.yaml");
        std::fs::write(&path, "- name: batch\n  priority: -1\n").expect("write");
        let store = Arc::new(Datastore::new(10));
        let mut watcher =
            ObjectivesFileWatcher::load(&path, ObjectivesFile(Arc::clone(&store))).expect("load");
        assert_eq!(store.objective("batch").map(|o| o.priority), Some(-1));
        std::fs::write(&path, "- name: critical\n  priority: 5\n").expect("write");
        assert!(watcher.reload_if_changed());
        assert!(store.objective("batch").is_none());
        assert_eq!(store.objective("critical").map(|o| o.priority), Some(5));
        std::fs::write(&path, "not: [valid").expect("write");
        assert!(!watcher.reload_if_changed());
        assert_eq!(
            store.objective("critical").map(|o| o.priority),
            Some(5),
            "last good kept"
        );
    }
}
