//! Prometheus text pages: `text_format::parse` and `CompiledMapping::extract` under every
//! engine preset.
//!
//! Invariants: no panic; every sample is one of the wanted names; KV usage, when
//! extracted, is finite and non-negative; a field that was extracted is not reported
//! missing.
#![no_main]

use std::sync::OnceLock;

use epp_datalayer::extract::CompiledMapping;
use epp_datalayer::presets::{Engine, MetricField, MetricMapping};
use epp_datalayer::text_format::{self, WantedNames};
use libfuzzer_sys::fuzz_target;

fn mappings() -> &'static [CompiledMapping] {
    static MAPPINGS: OnceLock<Vec<CompiledMapping>> = OnceLock::new();
    MAPPINGS.get_or_init(|| {
        Engine::ALL
            .into_iter()
            .map(|engine| CompiledMapping::new(MetricMapping::preset(engine)))
            .collect()
    })
}

fuzz_target!(|page: &[u8]| {
    // The raw parser with a name set that includes families the presets never ask for.
    let wanted = WantedNames::new(["http_requests_total", "vllm:num_requests_waiting", "a"]);
    if let Ok(samples) = text_format::parse(page, &wanted) {
        for sample in samples.iter() {
            assert!(wanted.name(sample.name_index).is_some());
            let _ = sample.label("le");
        }
    }
    for mapping in mappings() {
        let Ok(extracted) = mapping.extract(page) else {
            continue;
        };
        let update = &extracted.update;
        // Non-finite and negative readings are invalid, never values (issue 11, item 1).
        if let Some(kv) = update.kv_cache_usage {
            assert!(kv.is_finite() && kv >= 0.0, "KV usage {kv} extracted");
        }
        for field in [
            MetricField::Queue,
            MetricField::Running,
            MetricField::KvUsage,
        ] {
            assert!(
                !(extracted.invalid.contains(field) && extracted.missing.contains(field)),
                "{field:?} both invalid and missing"
            );
        }
        let missing = extracted.missing;
        assert!(!(update.waiting_queue_size.is_some() && missing.contains(MetricField::Queue)));
        assert!(!(update.running_requests.is_some() && missing.contains(MetricField::Running)));
        assert!(!(update.kv_cache_usage.is_some() && missing.contains(MetricField::KvUsage)));
        assert!(!(update.lora.is_some() && missing.contains(MetricField::Lora)));
        if let Some(lora) = &update.lora {
            // Sorted, deduplicated, trimmed, non-empty names.
            for list in [&lora.active, &lora.waiting] {
                assert!(list.windows(2).all(|w| w[0] < w[1]), "lora list {list:?}");
                assert!(list.iter().all(|n| !n.is_empty() && n.trim() == n));
            }
        }
    }
});
