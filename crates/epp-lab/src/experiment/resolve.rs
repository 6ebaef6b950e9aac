//! Raw experiment → validated [`Experiment`]: defaults, profile lookup, built-in workloads,
//! policy configs checked by the EPP's own loader.

use std::path::Path;

use epp_core::config::EndpointPickerConfig;
use epp_engine::profiles::NAMES;
use epp_engine::{Gpu, ModelArch, ModelProfile};
use serde_json::json;

use super::duration::parse_go_duration;
use super::raw::{
    RawClass, RawCluster, RawDuration, RawExperiment, RawGpu, RawKvEvents, RawObjective, RawPolicy,
    RawSignals, RawStepTime,
};
use super::{
    ClusterSpec, Experiment, ExperimentError, KvEventsSpec, ObjectiveSpec, Overheads, Policy,
    Signals, StepTimeSpec,
};
use crate::workload::classes::{FlowAssignment, WorkloadClass};
use crate::workload::{self, WorkloadSpec};

/// Where named profiles and GPUs come from (tests substitute their own).
pub(crate) struct Resolvers {
    pub profile: fn(&str) -> Option<ModelProfile>,
    pub gpu: fn(&str) -> Option<Gpu>,
}

pub(crate) const BUILT_IN: Resolvers = Resolvers {
    profile: epp_engine::profiles::by_name,
    gpu: epp_engine::profiles::gpu_by_name,
};

pub(crate) fn from_yaml(
    text: &str,
    base_dir: &Path,
    resolvers: &Resolvers,
) -> Result<Experiment, ExperimentError> {
    let raw: RawExperiment =
        serde_saphyr::from_str(text).map_err(|e| ExperimentError::Decode(e.to_string()))?;
    if raw.name.trim().is_empty() {
        return Err(field("name", "must not be empty"));
    }
    let cluster = cluster(raw.cluster, resolvers)?;
    let model_name = match raw.model_name {
        Some(name) if name.trim().is_empty() => {
            return Err(field("model_name", "must not be empty"));
        }
        Some(name) => name,
        None => default_model_name(&cluster.profile.name),
    };
    let seeds = raw.seeds.unwrap_or_else(|| vec![1]);
    if seeds.is_empty() {
        return Err(field("seeds", "give at least one seed"));
    }
    let kv_events = experiment_kv_events(raw.kv_events.as_ref(), &raw.signals)?;
    let objectives = objectives(raw.objectives.unwrap_or_default())?;
    let (workload, classes) = match (raw.workload, raw.workloads) {
        (Some(workload), None) => (
            anchor_trace(
                workload_spec(
                    inference_perf_sections(workload, base_dir, "workload")?,
                    "workload",
                )?,
                base_dir,
            ),
            Vec::new(),
        ),
        (None, Some(raw_classes)) => (
            WorkloadSpec::default(),
            classes(raw_classes, &objectives, base_dir)?,
        ),
        (Some(_), Some(_)) => {
            return Err(field(
                "workloads",
                "give either workload (one) or workloads (classes), not both",
            ));
        }
        (None, None) => {
            return Err(field(
                "workload",
                "give a workload, or workloads: a list of classes",
            ));
        }
    };
    let policies = policies(raw.policies, base_dir, kv_events, &classes)?;
    Ok(Experiment {
        name: raw.name,
        description: raw.description,
        cluster,
        policies,
        model_name,
        workload,
        objectives,
        classes,
        signals: signals(raw.signals)?,
        kv_events,
        seeds,
    })
}

