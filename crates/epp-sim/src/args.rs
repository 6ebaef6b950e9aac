//! Command-line flags of `epp-sim`, as one table that the binary and `epp` both reuse.
//!
//! Syntax as [`epp_flags::tool`]; `--lora-modules` appends rather than replaces.
//! `-h`/`--help` asks for [`usage`].

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::config::{KvUsageMetric, OutputLength, SimConfig};
use crate::fake::FakeMetrics;
use crate::kv_events::HashForm;
use epp_flags::duration::{format_go_duration, parse_go_duration};
pub use epp_flags::tool::ArgsError;
use epp_flags::tool::{parse_into, parse_value, set_parsed, show_list, usage_lines};
use epp_flags::{EVERY_COMMAND, Flag, SetError};

/// Flags parsed from a command line: one server's config plus where to listen.
#[derive(Clone, Debug, PartialEq)]
pub struct SimArgs {
    /// The config every server gets (each has its own state).
    pub config: SimConfig,
    /// Listening address (`--host`). Default 127.0.0.1.
    pub host: IpAddr,
    /// Port of the first server (`--base-port`, alias `--port`); the others follow. 0 picks
    /// free ports. Default 8000.
    pub base_port: u16,
    /// Number of servers (`--servers`, ≥ 1). Default 1.
    pub servers: usize,
}

