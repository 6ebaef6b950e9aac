//! The stream's part in the request log: an entry begun at the decision (when the prompt
//! is at hand, so it is hashed then and not kept) and written when the response ends.
//! With the log off each hook is one `Option` check.

use std::time::{Instant, SystemTime};

use envoy_types::pb::envoy::service::ext_proc::v3::HttpHeaders;

use super::{StreamState, header_text};
use crate::request_log::{RequestLogEntry, RoutedRequest};
use crate::usage::Usage;
use epp_core::director::Decision;

impl StreamState {
    /// Begins the log entry of a routed request; `prompt` is what the scheduler was given.
    pub(super) fn begin_log_entry(&mut self, decision: &Decision, prompt: Option<&str>) {
        let Some(log) = &self.settings.request_log else {
            return;
        };
        let entry = RequestLogEntry::routed(
            &RoutedRequest {
                arrival: self.arrival_wall_clock(),
                model: &self.model,
                target_model: &self.target_model,
                prompt,
                session: self.headers.get(log.session_header()),
                endpoint: decision
                    .endpoints
                    .first()
                    .map_or("", |endpoint| endpoint.address_text()),
            },
            log.block_size(),
        );
        self.log_entry = Some(Box::new(entry));
    }

    /// Notes the response's `:status` in the entry.
    pub(super) fn note_response_status(&mut self, headers: &HttpHeaders) {
        let Some(entry) = &mut self.log_entry else {
            return;
        };
        entry.status = headers
            .headers
            .iter()
            .flat_map(|map| &map.headers)
            .find(|h| h.key == ":status")
            .and_then(|h| header_text(h).trim().parse().ok());
    }

    /// Completes the entry with the response's usage and queues it.
    pub(super) fn finish_log_entry(&mut self, usage: Option<&Usage>) {
        let (Some(mut entry), Some(log)) = (self.log_entry.take(), &self.settings.request_log)
        else {
            return;
        };
        entry.finish(usage);
        log.record(*entry);
    }

    /// When the request headers arrived, on the wall clock: now, less the monotonic time
    /// since then (the stream keeps only the monotonic instant).
    fn arrival_wall_clock(&self) -> SystemTime {
        let now = SystemTime::now();
        self.telemetry
            .received_at
            .and_then(|received| {
                now.checked_sub(Instant::now().saturating_duration_since(received))
            })
            .unwrap_or(now)
    }
}