/// Replaces `workload.inference_perf: FILE` by that file's `data:` and `load:` sections.
fn inference_perf_sections(
    mut spec: WorkloadSpec,
    base_dir: &Path,
    path: &str,
) -> Result<WorkloadSpec, ExperimentError> {
    let Some(file) = spec.inference_perf.take() else {
        return Ok(spec);
    };
    let field_name = format!("{path}.inference_perf");
    if spec.builtin.is_some() || spec.data.is_some() || spec.load.is_some() || spec.trace.is_some()
    {
        return Err(field(
            &field_name,
            "give either inference_perf or builtin/data/load/trace, not both",
        ));
    }
    let path = base_dir.join(&file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| field(&field_name, &format!("cannot read {}: {e}", path.display())))?;
    let config: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(|e| field(&field_name, &format!("{}: {e}", path.display())))?;
    let section = |name: &str| {
        let value = config.get(name).cloned().ok_or_else(|| {
            field(
                &field_name,
                &format!("{} has no `{name}:` section", path.display()),
            )
        })?;
        Ok::<_, ExperimentError>(value)
    };
    let data = serde_json::from_value(section("data")?)
        .map_err(|e| field(&field_name, &format!("{} data: {e}", path.display())))?;
    let load = serde_json::from_value(section("load")?)
        .map_err(|e| field(&field_name, &format!("{} load: {e}", path.display())))?;
    spec.data = Some(data);
    spec.load = Some(load);
    Ok(spec)
}

/// Makes a trace path relative to the experiment file absolute, so the experiment runs the
/// same from any working directory.
fn anchor_trace(mut workload: WorkloadSpec, base_dir: &Path) -> WorkloadSpec {
    if let Some(trace) = workload.trace.as_mut()
        && Path::new(&trace.path).is_relative()
    {
        trace.path = base_dir.join(&trace.path).display().to_string();
    }
    workload
}

fn field(path: &str, message: &str) -> ExperimentError {
    ExperimentError::Field {
        field: path.to_string(),
        message: message.to_string(),
    }
}

// === cluster ===

/// Pods in one experiment at most.
const MAX_PODS: usize = 4096;

/// KV blocks over the whole cluster at most: each costs about 24 bytes of block table.
const MAX_CLUSTER_BLOCKS: u64 = 100_000_000;

