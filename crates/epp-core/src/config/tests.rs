//! Config loading: defaults, the upstream loader's cases, and every error's message.

use super::*;

const HEAD: &str =
    "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n";

fn load(body: &str) -> Result<EndpointPickerConfig, ConfigError> {
    EndpointPickerConfig::from_text(&format!("{HEAD}{body}"))
}

fn error(body: &str) -> String {
    load(body).expect_err("config must be rejected").to_string()
}

fn profile_summary(config: &EndpointPickerConfig) -> Vec<String> {
    config
        .scheduler
        .profiles()
        .iter()
        .map(|p| {
            let scorers: Vec<String> = p
                .scorers
                .iter()
                .map(|s| format!("{}:{}", s.scorer.name, s.weight))
                .collect();
            let filters: Vec<&str> = p.filters.iter().map(|f| &*f.name).collect();
            format!(
                "{} filters=[{}] scorers=[{}] picker={}",
                p.name,
                filters.join(","),
                scorers.join(","),
                p.picker.name
            )
        })
        .collect()
}

#[test]
fn default_config_matches_upstream() {
    let config = EndpointPickerConfig::from_text(DEFAULT_CONFIG).expect("default config loads");
    assert_eq!(
        profile_summary(&config),
        [
            "default filters=[] scorers=[queue-scorer:1,kv-cache-utilization-scorer:1,prefix-cache-scorer:1] picker=max-score-picker"
        ]
    );
    assert_eq!(
        &*config.scheduler.profile_handler().name,
        "single-profile-handler"
    );
    assert_eq!(
        config.endpoint_observers().len(),
        1,
        "the prefix index forgets departed endpoints"
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn every_shipped_example_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins-config");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("plugins-config") {
        let path = entry.expect("entry").path();
        let config = EndpointPickerConfig::from_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The conformance config is a filter alone on purpose (upstream's own file).
        let expected = usize::from(path.ends_with("conformance-plugins.yaml"));
        assert_eq!(
            config.warnings.len(),
            expected,
            "{}: {:?}",
            path.display(),
            config.warnings
        );
        count += 1;
    }
    assert!(count >= 4);
}

#[test]
fn no_profiles_creates_default_in_file_order() {
    let config = load("plugins:\n- type: prefix-cache-scorer\n- type: header-based-testing-filter\n- type: queue-scorer\n").expect("loads");
    assert_eq!(
        profile_summary(&config),
        [
            "default filters=[header-based-testing-filter] scorers=[prefix-cache-scorer:1,queue-scorer:1] picker=max-score-picker"
        ]
    );
    let names: Vec<&str> = config.plugins.iter().map(|p| &*p.name).collect();
    assert_eq!(
        names,
        [
            "prefix-cache-scorer",
            "header-based-testing-filter",
            "queue-scorer",
            "single-profile-handler",
            "max-score-picker"
        ]
    );
}

#[test]
fn explicit_names_weights_and_picker() {
    let config = load(
        "plugins:\n- name: q\n  type: queue-scorer\n- name: pick\n  type: random-picker\n  parameters: {maxNumOfEndpoints: 3}\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: q\n    weight: 5\n  - pluginRef: pick\n",
    )
    .expect("loads");
    assert_eq!(
        profile_summary(&config),
        ["p filters=[] scorers=[q:5] picker=pick"]
    );
}

#[test]
fn scorer_after_the_picker_gets_its_default_weight() {
    // v1.0.1 leaves this weight nil and crashes; here it is accepted.
    let config = load(
        "plugins:\n- type: max-score-picker\n- type: queue-scorer\nschedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: max-score-picker\n  - pluginRef: queue-scorer\n",
    )
    .expect("loads");
    assert_eq!(
        profile_summary(&config),
        ["default filters=[] scorers=[queue-scorer:1] picker=max-score-picker"]
    );
}

#[test]
fn fractional_weights_from_later_versions_work() {
    let config = load("plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: d\n  plugins:\n  - pluginRef: queue-scorer\n    weight: 0.5\n").expect("loads");
    assert_eq!(
        profile_summary(&config),
        ["d filters=[] scorers=[queue-scorer:0.5] picker=max-score-picker"]
    );
}

#[test]
fn json_config_works() {
    let text = r#"{"apiVersion":"inference.networking.x-k8s.io/v1alpha1","kind":"EndpointPickerConfig","plugins":[{"type":"queue-scorer"}]}"#;
    assert!(EndpointPickerConfig::from_text(text).is_ok());
}

#[test]
fn useless_settings_are_warnings() {
    let config = load(
        "plugins:\n- type: queue-scorer\n- type: random-picker\n- type: prefix-cache-scorer\n  parameters: {hashBlockSize: 64, blockSizeTokens: 16}\nschedulingProfiles:\n- name: d\n  plugins:\n  - pluginRef: queue-scorer\n    weight: 0\n  - pluginRef: random-picker\n    weight: 3\n",
    )
    .expect("accepted");
    let warnings = config.warnings.join("\n");
    for expected in [
        "plugins[2] ('prefix-cache-scorer'): unknown parameter 'blockSizeTokens' is ignored",
        "schedulingProfiles[0].plugins[0].weight: scorer 'queue-scorer' has weight 0 and does nothing",
        "schedulingProfiles[0].plugins[1].weight: 'random-picker' is not a scorer; its weight is ignored",
    ] {
        assert!(
            warnings.contains(expected),
            "missing {expected:?} in:\n{warnings}"
        );
    }
    let empty = load("plugins:\n- type: max-score-picker\n").expect("accepted");
    assert!(
        empty.warnings.iter().any(|w| w.contains("has no scorer")),
        "{:?}",
        empty.warnings
    );
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            "plugins:\n- type: qeue-scorer\n",
            "plugins[0].type: plugin type 'qeue-scorer' is not found in registry (known: queue-scorer,",
        ),
        (
            "plugins:\n- name: x\n",
            "plugins[0].type: plugin definition for 'x' is missing a type",
        ),
        (
            "plugins:\n- type: queue-scorer\n- type: queue-scorer\n",
            "plugins[1].name: plugin name 'queue-scorer' used more than once (also plugins[0])",
        ),
        (
            "plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: d\n  plugins:\n  - pluginRef: qs\n",
            "schedulingProfiles[0].plugins[0].pluginRef: qs is a reference to an undefined Plugin (defined: queue-scorer,",
        ),
        (
            "plugins:\n- type: queue-scorer\nschedulingProfiles:\n- plugins:\n  - pluginRef: queue-scorer\n",
            "schedulingProfiles[0].name: SchedulingProfile must have a name",
        ),
        (
            "plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: d\n  plugins:\n  - weight: 1\n",
            "schedulingProfiles[0].plugins[0].pluginRef: SchedulingProfile 'd' plugins must have a plugin reference",
        ),
        (
            "plugins:\n- type: queue-scorer\n- type: single-profile-handler\nschedulingProfiles:\n- name: d\n  plugins: [{pluginRef: queue-scorer}]\n- name: d\n  plugins: [{pluginRef: queue-scorer}]\n",
            "schedulingProfiles[1].name: the name 'd' has been specified for more than one SchedulingProfile",
        ),
        (
            "plugins:\n- type: max-score-picker\n- type: random-picker\nschedulingProfiles:\n- name: d\n  plugins: [{pluginRef: max-score-picker}, {pluginRef: random-picker}]\n",
            "schedulingProfiles[0].plugins[1].pluginRef: failed to set 'random-picker' as picker, already have a registered picker plugin 'max-score-picker'",
        ),
        (
            "plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: a\n  plugins: [{pluginRef: queue-scorer}]\n- name: b\n  plugins: [{pluginRef: queue-scorer}]\n",
            "plugins: no profile handler was specified",
        ),
        (
            "plugins:\n- name: h1\n  type: single-profile-handler\n- name: h2\n  type: single-profile-handler\n",
            "plugins: only one profile handler is allowed. Both h1 and h2 are profile handlers",
        ),
        (
            "plugins:\n- type: queue-scorer\n- type: single-profile-handler\nschedulingProfiles:\n- name: a\n  plugins: [{pluginRef: queue-scorer}]\n- name: b\n  plugins: [{pluginRef: queue-scorer}]\n",
            "schedulingProfiles: profile handler 'single-profile-handler' works with exactly one scheduling profile, but the config has 2",
        ),
        (
            "plugins:\n- type: single-profile-handler\nschedulingProfiles:\n- name: d\n  plugins: [{pluginRef: single-profile-handler}]\n",
            "schedulingProfiles[0].plugins[0].pluginRef: 'single-profile-handler' (single-profile-handler) is a profile handler, not a filter, scorer or picker",
        ),
        (
            "plugins:\n- type: prefix-cache-scorer\n  parameters: {hashBlockSize: big}\n",
            "plugins[0].parameters: failed to instantiate the plugin type 'prefix-cache-scorer' named 'prefix-cache-scorer': parameters: invalid type: string \"big\", expected i64",
        ),
        (
            "plugins:\n- type: queue-scorer\nfeatureGates: [x]\n",
            "unknown field `featureGates`",
        ),
        (
            "plugins:\n- type: queue-scorer\n  wieght: 2\n",
            "unknown field `wieght`",
        ),
        ("plugins: {}\n", "the configuration is invalid"),
    ];
    for (body, expected) in cases {
        let message = error(body);
        assert!(
            message.contains(expected),
            "for:\n{body}\nexpected {expected:?}\ngot: {message}"
        );
    }
}