impl Default for SimArgs {
    fn default() -> Self {
        Self {
            config: SimConfig::default(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 8000,
            servers: 1,
        }
    }
}

/// `epp-sim` has no subcommands.
const ALL: u8 = EVERY_COMMAND;

/// A row of this tool's table.
type Row = Flag<SimArgs>;

#[rustfmt::skip]
const FLAGS: &[Row] = &[
    Row::new("model", ALL, "base model name served",
        |a, v| { a.config.model = v.to_owned(); Ok(()) },
        |a| a.config.model.clone()),
    Row::new("lora-modules", ALL, "LoRA adapters: a,b | a=path,b=path | JSON {\"name\":..} or [..]; repeatable",
        |a, v| { a.config.lora_modules.extend(parse_loras(v)?); Ok(()) },
        |a| show_list(&a.config.lora_modules)),
    Row::new("max-loras", ALL, "adapters active at once",
        |a, v| set_parsed(&mut a.config.max_loras, v),
        |a| a.config.max_loras.to_string()),
    Row::new("max-num-seqs", ALL, "running sequences at most",
        |a, v| set_parsed(&mut a.config.max_num_seqs, v),
        |a| a.config.max_num_seqs.to_string()),
    Row::new("max-num-batched-tokens", ALL, "token budget of one step",
        |a, v| set_parsed(&mut a.config.max_num_batched_tokens, v),
        |a| a.config.max_num_batched_tokens.to_string()),
    Row::new("block-size", ALL, "tokens per KV block",
        |a, v| set_parsed(&mut a.config.block_size, v),
        |a| a.config.block_size.to_string()),
    Row::new("num-gpu-blocks", ALL, "KV blocks",
        |a, v| set_parsed(&mut a.config.num_gpu_blocks, v),
        |a| a.config.num_gpu_blocks.to_string()),
    Row::new("max-model-len", ALL, "longest prompt+output in tokens; unset: min(32768, KV capacity)",
        |a, v| { a.config.max_model_len = Some(parse_value(v)?); Ok(()) },
        |a| a.config.effective_max_model_len().to_string()),
    Row::new("default-max-tokens", ALL, "output tokens when a request gives no max_tokens",
        |a, v| set_parsed(&mut a.config.default_max_tokens, v),
        |a| a.config.default_max_tokens.to_string()),
    Row::new("max-output-tokens", ALL, "cap on a request's max_tokens",
        |a, v| set_parsed(&mut a.config.max_output_tokens, v),
        |a| a.config.max_output_tokens.to_string()),
    Row::new("output-length", ALL, "max-tokens (exactly max_tokens) | random (1..=max_tokens, seeded)",
        |a, v| { a.config.output_length = parse_output_length(v)?; Ok(()) },
        |a| a.config.output_length.to_string()),
    Row::new("embedding-dim", ALL, "length of /v1/embeddings vectors (a request's dimensions may ask fewer)",
        |a, v| set_parsed(&mut a.config.embedding_dim, v),
        |a| a.config.embedding_dim.to_string()),
    Row::new("seed", ALL, "seed of everything random",
        |a, v| set_parsed(&mut a.config.seed, v),
        |a| a.config.seed.to_string()),
    Row::new("step-base-ms", ALL, "fixed cost of a step, ms",
        |a, v| set_ms(&mut a.config.step_time.base, v),
        |a| show_ms(a.config.step_time.base)),
    Row::new("prefill-ms-per-token", ALL, "cost of each prefill token, ms",
        |a, v| set_ms(&mut a.config.step_time.per_prefill_token, v),
        |a| show_ms(a.config.step_time.per_prefill_token)),
    Row::new("decode-ms-per-seq", ALL, "cost of each decoding sequence, ms",
        |a, v| set_ms(&mut a.config.step_time.per_decode_seq, v),
        |a| show_ms(a.config.step_time.per_decode_seq)),
    Row::new("decode-ms-per-context-token", ALL, "cost of each context token of a decoding sequence, ms",
        |a, v| set_ms(&mut a.config.step_time.per_context_token, v),
        |a| show_ms(a.config.step_time.per_context_token)),
    Row::new("time-scale", ALL, "multiplier on all modelled durations (0.1 = 10x faster)",
        |a, v| { a.config.time_scale = parse_value(v)?; Ok(()) },
        |a| a.config.time_scale.to_string()),
    Row::new("gpu-cache-usage-metric", ALL, "also expose vllm:gpu_cache_usage_perc (true|false)",
        |a, v| { a.config.kv_usage_metric = parse_kv_metric(v)?; Ok(()) },
        |a| (a.config.kv_usage_metric == KvUsageMetric::BothNames).to_string()),
    Row::new("fake-metrics", ALL, "JSON override of /metrics, as llm-d-inference-sim",
        |a, v| { a.config.fake_metrics = Some(FakeMetrics::from_json(v)?); Ok(()) },
        |_| "none".to_owned()),
    Row::new("kv-events-port", ALL, "ZMQ PUB port of KV-cache events for server 0, server i on port+i (0 = off)",
        |a, v| { a.config.kv_events.port = nonzero_port(v)?; Ok(()) },
        |a| a.config.kv_events.port.unwrap_or(0).to_string()),
    Row::new("kv-events-replay-port", ALL, "ZMQ ROUTER replay port for server 0, server i on port+i (0 = off)",
        |a, v| { a.config.kv_events.replay_port = nonzero_port(v)?; Ok(()) },
        |a| a.config.kv_events.replay_port.unwrap_or(0).to_string()),
    Row::new("kv-events-topic", ALL, "topic frame of every KV-event message (vLLM's default: empty)",
        |a, v| { a.config.kv_events.topic = v.to_owned(); Ok(()) },
        |a| format!("{:?}", a.config.kv_events.topic)),
    Row::new("kv-events-hash-bytes", ALL, "send block hashes as 32 bytes (the 64-bit hash, big-endian, zero-padded in front) instead of integers",
        |a, v| { a.config.kv_events.hash_form = parse_hash_form(v)?; Ok(()) },
        |a| (a.config.kv_events.hash_form == HashForm::Bytes32).to_string()).as_switch(),
    Row::new("kv-events-buffer-steps", ALL, "KV-event batches kept for replay per server",
        |a, v| set_parsed(&mut a.config.kv_events.buffer_steps, v),
        |a| a.config.kv_events.buffer_steps.to_string()),
    Row::new("kv-events-drop-ratio", ALL, "fault: fraction of KV-event batches never sent, in [0,1] (seq consumed; still replayable)",
        |a, v| set_parsed(&mut a.config.kv_events.drop_ratio, v),
        |a| a.config.kv_events.drop_ratio.to_string()),
    Row::new("kv-events-delay", ALL, "fault: send every KV-event batch this much later, order kept (Go duration)",
        |a, v| { a.config.kv_events.delay = parse_go_duration(v).map_err(|e| e.to_string())?; Ok(()) },
        |a| format_go_duration(a.config.kv_events.delay)),
    Row::new("kv-events-reorder-ratio", ALL, "fault: fraction of KV-event batches swapped with the next one, in [0,1]",
        |a, v| set_parsed(&mut a.config.kv_events.reorder_ratio, v),
        |a| a.config.kv_events.reorder_ratio.to_string()),
    Row::new("servers", ALL, "number of independent servers",
        |a, v| set_parsed(&mut a.servers, v),
        |a| a.servers.to_string()),
    Row::new("base-port", ALL, "port of the first server (0 = any free port)",
        |a, v| set_parsed(&mut a.base_port, v),
        |a| a.base_port.to_string()),
    Row::new("port", ALL, "alias of --base-port",
        |a, v| set_parsed(&mut a.base_port, v),
        |a| a.base_port.to_string()),
    Row::new("host", ALL, "listening address",
        |a, v| set_parsed(&mut a.host, v),
        |a| a.host.to_string()),
];

impl SimArgs {
    /// Parses a command line (without the program name) and validates the result.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, ArgsError> {
        let mut parsed = Self::default();
        parse_into(
            args.iter().map(AsRef::as_ref),
            FLAGS,
            ALL,
            None,
            &mut parsed,
        )?;
        parsed.validate()?;
        Ok(parsed)
    }

