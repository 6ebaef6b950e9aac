//! Turns a model server's metrics page into a `MetricsUpdate` under a mapping, with the upstream selection rules.
//!
//! Rules (reference §5.1, with the deliberate differences marked):
//! - Series selection: among the samples of the spec's name whose labels include all of
//!   the spec's labels, the one with the largest timestamp wins; a missing timestamp
//!   counts as 0 and ties go to the earlier line, so without timestamps the first
//!   matching series wins (upstream `getLatestMetric`).
//! - Gauges, counters and untyped samples are all read (upstream V1 reads a counter as 0).
//! - Validity, one rule for every numeric signal (queue, running, KV usage, cache gauges):
//!   a NaN, infinite or negative value is invalid. The field is then `None` and listed in
//!   [`Extracted::invalid`]. *Difference from v1.0.1*, which reads such a count as 0 and
//!   so makes a broken server look idle.
//! - Counts (queue, running): the valid value rounded down and capped at `u32::MAX`, so
//!   that sums over thousands of endpoints cannot overflow.
//! - KV usage: the valid raw fraction, not clamped (the scorer clamps a value above 1).
//! - LoRA and cache geometry: see [`CompiledMapping::extract`].
//! - A configured metric absent from the page leaves its field `None` and is listed in
//!   [`Extracted::missing`]. The datastore keeps the previous value of a `None` field
//!   and does not refresh its age, so it goes stale.

use std::fmt;

use crate::presets::{MetricField, MetricMapping};
use crate::text_format::{self, ParseError, Sample, Samples, WantedNames};
use epp_core::datastore::{CacheGeometry, LoraState, MetricsUpdate};

/// KV-usage name of older vLLM releases (and v1.0.1's default).
pub const VLLM_KV_OLD: &str = "vllm:gpu_cache_usage_perc";
/// KV-usage name of newer vLLM releases, which dropped the old one.
pub const VLLM_KV_NEW: &str = "vllm:kv_cache_usage_perc";

/// LoRA info label listing adapters with running requests.
pub const LORA_RUNNING_LABEL: &str = "running_lora_adapters";
/// LoRA info label listing adapters with waiting requests.
pub const LORA_WAITING_LABEL: &str = "waiting_lora_adapters";
/// LoRA info label with the server's adapter capacity.
pub const LORA_MAX_LABEL: &str = "max_lora";

/// A set of [`MetricField`]s, as one byte (no allocation per scrape).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(u8);

impl FieldSet {
    /// The empty set.
    pub const EMPTY: FieldSet = FieldSet(0);

    fn bit(field: MetricField) -> u8 {
        1 << (field as u8)
    }

    /// Adds `field`.
    pub fn insert(&mut self, field: MetricField) {
        self.0 |= Self::bit(field);
    }

    /// Whether `field` is in the set.
    pub fn contains(self, field: MetricField) -> bool {
        self.0 & Self::bit(field) != 0
    }

    /// The fields in either set.
    pub fn union(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 | other.0)
    }

    /// The fields in both sets.
    pub fn intersection(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 & other.0)
    }

    /// True when no field is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of fields in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The fields in [`MetricField::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = MetricField> {
        MetricField::ALL
            .into_iter()
            .filter(move |&f| self.contains(f))
    }
}

impl FromIterator<MetricField> for FieldSet {
    fn from_iter<I: IntoIterator<Item = MetricField>>(iter: I) -> Self {
        let mut set = FieldSet::EMPTY;
        for field in iter {
            set.insert(field);
        }
        set
    }
}

impl fmt::Debug for FieldSet {
    /// Prints the field names, e.g. `{"queue", "lora"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(MetricField::as_str))
            .finish()
    }
}