#[test]
fn header_errors() {
    let cases = [
        ("", "the configuration is empty"),
        (
            "kind: EndpointPickerConfig\nplugins: []\n",
            "apiVersion: must be \"inference.networking.x-k8s.io/v1alpha1\", got \"\"",
        ),
        (
            "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: Pod\n",
            "kind: must be \"EndpointPickerConfig\", got \"Pod\"",
        ),
        ("apiVersion: [1\n", "the configuration is invalid"),
        (
            "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nkind: EndpointPickerConfig\n",
            "duplicate",
        ),
    ];
    for (text, expected) in cases {
        let message = EndpointPickerConfig::from_text(text)
            .expect_err(text)
            .to_string();
        assert!(
            message.contains(expected),
            "for {text:?}: expected {expected:?}, got {message}"
        );
    }
}

#[test]
fn missing_file_names_the_path() {
    let message = EndpointPickerConfig::from_file(std::path::Path::new("/no/such/config.yaml"))
        .expect_err("missing")
        .to_string();
    assert!(
        message.starts_with("cannot read config file /no/such/config.yaml"),
        "{message}"
    );
}

#[test]
fn saturation_detector_section() {
    let config = load("plugins:\n- type: queue-scorer\nsaturationDetector:\n  queueDepthThreshold: 8\n  metricsStalenessThreshold: 1s\n").expect("loads");
    let applied = config
        .saturation
        .apply(crate::director::SaturationThresholds::default());
    assert_eq!(applied.queue_depth, 8);
    assert_eq!(
        applied.kv_cache_util, 0.8,
        "unset fields keep the env/flag value"
    );
    assert_eq!(applied.metrics_staleness, std::time::Duration::from_secs(1));
    let cases = [
        (
            "saturationDetector:\n  kvCacheUtilThreshold: 1.5\n",
            "saturationDetector.kvCacheUtilThreshold: must be between 0 and 1 (exclusive), got 1.5",
        ),
        (
            "saturationDetector:\n  queueDepthThreshold: 0\n",
            "saturationDetector.queueDepthThreshold: must be at least 1",
        ),
        (
            "saturationDetector:\n  metricsStalenessThreshold: soon\n",
            "saturationDetector.metricsStalenessThreshold:",
        ),
        (
            "saturationDetector:\n  queueDepth: 3\n",
            "unknown field `queueDepth`",
        ),
    ];
    for (body, expected) in cases {
        let message = error(&format!("plugins:\n- type: queue-scorer\n{body}"));
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn flow_control_section() {
    use crate::config::{DetectorSpec, FlowControlSettings};
    use crate::flowcontrol::{ConcurrencyDetector, Limits, Ordering, QueueConfig};

    let off = load("plugins:\n- type: queue-scorer\n").expect("loads");
    assert_eq!(off.flow_control, None);
    assert_eq!(off.detector, DetectorSpec::Utilization);
    let disabled =
        load("plugins:\n- type: queue-scorer\nflowControl:\n  enabled: false\n").expect("loads");
    assert_eq!(disabled.flow_control, None);

    let on = load("plugins:\n- type: queue-scorer\nflowControl: {}\n").expect("loads");
    assert_eq!(
        on.flow_control,
        Some(FlowControlSettings {
            queue: QueueConfig::default(),
            deadline_header: "x-gateway-inference-deadline-ms".into(),
            trust_fairness_header: false,
        })
    );

    let full = load(concat!(
        "plugins:\n- type: queue-scorer\n",
        "saturationDetector:\n  type: concurrency\n  maxConcurrency: 8\n",
        "flowControl:\n  maxRequests: 500\n  maxBytes: 1000000\n  bandMaxRequests: 200\n",
        "  requestTTL: 5s\n  ordering: edf\n  deadlineHeader: X-Deadline\n",
        "  trustFairnessHeader: true\n",
    ))
    .expect("loads");
    assert_eq!(
        full.detector,
        DetectorSpec::Concurrency(ConcurrencyDetector {
            max_requests: 8,
            max_tokens: 1_000_000
        })
    );
    assert_eq!(
        full.flow_control,
        Some(FlowControlSettings {
            queue: QueueConfig {
                total: Limits {
                    requests: 500,
                    bytes: 1_000_000
                },
                per_band: Limits {
                    requests: 200,
                    bytes: 1_000_000
                },
                ttl: std::time::Duration::from_secs(5),
                ordering: Ordering::Edf,
            },
            deadline_header: "x-deadline".into(),
            trust_fairness_header: true,
        })
    );

    let cases = [
        (
            "flowControl:\n  maxRequests: 0\n",
            "flowControl.maxRequests: must be at least 1",
        ),
        (
            "flowControl:\n  requestTTL: 0s\n",
            "flowControl.requestTTL: must be greater than 0",
        ),
        (
            "flowControl:\n  requestTTL: later\n",
            "flowControl.requestTTL:",
        ),
        (
            "flowControl:\n  ordering: lifo\n",
            "flowControl.ordering: must be \"fcfs\" or \"edf\", got \"lifo\"",
        ),
        (
            "flowControl:\n  deadlineHeader: \"a b\"\n",
            "flowControl.deadlineHeader:",
        ),
        (
            "flowControl:\n  queueSize: 3\n",
            "unknown field `queueSize`",
        ),
        (
            "saturationDetector:\n  type: magic\n",
            "saturationDetector.type: must be \"utilization\" or \"concurrency\"",
        ),
        (
            "saturationDetector:\n  maxConcurrency: 5\n",
            "saturationDetector.type: maxConcurrency and maxTokensInFlight need type: concurrency",
        ),
        (
            "saturationDetector:\n  type: concurrency\n  maxTokensInFlight: 0\n",
            "saturationDetector.maxTokensInFlight: must be at least 1",
        ),
    ];
    for (body, expected) in cases {
        let message = error(&format!("plugins:\n- type: queue-scorer\n{body}"));
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn strictness_errors_name_the_field() {
    let profile = |weights: &str| {
        format!(
            "plugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\nschedulingProfiles:\n- name: d\n  plugins:\n{weights}"
        )
    };
    let cases = [
        // A quoted weight is a string, not a number, in YAML and in JSON.
        (
            profile("  - pluginRef: queue-scorer\n    weight: \"2\"\n"),
            "expected a number for `weight`",
        ),
        (
            profile("  - pluginRef: queue-scorer\n    weight: '2'\n"),
            "expected a number for `weight`",
        ),
        (
            profile("  - pluginRef: queue-scorer\n    weight: true\n"),
            "expected a number for `weight`",
        ),
        // Each weight is finite, their sum is not.
        (
            profile("  - pluginRef: queue-scorer\n    weight: 1e308\n  - pluginRef: kv-cache-utilization-scorer\n    weight: 1e308\n"),
            "schedulingProfiles[0].plugins[1].weight: the scorer weights of profile 'd' add up to more than 1.7976931348623157e308",
        ),
        (
            profile("  - pluginRef: queue-scorer\n    weight: -1e308\n  - pluginRef: kv-cache-utilization-scorer\n    weight: 1e308\n"),
            "schedulingProfiles[0].plugins[1].weight: the scorer weights of profile 'd' add up to more than",
        ),
        // A configured plugin named like a plugin the defaults add.
        (
            "plugins:\n- name: max-score-picker\n  type: queue-scorer\n".to_string(),
            "plugins[0].name: plugin name 'max-score-picker' (type queue-scorer) is also the name of the max-score-picker plugin added because no picker is configured; rename it",
        ),
        (
            "plugins:\n- type: max-score-picker\n- name: single-profile-handler\n  type: queue-scorer\n".to_string(),
            "plugins[1].name: plugin name 'single-profile-handler' (type queue-scorer) is also the name of the single-profile-handler plugin added because there is one profile and no profile handler; rename it",
        ),
        // An unnamed plugin is named after its type, which another plugin's name took.
        (
            "plugins:\n- name: queue-scorer\n  type: kv-cache-utilization-scorer\n- type: queue-scorer\n".to_string(),
            "plugins[1].name: plugin name 'queue-scorer' used more than once (also plugins[0])",
        ),
    ];
    for (body, expected) in cases {
        let message = error(&body);
        assert!(
            message.contains(expected),
            "for:\n{body}\nexpected {expected:?}\ngot: {message}"
        );
    }
}

#[test]
fn unquoted_weights_of_every_number_form_load() {
    for (weight, expected) in [("2", 2.0), ("-1", -1.0), ("0.25", 0.25), ("1e3", 1000.0)] {
        let config = load(&format!(
            "plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: d\n  plugins:\n  - pluginRef: queue-scorer\n    weight: {weight}\n"
        ))
        .unwrap_or_else(|e| panic!("weight {weight}: {e}"));
        assert_eq!(config.scheduler.profiles()[0].scorers[0].weight, expected);
    }
    let json = r#"{"apiVersion":"inference.networking.x-k8s.io/v1alpha1","kind":"EndpointPickerConfig","plugins":[{"type":"queue-scorer"}],"schedulingProfiles":[{"name":"d","plugins":[{"pluginRef":"queue-scorer","weight":3}]}]}"#;
    let config = EndpointPickerConfig::from_text(json).expect("JSON number weight");
    assert_eq!(config.scheduler.profiles()[0].scorers[0].weight, 3.0);
    let quoted = json.replace(r#""weight":3"#, r#""weight":"3""#);
    let message = EndpointPickerConfig::from_text(&quoted)
        .expect_err("a JSON string weight")
        .to_string();
    assert!(
        message.contains("expected a number for `weight`"),
        "{message}"
    );
}
