//! The `epp` binary itself: exit codes, `--validate-config`, TLS serving, health, and a
//! graceful SIGTERM; and the `epp-bench` load tool (`bench_tool`).

epp_testkit::loopback_epp!();

mod bench_tool;
mod descriptors;
mod memory;
mod tracing_export;

use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use epp_extproc::BodyMode;
use epp_net::health::ServingStatus;
use epp_net::health::pb::HealthCheckRequest;
use epp_net::health::pb::health_client::HealthClient;
use epp_testkit::health::serving;
use epp_testkit::messages::*;
use epp_testkit::ports::EppPorts;
use epp_testkit::stream::{ExtProcClient, client};
use epp_testkit::tls_client::tls_channel;
use epp_testkit::{ExtProcStream, REPLY_TIMEOUT};

const EPP: &str = env!("CARGO_BIN_EXE_epp");

fn run(args: &[&str]) -> Output {
    Command::new(EPP).args(args).output().expect("run epp")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn exit_codes() {
    let cases: [(&[&str], i32, &str); 7] = [
        (
            &["--no-such-flag"],
            2,
            "flag provided but not defined: -no-such-flag",
        ),
        (&["-grpc-port"], 2, "flag needs an argument: -grpc-port"),
        (
            &["--endpoints", "127.0.0.1:8000", "--grpc-port=abc"],
            1,
            "invalid value \"abc\" for flag -grpc-port",
        ),
        (
            &["--endpoints", "127.0.0.1:8000", "--secure-serving", "false"],
            1,
            "boolean flags take their value as -secure-serving=false",
        ),
        (
            &["--endpoints", "127.0.0.1:8000", "--pool-name", "p"],
            1,
            "set exactly one",
        ),
        (
            &[
                "--pool-name",
                "p",
                "--kubeconfig",
                "/nonexistent/kubeconfig",
            ],
            1,
            "cannot reach the Kubernetes API",
        ),
        (
            &["--endpoints", "127.0.0.1:8000", "--config-text", "kind: x"],
            1,
            "apiVersion: must be",
        ),
    ];
    for (args, code, message) in cases {
        let output = run(args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let help = run(&["-h"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stderr(&help).contains("-pool-name string"));
}

#[test]
fn validate_config_prints_the_resolved_profiles() {
    let output = run(&[
        "--validate-config",
        "--config-file",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/plugins-config/default-plugins.yaml"
        ),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "profile 'default':",
        "scorer  queue-scorer (queue-scorer) weight 1",
        "picker  max-score-picker",
        "- name: single-profile-handler",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    let bad = run(&[
        "--validate-config",
        "--config-text",
        "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: nope\n",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("plugins[0].type: plugin type 'nope' is not found in registry"),
        "{}",
        stderr(&bad)
    );
    // One message per bad config, naming the field: a quoted weight is not a number.
    let quoted = run(&[
        "--validate-config",
        "--config-text",
        "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: d\n  plugins:\n  - pluginRef: queue-scorer\n    weight: \"2\"\n",
    ]);
    assert_eq!(quoted.status.code(), Some(1));
    let text = stderr(&quoted);
    assert_eq!(
        text.matches("invalid EndpointPickerConfig").count(),
        1,
        "{text}"
    );
    assert!(text.contains("expected a number for `weight`"), "{text}");
}

struct RunningBinary {
    child: Child,
    ext_proc: SocketAddr,
    health: SocketAddr,
    metrics: SocketAddr,
}

impl RunningBinary {
    fn start(extra: &[&str]) -> RunningBinary {
        RunningBinary::start_with_fd_limit(extra, None)
    }

    /// Starts the binary, under `ulimit -n fd_limit` when given.
    fn start_with_fd_limit(extra: &[&str], fd_limit: Option<u32>) -> RunningBinary {
        RunningBinary::spawn(extra, fd_limit, &[])
    }

    /// Starts the binary with `env` added to its environment.
    fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> RunningBinary {
        RunningBinary::spawn(extra, None, env)
    }

    fn spawn(extra: &[&str], fd_limit: Option<u32>, env: &[(&str, &str)]) -> RunningBinary {
        let ports = EppPorts::free();
        let mut args = vec![
            "--endpoints".to_string(),
            "127.0.0.1:18001,127.0.0.1:18002".to_string(),
        ];
        args.extend(ports.flags());
        args.push("--zap-encoder=json".to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut command = match fd_limit {
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(EPP);
                shell
            }
            None => Command::new(EPP),
        };
        let child = command
            .args(&args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn epp");
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        RunningBinary {
            child,
            ext_proc: loopback(ports.grpc),
            health: loopback(ports.health),
            metrics: loopback(ports.metrics),
        }
    }

    /// Waits until the health port answers SERVING.
    async fn wait_serving(&mut self) -> HealthClient<tonic::transport::Channel> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(client) = serving(self.health, "inference-extension").await {
                return client;
            }
            assert!(
                self.child.try_wait().expect("status").is_none(),
                "epp exited early"
            );
            assert!(Instant::now() < deadline, "epp did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status and the logs.
    async fn terminate(&mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().expect("status").is_none() {
            assert!(Instant::now() < deadline, "epp did not exit after SIGTERM");
            // Async: the test's client connections must keep running to see GOAWAY.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut logs = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut logs).expect("read logs");
        }
        (self.child.wait().expect("status").code(), logs)
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// One FULL_DUPLEX request over `client`; returns the destination.
async fn route_one(client: ExtProcClient) -> String {
    let mut stream = ExtProcStream::open(client).await;
    stream
        .send(with_modes(
            request_headers(&[("x-request-id", "bin-1")], false),
            BodyMode::FullDuplexStreamed,
            BodyMode::FullDuplexStreamed,
        ))
        .await;
    let replies = stream
        .exchange(request_body(&completion_body("m", "hello"), true), 2)
        .await;
    destination(&replies[0])
}

#[tokio::test]
async fn serves_tls_by_default_and_drains_on_sigterm() {
    let mut epp = RunningBinary::start(&["--health-checking"]);
    let mut health = epp.wait_serving().await;
    let (channel, seen) = tls_channel(epp.ext_proc).await;
    let destination = tokio::time::timeout(
        REPLY_TIMEOUT,
        route_one(ExternalProcessorClient::new(channel.clone())),
    )
    .await
    .expect("in time");
    assert!(destination.starts_with("127.0.0.1:1800"), "{destination}");
    assert!(
        seen.lock().expect("lock").is_some(),
        "a self-signed certificate was presented"
    );

    // --health-checking: the ext_proc port answers health checks too.
    let mut on_ext_proc = HealthClient::new(channel);
    let status = on_ext_proc
        .check(HealthCheckRequest {
            service: "envoy.service.ext_proc.v3.ExternalProcessor".into(),
        })
        .await
        .expect("health on the ext_proc port");
    assert_eq!(status.into_inner().status, ServingStatus::Serving as i32);
    let any = health
        .check(HealthCheckRequest {
            service: "anything".into(),
        })
        .await
        .expect("check");
    assert_eq!(
        any.into_inner().status,
        ServingStatus::Serving as i32,
        "v1.0.1: any name is SERVING once synced"
    );

    let (code, logs) = epp.terminate().await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        logs.contains("\"msg\":\"shutting down: draining in-flight streams\""),
        "{logs}"
    );
    assert!(logs.contains("\"msg\":\"Flags processed\""), "{logs}");
}

#[tokio::test]
async fn serves_plaintext_when_asked() {
    let mut epp = RunningBinary::start(&["--secure-serving=false"]);
    epp.wait_serving().await;
    let client = client(epp.ext_proc).await;
    let destination = tokio::time::timeout(REPLY_TIMEOUT, route_one(client.clone()))
        .await
        .expect("in time");
    assert!(destination.starts_with("127.0.0.1:1800"), "{destination}");
    // Standalone: /metrics is open on --metrics-port and counts the request just routed.
    epp_net::tls::install_crypto_provider();
    let page = reqwest::get(format!("http://{}/metrics", epp.metrics))
        .await
        .expect("scrape /metrics")
        .text()
        .await
        .expect("metrics page");
    assert!(page.contains("inference_extension_info{"), "{page}");
    assert!(
        page.contains(r#"inference_model_request_total{model_name="m",target_model_name="m"} 1"#),
        "{page}"
    );
    let (code, logs) = epp.terminate().await;
    assert_eq!(code, Some(0), "{logs}");
}

#[tokio::test]
async fn serves_the_certificate_from_cert_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["epp.test".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).expect("write crt");
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).expect("write key");
    let mut epp = RunningBinary::start(&["--cert-path", dir.path().to_str().expect("utf8 path")]);
    epp.wait_serving().await;
    let (channel, seen) = tls_channel(epp.ext_proc).await;
    tokio::time::timeout(
        REPLY_TIMEOUT,
        route_one(ExternalProcessorClient::new(channel)),
    )
    .await
    .expect("in time");
    assert_eq!(
        seen.lock()
            .expect("lock")
            .as_ref()
            .map(|c| c.as_ref().to_vec()),
        Some(cert.der().to_vec())
    );
}

#[tokio::test]
async fn sigterm_stops_readiness_and_lets_open_streams_finish() {
    let mut epp = RunningBinary::start(&["--secure-serving=false"]);
    let mut health = epp.wait_serving().await;
    let client = client(epp.ext_proc).await;
    // A request is routed; its response is still streaming when SIGTERM arrives.
    let mut stream = ExtProcStream::open(client).await;
    stream.start_full_duplex().await;
    stream
        .exchange(request_body(&completion_body("m", "p"), true), 2)
        .await;
    stream
        .exchange(
            response_headers(&[("content-type", "text/event-stream")], false),
            1,
        )
        .await;

    let pid = epp.child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    // Readiness drops at once...
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: "readiness".into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if status != Some(ServingStatus::Serving as i32) {
            break;
        }
        assert!(Instant::now() < deadline, "still SERVING after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...while the open stream keeps working until its response ends.
    let reply = stream
        .exchange(response_body(b"data: [DONE]\n\n", true), 1)
        .await
        .remove(0);
    assert_eq!(streamed(&reply), Some((b"data: [DONE]\n\n".to_vec(), true)));
    assert!(
        epp.child.try_wait().expect("status").is_none(),
        "exited before the stream ended"
    );
    stream.close_send();
    let (code, logs) = epp.terminate().await;
    assert_eq!(code, Some(0), "{logs}");
}