fn cluster(raw: RawCluster, resolvers: &Resolvers) -> Result<ClusterSpec, ExperimentError> {
    let profile = profile(&raw, resolvers)?;
    let positive = |value: Option<usize>, default: usize, path: &str| match value {
        Some(0) => Err(field(path, "must be at least 1")),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    if raw.pods == 0 {
        return Err(field("cluster.pods", "must be at least 1"));
    }
    if raw.kv_capacity_tokens == Some(0) {
        return Err(field("cluster.kv_capacity_tokens", "must be at least 1"));
    }
    if raw.max_model_len == Some(0) {
        return Err(field("cluster.max_model_len", "must be at least 1"));
    }
    if raw.pods > MAX_PODS {
        return Err(field(
            "cluster.pods",
            &format!("at most {MAX_PODS} (got {})", raw.pods),
        ));
    }
    let block_size = positive(raw.block_size, 16, "cluster.block_size")?;
    let capacity = raw
        .kv_capacity_tokens
        .unwrap_or_else(|| profile.kv_capacity_tokens());
    let blocks = (capacity / block_size as u64).saturating_mul(raw.pods as u64);
    if blocks > MAX_CLUSTER_BLOCKS {
        return Err(field(
            "cluster",
            &format!(
                "pods × KV blocks per pod = {blocks}, more than the lab simulates ({MAX_CLUSTER_BLOCKS},                  about 2.4 GB of block tables): use fewer pods, fewer KV tokens or larger blocks"
            ),
        ));
    }
    Ok(ClusterSpec {
        pods: raw.pods,
        profile,
        kv_capacity_tokens: raw.kv_capacity_tokens,
        block_size,
        max_num_batched_tokens: positive(
            raw.max_num_batched_tokens,
            8192,
            "cluster.max_num_batched_tokens",
        )?,
        max_num_seqs: positive(raw.max_num_seqs, 1024, "cluster.max_num_seqs")?,
        max_model_len: raw.max_model_len,
        step_time: step_time(raw.step_time)?,
        overheads: overheads(raw.overheads.as_ref())?,
    })
}

fn profile(raw: &RawCluster, resolvers: &Resolvers) -> Result<ModelProfile, ExperimentError> {
    if let Some(name) = &raw.profile {
        if raw.model.is_some() || raw.gpu.is_some() || raw.tp.is_some() {
            return Err(field(
                "cluster.profile",
                "give either a profile or model + gpu + tp, not both",
            ));
        }
        if !NAMES.contains(&name.as_str()) {
            return Err(field(
                "cluster.profile",
                &format!("unknown profile {name:?} (known: {})", NAMES.join(", ")),
            ));
        }
        return (resolvers.profile)(name).ok_or_else(|| {
            field(
                "cluster.profile",
                &format!("profile {name:?} is not available in this build"),
            )
        });
    }
    let (Some(model), Some(gpu), Some(tp)) = (&raw.model, &raw.gpu, raw.tp) else {
        return Err(field(
            "cluster.profile",
            &format!(
                "give a profile (one of {}) or model + gpu + tp",
                NAMES.join(", ")
            ),
        ));
    };
    if tp == 0 {
        return Err(field("cluster.tp", "must be at least 1"));
    }
    let arch = ModelArch {
        layers: model.layers,
        hidden: model.hidden,
        heads: model.heads,
        kv_heads: model.kv_heads,
        head_dim: model.head_dim,
        ffn: model.ffn,
        weight_bytes: model.weight_gb * 1e9,
        kv_bytes_per_element: model.kv_bytes_per_element,
        vocab: model.vocab,
        tied_embeddings: model.tied_embeddings,
    };
    let gpu = match gpu {
        RawGpu::Named(name) => (resolvers.gpu)(name).ok_or_else(|| {
            field(
                "cluster.gpu",
                &format!("unknown GPU {name:?} (known: h100-sxm, a100-sxm, h200)"),
            )
        })?,
        RawGpu::Spec(spec) => Gpu {
            name: spec.name.clone(),
            peak_flops: spec.peak_tflops * 1e12,
            hbm_bytes_per_s: spec.hbm_tb_s * 1e12,
            memory_bytes: spec.memory_gb * 1e9,
            mfu_prefill: spec.mfu_prefill,
        },
    };
    Ok(ModelProfile {
        name: "custom".to_string(),
        arch,
        gpu,
        tp,
        kv_capacity_tokens: None,
        gpu_memory_utilization: epp_engine::profiles::DEFAULT_GPU_MEMORY_UTILIZATION,
        activation_reserve_bytes: epp_engine::profiles::DEFAULT_ACTIVATION_RESERVE_BYTES,
    })
}

fn step_time(raw: Option<RawStepTime>) -> Result<StepTimeSpec, ExperimentError> {
    match raw {
        None | Some(RawStepTime::Roofline) => Ok(StepTimeSpec::Roofline),
        Some(RawStepTime::Linear(l)) => {
            let terms = [
                l.base_ms,
                l.per_prefill_token_us,
                l.per_decode_seq_us,
                l.per_context_token_ns,
            ];
            if terms.iter().any(|t| !t.is_finite() || *t < 0.0) {
                return Err(field(
                    "cluster.step_time.linear",
                    "coefficients must be finite and >= 0",
                ));
            }
            Ok(StepTimeSpec::Linear {
                base_ms: l.base_ms,
                per_prefill_token_us: l.per_prefill_token_us,
                per_decode_seq_us: l.per_decode_seq_us,
                per_context_token_ns: l.per_context_token_ns,
            })
        }
        Some(RawStepTime::Constant(model)) => Ok(StepTimeSpec::Constant(model)),
        Some(RawStepTime::Table(table)) => Ok(StepTimeSpec::Table(table)),
    }
}

fn overheads(raw: Option<&super::raw::RawOverheads>) -> Result<Overheads, ExperimentError> {
    let pick = |value: Option<f64>, default: f64, scale: f64, path: &str| match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err(field(path, "must be finite and >= 0")),
        Some(v) => Ok(v * scale),
        None => Ok(default * scale),
    };
    Ok(Overheads {
        frontend_s: pick(
            raw.and_then(|r| r.frontend_ms),
            15.6,
            1e-3,
            "cluster.overheads.frontend_ms",
        )?,
        per_token_s: pick(
            raw.and_then(|r| r.per_token_us),
            46.0,
            1e-6,
            "cluster.overheads.per_token_us",
        )?,
        end_s: pick(
            raw.and_then(|r| r.end_ms),
            0.78,
            1e-3,
            "cluster.overheads.end_ms",
        )?,
    })
}

