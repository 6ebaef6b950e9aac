//! Command-line flags of `epp-sim`, as one table that the binary and `epp` both reuse.
//!
//! Syntax: `--name value` or `--name=value`; a flag given twice keeps the last value, except
//! `--lora-modules`, which appends. `-h`/`--help` asks for [`usage`].

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::sim::config::{KvUsageMetric, OutputLength, SimConfig};
use crate::sim::fake::FakeMetrics;

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

/// Why a command line was not accepted. [`ArgsError::exit_code`] gives the process exit code.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgsError {
    /// `-h` or `--help`: print [`usage`] and exit 0.
    #[error("help requested")]
    Help,
    /// A flag not in the table (exit 2).
    #[error("unknown flag {0}")]
    UnknownFlag(String),
    /// A flag at the end of the line without its value (exit 2).
    #[error("flag --{0} needs a value")]
    MissingValue(String),
    /// An argument that is not a flag (exit 2).
    #[error("unexpected argument {0:?}")]
    Positional(String),
    /// A value that does not parse or breaks a limit (exit 1).
    #[error("invalid value {value:?} for --{flag}: {reason}")]
    BadValue {
        /// The flag name without dashes.
        flag: String,
        /// The value as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Values that parse but do not fit together (exit 1).
    #[error("{0}")]
    Invalid(String),
}

impl ArgsError {
    /// 0 for help, 2 for a malformed command line, 1 for a bad value.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Help => 0,
            Self::UnknownFlag(_) | Self::MissingValue(_) | Self::Positional(_) => 2,
            Self::BadValue { .. } | Self::Invalid(_) => 1,
        }
    }
}

type Setter = fn(&mut SimArgs, &str) -> Result<(), String>;
type Shower = fn(&SimArgs) -> String;

/// One row of the flag table.
struct Flag {
    name: &'static str,
    help: &'static str,
    set: Setter,
    show: Shower,
}

const fn flag(name: &'static str, help: &'static str, set: Setter, show: Shower) -> Flag {
    Flag {
        name,
        help,
        set,
        show,
    }
}

#[rustfmt::skip]
const FLAGS: &[Flag] = &[
    flag("model", "base model name served",
        |a, v| { a.config.model = v.to_owned(); Ok(()) },
        |a| a.config.model.clone()),
    flag("lora-modules", "LoRA adapters: a,b | a=path,b=path | JSON {\"name\":..} or [..]; repeatable",
        |a, v| { a.config.lora_modules.extend(parse_loras(v)?); Ok(()) },
        |a| show_list(&a.config.lora_modules)),
    flag("max-loras", "adapters active at once",
        |a, v| set_num(&mut a.config.max_loras, v),
        |a| a.config.max_loras.to_string()),
    flag("max-num-seqs", "running sequences at most",
        |a, v| set_num(&mut a.config.max_num_seqs, v),
        |a| a.config.max_num_seqs.to_string()),
    flag("max-num-batched-tokens", "token budget of one step",
        |a, v| set_num(&mut a.config.max_num_batched_tokens, v),
        |a| a.config.max_num_batched_tokens.to_string()),
    flag("block-size", "tokens per KV block",
        |a, v| set_num(&mut a.config.block_size, v),
        |a| a.config.block_size.to_string()),
    flag("num-gpu-blocks", "KV blocks",
        |a, v| set_num(&mut a.config.num_gpu_blocks, v),
        |a| a.config.num_gpu_blocks.to_string()),
    flag("max-model-len", "longest prompt+output in tokens; unset: min(32768, KV capacity)",
        |a, v| { a.config.max_model_len = Some(parse_num(v)?); Ok(()) },
        |a| a.config.effective_max_model_len().to_string()),
    flag("default-max-tokens", "output tokens when a request gives no max_tokens",
        |a, v| set_num(&mut a.config.default_max_tokens, v),
        |a| a.config.default_max_tokens.to_string()),
    flag("max-output-tokens", "cap on a request's max_tokens",
        |a, v| set_num(&mut a.config.max_output_tokens, v),
        |a| a.config.max_output_tokens.to_string()),
    flag("output-length", "max-tokens (exactly max_tokens) | random (1..=max_tokens, seeded)",
        |a, v| { a.config.output_length = parse_output_length(v)?; Ok(()) },
        |a| show_output_length(a.config.output_length)),
    flag("seed", "seed of everything random",
        |a, v| set_num(&mut a.config.seed, v),
        |a| a.config.seed.to_string()),
    flag("step-base-ms", "fixed cost of a step, ms",
        |a, v| set_ms(&mut a.config.step_time.base, v),
        |a| show_ms(a.config.step_time.base)),
    flag("prefill-ms-per-token", "cost of each prefill token, ms",
        |a, v| set_ms(&mut a.config.step_time.per_prefill_token, v),
        |a| show_ms(a.config.step_time.per_prefill_token)),
    flag("decode-ms-per-seq", "cost of each decoding sequence, ms",
        |a, v| set_ms(&mut a.config.step_time.per_decode_seq, v),
        |a| show_ms(a.config.step_time.per_decode_seq)),
    flag("decode-ms-per-context-token", "cost of each context token of a decoding sequence, ms",
        |a, v| set_ms(&mut a.config.step_time.per_context_token, v),
        |a| show_ms(a.config.step_time.per_context_token)),
    flag("time-scale", "multiplier on all modelled durations (0.1 = 10x faster)",
        |a, v| { a.config.time_scale = parse_num(v)?; Ok(()) },
        |a| a.config.time_scale.to_string()),
    flag("gpu-cache-usage-metric", "also expose vllm:gpu_cache_usage_perc (true|false)",
        |a, v| { a.config.kv_usage_metric = parse_kv_metric(v)?; Ok(()) },
        |a| (a.config.kv_usage_metric == KvUsageMetric::BothNames).to_string()),
    flag("fake-metrics", "JSON override of /metrics, as llm-d-inference-sim",
        |a, v| { a.config.fake_metrics = Some(FakeMetrics::from_json(v)?); Ok(()) },
        |_| "none".to_owned()),
    flag("servers", "number of independent servers",
        |a, v| set_num(&mut a.servers, v),
        |a| a.servers.to_string()),
    flag("base-port", "port of the first server (0 = any free port)",
        |a, v| set_num(&mut a.base_port, v),
        |a| a.base_port.to_string()),
    flag("port", "alias of --base-port",
        |a, v| set_num(&mut a.base_port, v),
        |a| a.base_port.to_string()),
    flag("host", "listening address",
        |a, v| set_num(&mut a.host, v),
        |a| a.host.to_string()),
];