/// What one page yielded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// The valid values found; `None` fields keep their previous value (and age) in the
    /// datastore.
    pub update: MetricsUpdate,
    /// Configured fields the page did not provide (no matching series, or for cache info
    /// no readable label).
    pub missing: FieldSet,
    /// Configured fields whose selected series had a NaN, infinite or negative value.
    pub invalid: FieldSet,
    /// The vLLM KV-usage name actually read when the configured one was absent and the
    /// other name of the rename was present; the scraper logs this once per endpoint.
    pub used_kv_fallback: Option<&'static str>,
}

/// A [`MetricMapping`] prepared for repeated scrapes: the wanted-name set and each
/// field's index in it are computed once, not on every scrape.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    mapping: MetricMapping,
    wanted: WantedNames,
    /// Per [`MetricField`] (by discriminant): index of its spec's name in `wanted`.
    indices: [Option<usize>; MetricField::ALL.len()],
    /// Index and name of the other vLLM KV name, when the rename fallback applies.
    kv_fallback: Option<(usize, &'static str)>,
    /// The fields the mapping reads.
    configured: FieldSet,
}

impl From<MetricMapping> for CompiledMapping {
    fn from(mapping: MetricMapping) -> Self {
        CompiledMapping::new(mapping)
    }
}

impl CompiledMapping {
    /// Prepares `mapping`.
    ///
    /// The KV rename fallback is armed only when the KV spec is exactly
    /// `vllm:gpu_cache_usage_perc` or `vllm:kv_cache_usage_perc` without labels: a spec
    /// with labels or another name was chosen on purpose and is read as written.
    pub fn new(mapping: MetricMapping) -> CompiledMapping {
        let mut wanted = WantedNames::new(std::iter::empty::<&str>());
        let mut indices = [None; MetricField::ALL.len()];
        let mut configured = FieldSet::EMPTY;
        for (field, spec) in mapping.specs() {
            indices[field as usize] = Some(wanted.insert(&spec.name));
            configured.insert(field);
        }
        let kv_fallback = mapping
            .kv_usage
            .as_ref()
            .filter(|spec| spec.labels.is_empty())
            .and_then(|spec| match spec.name.as_str() {
                VLLM_KV_OLD => Some(VLLM_KV_NEW),
                VLLM_KV_NEW => Some(VLLM_KV_OLD),
                _ => None,
            })
            .map(|other| (wanted.insert(other), other));
        CompiledMapping {
            mapping,
            wanted,
            indices,
            kv_fallback,
            configured,
        }
    }

    /// The fields the mapping reads (those with a spec).
    pub fn configured(&self) -> FieldSet {
        self.configured
    }

    /// The mapping this was compiled from.
    pub fn mapping(&self) -> &MetricMapping {
        &self.mapping
    }

    /// The sample names a scrape reads.
    pub fn wanted(&self) -> &WantedNames {
        &self.wanted
    }

    /// Parses `page` and applies the mapping.
    ///
    /// LoRA (`lora` spec, vLLM `lora_requests_info`): only series with at least one
    /// adapter name in `running_lora_adapters` or `waiting_lora_adapters` qualify, and the
    /// one with the largest value (a creation timestamp) wins. Both labels are split on
    /// `,`, names are trimmed, empty names dropped, and each list is sorted and deduplicated;
    /// `max_lora` gives `max_active` (0 when missing or not a number). If no series
    /// qualifies but the family has series carrying those labels, all empty, the result is
    /// empty sets with `max_lora` of the newest such series: "no adapters in use".
    /// *Difference from v1.0.1*, which keeps the previous sets in that case, so adapters
    /// that stopped being used stay "active" forever (quirk A.10). Only when the family is
    /// absent is LoRA `None` (and reported missing).
    ///
    /// Cache geometry: from the `cache_info` series' labels named by the mapping (vLLM
    /// `block_size`/`num_gpu_blocks`, SGLang `page_size`/`num_pages`), and from the
    /// values of the `cache_block_size`/`cache_num_blocks` gauges (TensorRT-LLM). A part
    /// that is missing or unreadable is 0 ("unknown"); if neither part is known the
    /// geometry is `None`.
    ///
    /// Errors only when the page cannot be parsed (see [`text_format`]); a page without
    /// the configured metrics, including an empty page, is a success with everything
    /// reported missing.
    pub fn extract(&self, page: &[u8]) -> Result<Extracted, ParseError> {
        let samples = text_format::parse(page, &self.wanted)?;
        Ok(self.extract_samples(&samples))
    }

