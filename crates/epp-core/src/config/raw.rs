//! The `EndpointPickerConfig` file as written: serde types and strict decoding.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

pub const API_VERSION: &str = "inference.networking.x-k8s.io/v1alpha1";
pub const KIND: &str = "EndpointPickerConfig";

/// `inference.networking.x-k8s.io/v1alpha1` `EndpointPickerConfig`, decoded strictly:
/// unknown and duplicate fields are errors, as with v1.0.1's strict k8s decoder.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub plugins: Vec<RawPlugin>,
    #[serde(default)]
    pub scheduling_profiles: Vec<RawProfile>,
    /// Shedding thresholds (a section of later upstream versions; overrides the `SD_*`
    /// environment variables of v1.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturation_detector: Option<RawSaturationDetector>,
    /// Requests wait in the EPP while the pool is saturated (ours; off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_control: Option<RawFlowControl>,
}

/// `saturationDetector`: when the pool counts as saturated.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSaturationDetector {
    /// Waiting requests above which an endpoint is saturated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth_threshold: Option<u64>,
    /// KV-cache usage fraction (0 to 1, exclusive) above which an endpoint is saturated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_util_threshold: Option<f64>,
    /// Metrics older than this (Go duration, e.g. `200ms`) do not show headroom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_staleness_threshold: Option<String>,
    /// Which detector holds flow-controlled requests: `utilization` (the thresholds above,
    /// default) or `concurrency` (this EPP's in-flight requests and tokens per endpoint).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// `concurrency`: in-flight requests at which an endpoint is full (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// `concurrency`: in-flight prompt tokens at which an endpoint is full (default 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_in_flight: Option<u64>,
}

/// `flowControl`: the waiting room for requests while the pool is saturated.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFlowControl {
    /// Default true: writing the section turns flow control on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Requests waiting at most, all bands together (default 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<usize>,
    /// Request-body bytes waiting at most, all bands together (default 1 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Requests waiting at most in one priority band (default: `maxRequests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_max_requests: Option<usize>,
    /// Bytes waiting at most in one priority band (default: `maxBytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_max_bytes: Option<u64>,
    /// How long a request may wait (Go duration; default 30s).
    #[serde(
        default,
        rename = "requestTTL",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_ttl: Option<String>,
    /// Order inside a flow: `fcfs` (default) or `edf` (by the deadline header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<String>,
    /// With `edf`: the request header holding the deadline, in milliseconds from arrival
    /// (default `x-gateway-inference-deadline-ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_header: Option<String>,
    /// Whether `x-gateway-inference-fairness-id` names the flow (only when the gateway sets
    /// it; default false: one flow per objective).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_fairness_header: Option<bool>,
}

/// One entry of `plugins`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPlugin {
    /// Defaults to `type`.
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub type_name: String,
    /// Passed to the plugin's factory, which decodes it leniently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

/// One entry of `schedulingProfiles`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub plugins: Vec<RawProfilePlugin>,
}

/// A reference from a profile to a plugin, with a weight for scorers.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawProfilePlugin {
    #[serde(default)]
    pub plugin_ref: String,
    /// Scorers only; default 1. v1.0.1 takes an integer, later versions a float: both work.
    /// A quoted number is an error, as in v1.0.1 (`int` field).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_weight",
        deserialize_with = "deserialize_weight"
    )]
    pub weight: Option<f64>,
}

/// Reads a YAML/JSON number only. serde-saphyr parses any scalar for an `f64`, so a plain
/// `Option<f64>` would take `weight: "2"` as 2.
fn deserialize_weight<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<f64>, D::Error> {
    deserializer.deserialize_any(WeightVisitor)
}

struct WeightVisitor;

impl<'de> serde::de::Visitor<'de> for WeightVisitor {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number for `weight` (without quotes)")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Writes whole weights as integers (`weight: 2`, as v1.0.1 configs are written).
fn serialize_weight<S: serde::Serializer>(
    weight: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match weight {
        Some(w) if w.fract() == 0.0 && w.abs() < 1e15 => serializer.serialize_i64(*w as i64),
        Some(w) => serializer.serialize_f64(*w),
        None => serializer.serialize_none(),
    }
}

/// Decodes YAML or JSON text (JSON is YAML) and checks `apiVersion` and `kind`.
pub fn decode(text: &str) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::Decode {
            message: "the configuration is empty".into(),
        });
    }
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| ConfigError::Decode {
        message: e.to_string(),
    })?;
    if raw.api_version != API_VERSION {
        return Err(ConfigError::Field {
            path: "apiVersion".into(),
            message: format!("must be \"{API_VERSION}\", got \"{}\"", raw.api_version),
        });
    }
    if raw.kind != KIND {
        return Err(ConfigError::Field {
            path: "kind".into(),
            message: format!("must be \"{KIND}\", got \"{}\"", raw.kind),
        });
    }
    Ok(raw)
}