impl SimArgs {
    /// Parses a command line (without the program name) and validates the result.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, ArgsError> {
        let mut parsed = Self::default();
        let mut rest = args.iter().map(AsRef::as_ref);
        while let Some(arg) = rest.next() {
            if arg == "-h" || arg == "--help" {
                return Err(ArgsError::Help);
            }
            let Some(body) = arg.strip_prefix("--") else {
                return Err(ArgsError::Positional(arg.to_owned()));
            };
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let flag = FLAGS
                .iter()
                .find(|f| f.name == name)
                .ok_or_else(|| ArgsError::UnknownFlag(arg.to_owned()))?;
            let value = inline
                .or_else(|| rest.next())
                .ok_or_else(|| ArgsError::MissingValue(name.to_owned()))?;
            (flag.set)(&mut parsed, value).map_err(|reason| ArgsError::BadValue {
                flag: name.to_owned(),
                value: value.to_owned(),
                reason,
            })?;
        }
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
        self.config.validate().map_err(ArgsError::Invalid)
    }
}

/// The usage text: one line per flag with its default.
pub fn usage() -> String {
    let defaults = SimArgs::default();
    let mut text = String::from("usage: epp-sim [--flag value | --flag=value]...\n\nflags:\n");
    for f in FLAGS {
        let default = (f.show)(&defaults);
        text.push_str(&format!(
            "  --{:<28} {} (default: {default})\n",
            f.name, f.help
        ));
    }
    text
}

fn parse_num<T: std::str::FromStr>(value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse().map_err(|e: T::Err| e.to_string())
}

fn set_num<T: std::str::FromStr>(slot: &mut T, value: &str) -> Result<(), String>
where
    T::Err: std::fmt::Display,
{
    *slot = parse_num(value)?;
    Ok(())
}

fn set_ms(slot: &mut Duration, value: &str) -> Result<(), String> {
    let ms: f64 = parse_num(value)?;
    *slot = Duration::try_from_secs_f64(ms / 1000.0).map_err(|e| e.to_string())?;
    Ok(())
}

fn show_ms(duration: Duration) -> String {
    // Via nanoseconds, so 35 µs shows as 0.035 rather than 0.034999….
    format!("{}", duration.as_nanos() as f64 / 1e6)
}

fn show_list(items: &[String]) -> String {
    match items.is_empty() {
        true => "none".to_owned(),
        false => items.join(","),
    }
}

fn parse_output_length(value: &str) -> Result<OutputLength, String> {
    match value {
        "max-tokens" => Ok(OutputLength::MaxTokens),
        "random" => Ok(OutputLength::Random),
        _ => Err("expected max-tokens or random".to_owned()),
    }
}

fn show_output_length(mode: OutputLength) -> String {
    match mode {
        OutputLength::MaxTokens => "max-tokens",
        OutputLength::Random => "random",
    }
    .to_owned()
}

fn parse_kv_metric(value: &str) -> Result<KvUsageMetric, String> {
    match parse_num::<bool>(value)? {
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