/// The Hugging Face name a profile's model is served under.
fn default_model_name(profile: &str) -> String {
    const TABLE: &[(&str, &str)] = &[
        ("qwen3-32b", "Qwen/Qwen3-32B"),
        ("qwen3-8b", "Qwen/Qwen3-8B"),
        ("llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct"),
        ("llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct"),
        (
            "r1-distill-qwen-7b",
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        ),
    ];
    TABLE
        .iter()
        .find(|(prefix, _)| profile.starts_with(prefix))
        .map_or_else(|| profile.to_string(), |(_, model)| (*model).to_string())
}

// === workload, signals, policies ===

/// Replaces `builtin` by the preset's workload and checks the sections (`path` names the
/// section in errors: `workload`, or `workloads[i]` for a class).
fn workload_spec(mut spec: WorkloadSpec, path: &str) -> Result<WorkloadSpec, ExperimentError> {
    if let Some(name) = spec.builtin.take() {
        let builtin = format!("{path}.builtin");
        if spec.data.is_some() || spec.load.is_some() || spec.trace.is_some() {
            return Err(field(
                &builtin,
                "give either builtin or data/load/trace, not both",
            ));
        }
        let text = super::presets::text(&name).ok_or_else(|| super::unknown_preset(&name))?;
        let preset: RawExperiment = serde_saphyr::from_str(text)
            .map_err(|e| ExperimentError::Decode(format!("preset {name}: {e}")))?;
        spec = preset.workload.ok_or_else(|| {
            field(
                &builtin,
                &format!("preset {name} has several workload classes, not one workload"),
            )
        })?;
    }
    if path == "workload" {
        workload::validate(&spec).map_err(|e| ExperimentError::Decode(e.to_string()))?;
    }
    Ok(spec)
}

// === objectives and classes ===

/// At most this many objectives and classes (each class costs a report section).
const MAX_CLASSES: usize = 64;
/// Flows per class at most.
const MAX_FLOWS: u32 = 10_000;

fn objectives(raw: Vec<RawObjective>) -> Result<Vec<ObjectiveSpec>, ExperimentError> {
    if raw.len() > MAX_CLASSES {
        return Err(field("objectives", &format!("at most {MAX_CLASSES}")));
    }
    let mut out: Vec<ObjectiveSpec> = Vec::with_capacity(raw.len());
    for (i, objective) in raw.into_iter().enumerate() {
        let path = format!("objectives[{i}].name");
        if objective.name.trim().is_empty() {
            return Err(field(&path, "must not be empty"));
        }
        if out.iter().any(|o| o.name == objective.name) {
            return Err(field(
                &path,
                &format!("{:?} is named twice", objective.name),
            ));
        }
        out.push(ObjectiveSpec {
            name: objective.name,
            priority: objective.priority,
        });
    }
    Ok(out)
}

