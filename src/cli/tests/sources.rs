//! Endpoint source selection and the exclusive configuration flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cli::EndpointSource;

use super::{err, ok};

#[test]
fn endpoint_source_rules() {
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    let o = ok(&["--endpoints=10.0.0.1:8000, 10.0.0.1:8001,[fd00::1]:8000"]);
    let want = vec![
        addr("10.0.0.1:8000"),
        addr("10.0.0.1:8001"),
        addr("[fd00::1]:8000"),
    ];
    assert_eq!(o.endpoint_source, EndpointSource::Static(want.clone()));
    assert_eq!(o.endpoints, want);
    assert!(o.flag_values().contains(&(
        "endpoints".into(),
        "10.0.0.1:8000,10.0.0.1:8001,[fd00::1]:8000".into()
    )));
    let o = ok(&["--endpoints-file", "/etc/epp/endpoints.yaml"]);
    let want = EndpointSource::File(PathBuf::from("/etc/epp/endpoints.yaml"));
    assert_eq!(o.endpoint_source, want);
    assert_eq!(
        ok(&["--validate-config"]).endpoint_source,
        EndpointSource::None
    );
    let o = ok(&["--validate-config", "--pool-name=p"]);
    assert!(matches!(
        o.endpoint_source,
        EndpointSource::Kubernetes { .. }
    ));

    assert!(matches!(
        ok(&["--simulate-endpoints", "3"]).endpoint_source,
        EndpointSource::Simulated(3)
    ));
    let exactly_one = "flags --pool-name, --endpoints, --endpoints-file and --simulate-endpoints select the endpoint source; set exactly one";
    let missing = "required \"poolName\" flag not set (or use --endpoints, --endpoints-file or --simulate-endpoints for standalone mode)";
    let cases = [
        (&[][..], missing),
        (&["--pool-name="], missing),
        (&["--pool-name=p", "--endpoints=10.0.0.1:80"], exactly_one),
        (&["--pool-name=p", "--endpoints-file=f"], exactly_one),
        (
            &["--endpoints=10.0.0.1:80", "--endpoints-file=f"],
            exactly_one,
        ),
        (
            &[
                "--validate-config",
                "--endpoints=10.0.0.1:80",
                "--endpoints-file=f",
            ],
            exactly_one,
        ),
        (
            &["--simulate-endpoints=2", "--endpoints=10.0.0.1:80"],
            exactly_one,
        ),
        (
            &["--simulate-endpoints=300"],
            "invalid value \"300\" for flag -simulate-endpoints: must be between 0 and 256",
        ),
        (
            &["--endpoints=10.0.0.1:80,10.0.0.2:80", "--max-endpoints=1"],
            "flag --endpoints lists 2 endpoints, more than --max-endpoints=1",
        ),
    ];
    for (list, want) in cases {
        let e = err(list);
        assert_eq!(
            (e.exit_code(), e.to_string().as_str()),
            (1, want),
            "{list:?}"
        );
    }
}

#[test]
fn config_file_and_text_are_exclusive() {
    let e = err(&["--pool-name=p", "--config-file=a.yaml", "--config-text=x"]);
    assert_eq!(e.exit_code(), 1);
    assert_eq!(
        e.to_string(),
        "both the \"configText\" and \"configFile\" flags can not be set at the same time"
    );
    let o = ok(&["--pool-name=p", "--config-file=a.yaml", "--config-text="]);
    assert_eq!((o.config_file.is_some(), o.config_text), (true, None));
}

#[test]
fn engine_presets_and_explicit_metric_flags() {
    use epp_datalayer::presets::{Engine, MetricMapping};
    let name = |spec: &Option<epp_datalayer::metric_spec::MetricSpec>| {
        spec.as_ref().map(|s| s.to_string())
    };

    let vllm = ok(&["--endpoints=10.0.0.1:80"]);
    assert_eq!(vllm.metric_mapping, MetricMapping::preset(Engine::Vllm));
    assert_eq!(vllm.model_server_metrics_path, "/metrics");

    let sglang = ok(&["--endpoints=10.0.0.1:80", "--engine-type", "sglang"]);
    assert_eq!(
        name(&sglang.metric_mapping.queued).as_deref(),
        Some("sglang:num_queue_reqs")
    );
    assert_eq!(sglang.metric_mapping.lora, None);

    // An explicit flag beats the preset; an empty one disables the metric.
    let custom = ok(&[
        "--endpoints=10.0.0.1:80",
        "--engine-type=sglang",
        "--total-queued-requests-metric=my_queue{pool=a}",
        "--kv-cache-usage-percentage-metric=",
    ]);
    assert_eq!(
        name(&custom.metric_mapping.queued).as_deref(),
        Some("my_queue{pool=a}")
    );
    assert_eq!(custom.metric_mapping.kv_usage, None);
    assert_eq!(
        name(&custom.metric_mapping.running).as_deref(),
        Some("sglang:num_running_reqs")
    );

    let trtllm = ok(&["--endpoints=10.0.0.1:80", "--engine-type=trtllm-serve"]);
    assert_eq!(trtllm.model_server_metrics_path, "/prometheus/metrics");
    let trtllm = ok(&[
        "--endpoints=10.0.0.1:80",
        "--engine-type=trtllm-serve",
        "--model-server-metrics-path=/m",
    ]);
    assert_eq!(trtllm.model_server_metrics_path, "/m");

    let bad = err(&["--endpoints=10.0.0.1:80", "--engine-type=tgi"]);
    assert_eq!(bad.exit_code(), 1);
    assert!(bad.to_string().contains("-engine-type"), "{bad}");
}
