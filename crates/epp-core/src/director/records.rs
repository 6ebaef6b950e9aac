//! Decision records: one structured record per request, saying where it went and why
//! (candidates, filters, every scorer's raw and weighted scores, the pick, the time).
//! Prompts are never part of a record.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use serde::Serialize;

use crate::scheduling::observer::ProfileTrace;

/// Records waiting for the file writer before new ones are dropped (and counted).
const FILE_QUEUE: usize = 16_384;

/// One request's decision.
#[derive(Debug, Serialize)]
pub struct DecisionRecord<'a> {
    pub request_id: &'a str,
    pub model: &'a str,
    pub target_model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objective: Option<&'a str>,
    /// The gateway's subset hint, when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<&'a [String]>,
    /// Endpoints in the pool when the request arrived.
    pub pool_size: usize,
    /// `scheduled`, `random_bodyless`, or why nothing was picked.
    pub outcome: &'a str,
    /// `ip:port[,ip:port...]` when routed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<&'a str>,
    /// Time spent deciding, in microseconds.
    pub decision_micros: u64,
    /// Time waited in flow control before routing, in microseconds (when it waited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_micros: Option<u64>,
    pub profiles: &'a [ProfileTrace],
}

/// Where records go: the log (target `epp::decision`, INFO), a JSON-lines file, or both.
pub struct DecisionRecorder {
    log: bool,
    file: Option<SyncSender<String>>,
    /// Unbounded, for simulators that read the records back after the run.
    memory: Option<std::sync::mpsc::Sender<String>>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for DecisionRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionRecorder")
            .field("log", &self.log)
            .field("file", &self.file.is_some())
            .finish()
    }
}

impl DecisionRecorder {
    /// Records to the log only.
    pub fn to_log() -> Self {
        DecisionRecorder {
            log: true,
            file: None,
            memory: None,
            dropped: Arc::default(),
        }
    }

    /// Records into memory, read back from the returned receiver (one JSON line each). For
    /// simulators, which route a bounded number of requests; never for traffic.
    pub fn to_memory() -> (Self, std::sync::mpsc::Receiver<String>) {
        let (sender, receiver) = std::sync::mpsc::channel();
        let recorder = DecisionRecorder {
            log: false,
            file: None,
            memory: Some(sender),
            dropped: Arc::default(),
        };
        (recorder, receiver)
    }

    /// Records to `path` (appended, one JSON object per line), written by a background
    /// thread so the request path never waits on the disk; and to the log when `log`.
    pub fn to_file(path: &Path, log: bool) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (sender, receiver) = sync_channel::<String>(FILE_QUEUE);
        std::thread::Builder::new()
            .name("decision-records".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(file);
                // Write what is queued, then flush, so records reach the file promptly.
                while let Ok(first) = receiver.recv() {
                    let written = std::iter::once(first)
                        .chain(receiver.try_iter())
                        .try_for_each(|line| {
                            out.write_all(line.as_bytes())
                                .and_then(|_| out.write_all(b"\n"))
                        })
                        .and_then(|_| out.flush());
                    if let Err(e) = written {
                        tracing::error!(error = %e, "cannot write decision records; stopping");
                        return;
                    }
                }
            })?;
        Ok(DecisionRecorder {
            log,
            file: Some(sender),
            memory: None,
            dropped: Arc::default(),
        })
    }

    /// Records dropped because the file writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn record(&self, record: &DecisionRecord<'_>) {
        let Ok(json) = serde_json::to_string(record) else {
            return;
        };
        if self.log {
            tracing::info!(target: "epp::decision", record = %json, "decision");
        }
        if let Some(memory) = &self.memory {
            let _ = memory.send(json.clone());
        }
        if let Some(file) = &self.file {
            match file.try_send(json) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(
                            dropped,
                            "decision records dropped: the file writer is behind"
                        );
                    }
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_records_are_json_lines_without_prompts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("decisions.jsonl");
        let recorder = DecisionRecorder::to_file(&path, false).expect("open");
        let profiles = [ProfileTrace {
            profile: "default".into(),
            candidates: vec!["10.0.0.1:8000".into()],
            picked: vec!["10.0.0.1:8000".into()],
            ..Default::default()
        }];
        for i in 0..3 {
            let id = format!("r{i}");
            recorder.record(&DecisionRecord {
                request_id: &id,
                model: "m",
                target_model: "m",
                objective: None,
                subset: None,
                pool_size: 1,
                outcome: "scheduled",
                destination: Some("10.0.0.1:8000"),
                decision_micros: 12,
                queued_micros: (i == 1).then_some(2_500),
                profiles: &profiles,
            });
        }
        drop(recorder);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let lines = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("json line"))
                .collect();
            if lines.len() == 3 || std::time::Instant::now() > deadline {
                break lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["request_id"], "r2");
        assert_eq!(lines[0]["profiles"][0]["picked"][0], "10.0.0.1:8000");
        assert!(lines[0].get("objective").is_none());
        assert!(lines[0].get("queued_micros").is_none());
        assert_eq!(lines[1]["queued_micros"], 2_500);
    }
}