fn classes(
    raw: Vec<RawClass>,
    objectives: &[ObjectiveSpec],
    base_dir: &Path,
) -> Result<Vec<WorkloadClass>, ExperimentError> {
    if raw.is_empty() {
        return Err(field("workloads", "give at least one class"));
    }
    if raw.len() > MAX_CLASSES {
        return Err(field(
            "workloads",
            &format!("at most {MAX_CLASSES} classes"),
        ));
    }
    let mut out: Vec<WorkloadClass> = Vec::with_capacity(raw.len());
    for (i, class) in raw.into_iter().enumerate() {
        let path = format!("workloads[{i}]");
        if class.name.trim().is_empty() {
            return Err(field(&format!("{path}.name"), "must not be empty"));
        }
        if out.iter().any(|c| c.name == class.name) {
            return Err(field(
                &format!("{path}.name"),
                &format!("{:?} is used twice", class.name),
            ));
        }
        if let Some(name) = &class.objective
            && !objectives.iter().any(|o| &o.name == name)
        {
            let known: Vec<&str> = objectives.iter().map(|o| o.name.as_str()).collect();
            return Err(field(
                &format!("{path}.objective"),
                &format!(
                    "{name:?} is not in objectives (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        let flows = flow_assignment(class.flows, class.flow_weights, &path)?;
        let spec = WorkloadSpec {
            builtin: class.builtin,
            inference_perf: class.inference_perf,
            data: class.data,
            load: class.load,
            trace: None,
        };
        let spec = workload_spec(inference_perf_sections(spec, base_dir, &path)?, &path)?;
        out.push(WorkloadClass {
            name: class.name,
            objective: class.objective,
            flows,
            spec,
        });
    }
    workload::classes::validate(&out).map_err(|e| match e {
        workload::WorkloadError::Field { field: f, message } => field(&f, &message),
        other => ExperimentError::Decode(other.to_string()),
    })?;
    Ok(out)
}

fn flow_assignment(
    flows: Option<u32>,
    weights: Option<Vec<f64>>,
    path: &str,
) -> Result<FlowAssignment, ExperimentError> {
    match (flows, weights) {
        (Some(0), _) => Err(field(&format!("{path}.flows"), "must be at least 1")),
        (Some(n), _) if n > MAX_FLOWS => Err(field(
            &format!("{path}.flows"),
            &format!("at most {MAX_FLOWS}"),
        )),
        (flows, Some(weights)) => {
            let name = format!("{path}.flow_weights");
            if weights.is_empty() || weights.len() > MAX_FLOWS as usize {
                return Err(field(&name, &format!("give 1 to {MAX_FLOWS} weights")));
            }
            if weights.iter().any(|w| !w.is_finite() || *w < 0.0)
                || weights.iter().sum::<f64>() <= 0.0
            {
                return Err(field(&name, "weights must be finite, >= 0, and not all 0"));
            }
            if let Some(n) = flows
                && n as usize != weights.len()
            {
                return Err(field(
                    &name,
                    &format!("{} weights for flows: {n}", weights.len()),
                ));
            }
            Ok(FlowAssignment::Weighted(weights))
        }
        (flows, None) => Ok(FlowAssignment::RoundRobin {
            flows: flows.unwrap_or(1),
        }),
    }
}

/// Seconds of an optional duration field (`default` when absent), or an error naming `path`.
fn duration(value: Option<&RawDuration>, default: f64, path: &str) -> Result<f64, ExperimentError> {
    let s = match value {
        None => default,
        Some(RawDuration::Seconds(s)) => *s,
        Some(RawDuration::Text(text)) => parse_go_duration(text).map_err(|m| field(path, &m))?,
    };
    if !s.is_finite() || s < 0.0 {
        return Err(field(path, "must be a duration >= 0"));
    }
    Ok(s)
}

fn signals(raw: RawSignals) -> Result<Signals, ExperimentError> {
    let scrape = duration(
        raw.scrape_interval.as_ref(),
        0.05,
        "signals.scrape_interval",
    )?;
    if scrape == 0.0 {
        return Err(field("signals.scrape_interval", "must be positive"));
    }
    Ok(Signals {
        scrape_interval_s: scrape,
        metrics_staleness_s: duration(
            raw.metrics_staleness.as_ref(),
            2.0,
            "signals.metrics_staleness",
        )?,
    })
}

/// The experiment-level `kv_events:` (with the older `signals.kv_event_delay` as its delay).
fn experiment_kv_events(
    raw: Option<&RawKvEvents>,
    signals: &RawSignals,
) -> Result<KvEventsSpec, ExperimentError> {
    let mut base = KvEventsSpec::default();
    if let Some(delay) = &signals.kv_event_delay {
        if raw.is_some_and(|r| r.delay.is_some()) {
            return Err(field(
                "signals.kv_event_delay",
                "give the delay once, as kv_events.delay",
            ));
        }
        base.delay_s = duration(Some(delay), base.delay_s, "signals.kv_event_delay")?;
    }
    kv_events(raw, base, "kv_events")
}

/// `raw`'s fields over `base`; errors name `path.field`.
fn kv_events(
    raw: Option<&RawKvEvents>,
    base: KvEventsSpec,
    path: &str,
) -> Result<KvEventsSpec, ExperimentError> {
    let Some(raw) = raw else {
        return Ok(base);
    };
    let drop_ratio = match raw.drop_ratio {
        None => base.drop_ratio,
        Some(r) if r.is_finite() && (0.0..=1.0).contains(&r) => r,
        Some(r) => {
            return Err(field(
                &format!("{path}.drop_ratio"),
                &format!("{r} is not a probability in [0, 1]"),
            ));
        }
    };
    Ok(KvEventsSpec {
        delay_s: duration(raw.delay.as_ref(), base.delay_s, &format!("{path}.delay"))?,
        jitter_s: duration(
            raw.jitter.as_ref(),
            base.jitter_s,
            &format!("{path}.jitter"),
        )?,
        drop_ratio,
    })
}

fn policies(
    raw: Vec<RawPolicy>,
    base_dir: &Path,
    events: KvEventsSpec,
    classes: &[WorkloadClass],
) -> Result<Vec<Policy>, ExperimentError> {
    if raw.is_empty() {
        return Err(field("policies", "give at least one policy"));
    }
    let mut out: Vec<Policy> = Vec::with_capacity(raw.len());
    for (index, policy) in raw.into_iter().enumerate() {
        let error = |message: String| ExperimentError::Policy {
            index,
            name: policy.name.clone(),
            message,
        };
        if policy.name.trim().is_empty() {
            return Err(field(
                &format!("policies[{index}].name"),
                "must not be empty",
            ));
        }
        if out.iter().any(|p| p.name == policy.name) {
            return Err(error("the name is used twice".into()));
        }
        let config_text = match (&policy.config, &policy.config_file) {
            (Some(text), None) => text.clone(),
            (None, Some(file)) => {
                let path = base_dir.join(file);
                std::fs::read_to_string(&path)
                    .map_err(|e| error(format!("config_file {}: {e}", path.display())))?
            }
            _ => return Err(error("give exactly one of config and config_file".into())),
        };
        EndpointPickerConfig::from_text(&config_text).map_err(|e| error(e.to_string()))?;
        let kv_events = kv_events(
            policy.kv_events.as_ref(),
            events,
            &format!("policies[{index}].kv_events"),
        )?;
        let only = policy
            .classes
            .as_ref()
            .map(|names| policy_classes(names, classes, index))
            .transpose()?;
        out.push(Policy {
            name: policy.name.clone(),
            config_text,
            kv_events,
            classes: only,
        });
    }
    Ok(out)
}

/// A policy's `classes:` as indexes into the experiment's classes.
fn policy_classes(
    names: &[String],
    classes: &[WorkloadClass],
    index: usize,
) -> Result<Vec<u32>, ExperimentError> {
    let path = format!("policies[{index}].classes");
    if classes.is_empty() {
        return Err(field(&path, "needs a multi-class experiment (workloads:)"));
    }
    if names.is_empty() {
        return Err(field(&path, "name at least one class"));
    }
    names
        .iter()
        .map(|name| {
            classes
                .iter()
                .position(|c| &c.name == name)
                .map(|i| i as u32)
                .ok_or_else(|| {
                    let known: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
                    field(
                        &path,
                        &format!("{name:?} is not a class (known: {})", known.join(", ")),
                    )
                })
        })
        .collect()
}

// === resolved JSON ===

pub(crate) fn to_json(e: &Experiment) -> serde_json::Value {
    let c = &e.cluster;
    let p = &c.profile;
    let step_time = match &c.step_time {
        StepTimeSpec::Roofline => json!("roofline"),
        StepTimeSpec::Linear {
            base_ms,
            per_prefill_token_us,
            per_decode_seq_us,
            per_context_token_ns,
        } => json!({
            "linear": {
                "base_ms": base_ms,
                "per_prefill_token_us": per_prefill_token_us,
                "per_decode_seq_us": per_decode_seq_us,
                "per_context_token_ns": per_context_token_ns,
            }
        }),
        StepTimeSpec::Constant(model) => json!({ "constant": model }),
        StepTimeSpec::Table(table) => json!({ "table": table }),
    };
    let mut out = json!({
        "name": e.name,
        "description": e.description,
        "cluster": {
            "pods": c.pods,
            "profile": {
                "name": p.name,
                "model": {
                    "layers": p.arch.layers, "hidden": p.arch.hidden, "heads": p.arch.heads,
                    "kv_heads": p.arch.kv_heads, "head_dim": p.arch.head_dim, "ffn": p.arch.ffn,
                    "weight_bytes": p.arch.weight_bytes, "kv_bytes_per_element": p.arch.kv_bytes_per_element,
                },
                "gpu": {
                    "name": p.gpu.name, "peak_flops": p.gpu.peak_flops,
                    "hbm_bytes_per_s": p.gpu.hbm_bytes_per_s, "memory_bytes": p.gpu.memory_bytes,
                    "mfu_prefill": p.gpu.mfu_prefill,
                },
                "tp": p.tp,
                "kv_capacity_tokens": p.kv_capacity_tokens,
            },
            "kv_capacity_tokens": c.kv_capacity_tokens,
            "block_size": c.block_size,
            "max_num_batched_tokens": c.max_num_batched_tokens,
            "max_num_seqs": c.max_num_seqs,
            "max_model_len": c.max_model_len,
            "step_time": step_time,
            "overheads": {
                "frontend_s": c.overheads.frontend_s,
                "per_token_s": c.overheads.per_token_s,
                "end_s": c.overheads.end_s,
            },
        },
        "model_name": e.model_name,
        "workload": serde_json::to_value(&e.workload).unwrap_or(serde_json::Value::Null),
        "signals": {
            "scrape_interval_s": e.signals.scrape_interval_s,
            "metrics_staleness_s": e.signals.metrics_staleness_s,
        },
        "kv_events": kv_events_json(&e.kv_events),
        "policies": e.policies.iter().map(|p| {
            let mut policy = json!({
                "name": p.name,
                "config": p.config_text,
                "kv_events": kv_events_json(&p.kv_events),
            });
            if let Some(only) = &p.classes {
                policy["classes"] = only
                    .iter()
                    .filter_map(|&c| e.classes.get(c as usize).map(|c| json!(c.name)))
                    .collect();
            }
            policy
        }).collect::<Vec<_>>(),
        "seeds": e.seeds,
    });
    // Only multi-class experiments carry these, so older summaries stay byte-identical.
    if !e.objectives.is_empty() {
        out["objectives"] = e
            .objectives
            .iter()
            .map(|o| json!({"name": o.name, "priority": o.priority}))
            .collect();
    }
    if !e.classes.is_empty() {
        out["workloads"] = e.classes.iter().map(class_json).collect();
    }
    out
}

fn class_json(class: &WorkloadClass) -> serde_json::Value {
    let mut spec = serde_json::to_value(&class.spec).unwrap_or(serde_json::Value::Null);
    spec["name"] = json!(class.name);
    spec["objective"] = json!(class.objective);
    match &class.flows {
        FlowAssignment::RoundRobin { flows } => spec["flows"] = json!(flows),
        FlowAssignment::Weighted(weights) => spec["flow_weights"] = json!(weights),
    }
    spec
}

fn kv_events_json(spec: &KvEventsSpec) -> serde_json::Value {
    json!({
        "delay_s": spec.delay_s,
        "jitter_s": spec.jitter_s,
        "drop_ratio": spec.drop_ratio,
    })
}