    fn index(&self, field: MetricField) -> Option<usize> {
        self.indices[field as usize]
    }

    /// The selected series of `field`, or `None` when the field is not configured or
    /// has no matching series.
    fn select<'s, 'a>(
        &self,
        samples: &'s Samples<'a>,
        field: MetricField,
    ) -> Option<Sample<'s, 'a>> {
        let spec = self.mapping.spec(field)?;
        latest(samples, self.index(field)?, &spec.labels)
    }

    fn extract_samples(&self, samples: &Samples<'_>) -> Extracted {
        use MetricField as F;
        let mut out = Extracted::default();
        let mut findings = Findings::default();
        let value_of = |field| self.select(samples, field).map(|s| s.value);

        let queue = findings.check(F::Queue, value_of(F::Queue));
        out.update.waiting_queue_size = queue.map(to_count);
        let running = findings.check(F::Running, value_of(F::Running));
        out.update.running_requests = running.map(to_count);

        let mut kv = self.select(samples, F::KvUsage);
        if kv.is_none()
            && let Some((other, name)) = self.kv_fallback
        {
            kv = latest(samples, other, &[]);
            out.used_kv_fallback = kv.map(|_| name);
        }
        out.update.kv_cache_usage = findings.check(F::KvUsage, kv.map(|s| s.value));

        let (mut block_size, mut num_blocks) = self.cache_from_labels(samples);
        findings.found(F::CacheInfo, block_size.is_some() || num_blocks.is_some());
        // Gauge values (TensorRT-LLM) fill what the info labels did not give.
        if block_size.is_none() {
            block_size = findings
                .check(F::CacheBlockSize, value_of(F::CacheBlockSize))
                .map(to_count);
        }
        if num_blocks.is_none() {
            num_blocks = findings
                .check(F::CacheNumBlocks, value_of(F::CacheNumBlocks))
                .map(to_count);
        }
        if block_size.is_some() || num_blocks.is_some() {
            out.update.cache = Some(CacheGeometry {
                block_size: block_size.map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX)),
                num_blocks: num_blocks.unwrap_or(0),
            });
        }

        out.update.lora = self.lora(samples);
        findings.found(F::Lora, out.update.lora.is_some());
        // A field without a spec yields nothing and is not reported.
        out.missing = findings.missing.intersection(self.configured);
        out.invalid = findings.invalid;
        out
    }

    /// Block size and block count from the labels of the cache-info series (either is
    /// `None` when the series or label is absent or not a number).
    fn cache_from_labels(&self, samples: &Samples<'_>) -> (Option<u64>, Option<u64>) {
        let series = self.select(samples, MetricField::CacheInfo);
        let read = |label: &str| {
            series
                .and_then(|s| s.label(label))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        (
            read(&self.mapping.cache_block_size_label),
            read(&self.mapping.cache_num_blocks_label),
        )
    }

    fn lora(&self, samples: &Samples<'_>) -> Option<LoraState> {
        let spec = self.mapping.lora.as_ref()?;
        let index = self.index(MetricField::Lora)?;
        // (value, sample) of the best qualifying series and of the newest all-empty one.
        let mut best: Option<(f64, Sample<'_, '_>)> = None;
        let mut newest_empty: Option<(f64, Sample<'_, '_>)> = None;
        for sample in samples.of(index).filter(|s| s.has_labels(&spec.labels)) {
            let running = sample.label(LORA_RUNNING_LABEL);
            let waiting = sample.label(LORA_WAITING_LABEL);
            if running.is_none() && waiting.is_none() {
                continue; // not a LoRA info series at all
            }
            let qualifies = [running, waiting]
                .into_iter()
                .any(|list| adapter_names(list.unwrap_or("")).next().is_some());
            // A NaN timestamp sorts below every real one.
            let key = if sample.value.is_nan() {
                f64::NEG_INFINITY
            } else {
                sample.value
            };
            let slot = if qualifies {
                &mut best
            } else {
                &mut newest_empty
            };
            if slot.is_none_or(|(k, _)| key > k) {
                *slot = Some((key, sample));
            }
        }
        let max_active = |s: &Sample<'_, '_>| {
            s.label(LORA_MAX_LABEL)
                .and_then(|v| v.trim().parse::<u32>().ok())
                .unwrap_or(0)
        };
        match (best, newest_empty) {
            (Some((_, s)), _) => Some(LoraState {
                active: adapter_list(s.label(LORA_RUNNING_LABEL)),
                waiting: adapter_list(s.label(LORA_WAITING_LABEL)),
                max_active: max_active(&s),
            }),
            (None, Some((_, s))) => Some(LoraState {
                active: Vec::new(),
                waiting: Vec::new(),
                max_active: max_active(&s),
            }),
            (None, None) => None,
        }
    }
}