    fn validate(&self) -> Result<(), ArgsError> {
        if self.servers == 0 {
            return Err(ArgsError::Invalid(
                "--servers must be at least 1".to_owned(),
            ));
        }
        let last = usize::from(self.base_port) + self.servers - 1;
        if self.base_port != 0 && last > usize::from(u16::MAX) {
            return Err(ArgsError::Invalid(format!(
                "--base-port {} + --servers {} runs past port 65535",
                self.base_port, self.servers
            )));
        }
        self.validate_kv_ports()?;
        self.config.validate().map_err(ArgsError::Invalid)
    }

    /// The last server's event ports must exist too.
    fn validate_kv_ports(&self) -> Result<(), ArgsError> {
        let kv = &self.config.kv_events;
        let ports = [
            ("kv-events-port", kv.port),
            ("kv-events-replay-port", kv.replay_port),
        ];
        for (flag, port) in ports {
            let Some(port) = port else { continue };
            if usize::from(port) + self.servers - 1 > usize::from(u16::MAX) {
                return Err(ArgsError::Invalid(format!(
                    "--{flag} {port} + --servers {} runs past port 65535",
                    self.servers
                )));
            }
        }
        Ok(())
    }
}

/// The usage text: one line per flag with its default.
pub fn usage() -> String {
    let mut text = String::from("usage: epp-sim [--flag value | --flag=value]...\n\nflags:\n");
    text.push_str(&usage_lines(FLAGS, ALL, &SimArgs::default()));
    text
}

fn set_ms(slot: &mut Duration, value: &str) -> Result<(), SetError> {
    let ms: f64 = parse_value(value)?;
    *slot = Duration::try_from_secs_f64(ms / 1000.0).map_err(|e| e.to_string())?;
    Ok(())
}

fn show_ms(duration: Duration) -> String {
    // Via nanoseconds, so 35 µs shows as 0.035 rather than 0.034999….
    format!("{}", duration.as_nanos() as f64 / 1e6)
}

/// A port where 0 means off.
fn nonzero_port(value: &str) -> Result<Option<u16>, String> {
    let port: u16 = parse_value(value)?;
    Ok((port != 0).then_some(port))
}

fn parse_hash_form(value: &str) -> Result<HashForm, String> {
    match parse_value::<bool>(value)? {
        true => Ok(HashForm::Bytes32),
        false => Ok(HashForm::Int),
    }
}

fn parse_output_length(value: &str) -> Result<OutputLength, String> {
    OutputLength::lookup(value).ok_or_else(|| "expected max-tokens or random".to_owned())
}

fn parse_kv_metric(value: &str) -> Result<KvUsageMetric, String> {
    match parse_value::<bool>(value)? {
        true => Ok(KvUsageMetric::BothNames),
        false => Ok(KvUsageMetric::KvCacheOnly),
    }
}

/// Adapter names from `a,b`, vLLM's `a=path,b=path`, or llm-d-inference-sim's JSON
/// `{"name":"a"}` / `[{"name":"a"},…]`.
pub(crate) fn parse_loras(value: &str) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Module {
        name: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Modules {
        One(Module),
        Many(Vec<Module>),
    }
    let value = value.trim();
    if value.starts_with('{') || value.starts_with('[') {
        let modules: Modules = serde_json::from_str(value).map_err(|e| e.to_string())?;
        return Ok(match modules {
            Modules::One(m) => vec![m.name],
            Modules::Many(ms) => ms.into_iter().map(|m| m.name).collect(),
        });
    }
    let names = value
        .split(',')
        .map(|item| item.split('=').next().unwrap_or(item).trim());
    Ok(names.filter(|n| !n.is_empty()).map(str::to_owned).collect())
}