/// Parses `page` under `mapping`; the same as [`CompiledMapping::extract`].
pub fn extract(page: &[u8], mapping: &CompiledMapping) -> Result<Extracted, ParseError> {
    mapping.extract(page)
}

/// The series of `name_index` matching `labels` with the largest timestamp (missing = 0);
/// ties, including "no timestamps at all", go to the first in page order.
fn latest<'s, 'a>(
    samples: &'s Samples<'a>,
    name_index: usize,
    labels: &[(String, String)],
) -> Option<Sample<'s, 'a>> {
    let mut best: Option<Sample<'s, 'a>> = None;
    for sample in samples.of(name_index).filter(|s| s.has_labels(labels)) {
        let newer =
            best.is_none_or(|b| sample.timestamp_ms.unwrap_or(0) > b.timestamp_ms.unwrap_or(0));
        if newer {
            best = Some(sample);
        }
    }
    best
}

/// What one extraction found wrong, per field.
#[derive(Debug, Default)]
struct Findings {
    missing: FieldSet,
    invalid: FieldSet,
}

impl Findings {
    /// Notes `field` as missing unless `found`.
    fn found(&mut self, field: MetricField, found: bool) {
        if !found {
            self.missing.insert(field);
        }
    }

    /// The valid `value` of `field`; an absent one is noted missing, an invalid one invalid.
    fn check(&mut self, field: MetricField, value: Option<f64>) -> Option<f64> {
        let Some(value) = value else {
            self.missing.insert(field);
            return None;
        };
        let valid = valid(value);
        if valid.is_none() {
            self.invalid.insert(field);
        }
        valid
    }
}

/// The validity rule of every numeric signal: a finite value that is not negative
/// (`-0` reads as 0). NaN, infinities and negative numbers are no reading at all.
fn valid(value: f64) -> Option<f64> {
    (value.is_finite() && value >= 0.0).then_some(value)
}

/// A count from a valid sample value: rounded down, capped at `u32::MAX` (the cap keeps
/// sums across endpoints far from overflow).
fn to_count(value: f64) -> u64 {
    (value as u64).min(u64::from(u32::MAX))
}

/// The adapter names of a comma-separated label: trimmed, empty names dropped.
fn adapter_names(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|n| !n.is_empty())
}

/// The adapter names of a label as a sorted list without duplicates (sorting keeps a
/// crafted list of many names O(n log n)).
fn adapter_list(list: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = adapter_names(list.unwrap_or(""))
        .map(str::to_owned)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
#[path = "extract/tests.rs"]
mod tests;
