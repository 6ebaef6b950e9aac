//! `scripts/demo.sh`, the README's "Try it through Envoy": `--check` brings the whole stack up
//! in each body mode, gets a completion (served by the EPP's pick) and a streamed chat through
//! Envoy, and stops everything it started; bad arguments and busy ports fail with a message.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use epp_testkit::ports::{free_port, free_port_run};

use crate::processes::{ROOT, envoy_binary};

/// Startup (up to 60 s in the script) plus two requests.
const DEMO_TIMEOUT: Duration = Duration::from_secs(120);

/// The demo's ports, free now: Envoy's listener and admin, the EPP's three, the first of four
/// simulators.
struct DemoPorts {
    listen: u16,
    admin: u16,
    epp: u16,
    health: u16,
    metrics: u16,
    sim: u16,
}

impl DemoPorts {
    fn free() -> DemoPorts {
        DemoPorts {
            listen: free_port(),
            admin: free_port(),
            epp: free_port(),
            health: free_port(),
            metrics: free_port(),
            sim: free_port_run(4),
        }
    }

    fn all(&self) -> Vec<u16> {
        let mut ports = vec![self.listen, self.admin, self.epp, self.health, self.metrics];
        ports.extend(self.sim..self.sim + 4);
        ports
    }
}

/// Runs `scripts/demo.sh args` with the test's binaries and `ports`; SIGTERM (which the script
/// traps to stop its children) after [`DEMO_TIMEOUT`].
fn run_demo(args: &[&str], ports: &DemoPorts, dir: &Path) -> Output {
    let (stdout, stderr) = (dir.join("demo.out"), dir.join("demo.err"));
    let file = |path: &Path| std::fs::File::create(path).expect("create a demo log");
    let mut child = Command::new(format!("{ROOT}/scripts/demo.sh"))
        .args(args)
        .env("EPP_BIN", env!("CARGO_BIN_EXE_epp"))
        .env("EPP_SIM_BIN", env!("CARGO_BIN_EXE_epp-sim"))
        .env("ENVOY_BIN", envoy_binary())
        .env("DEMO_DIR", dir.join("stack"))
        .env("DEMO_PORT", ports.listen.to_string())
        .env("DEMO_ADMIN_PORT", ports.admin.to_string())
        .env("DEMO_EPP_PORT", ports.epp.to_string())
        .env("DEMO_HEALTH_PORT", ports.health.to_string())
        .env("DEMO_METRICS_PORT", ports.metrics.to_string())
        .env("DEMO_SIM_PORT", ports.sim.to_string())
        .stdin(Stdio::null())
        .stdout(file(&stdout))
        .stderr(file(&stderr))
        .spawn()
        .expect("run scripts/demo.sh");
    let deadline = Instant::now() + DEMO_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("demo status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            panic!(
                "scripts/demo.sh {args:?} did not finish within {DEMO_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: std::fs::read(&stdout).unwrap_or_default(),
        stderr: std::fs::read(&stderr).unwrap_or_default(),
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn check_mode(args: &[&str], mode: &str) {
    let dir = tempfile::Builder::new()
        .prefix("epp-demo-")
        .tempdir()
        .expect("tempdir");
    let ports = DemoPorts::free();
    let output = run_demo(args, &ports, dir.path());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "{args:?}: {}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("\"object\":\"text_completion\""),
        "{stdout}"
    );
    assert!(stdout.contains("data: [DONE]"), "{stdout}");
    assert!(
        stderr.contains(&format!("check passed ({mode})")),
        "{stderr}"
    );
    assert!(stderr.contains("the EPP's pick"), "{stderr}");
    // The EPP logged the pick it made for the completion.
    let epp_log = std::fs::read_to_string(dir.path().join("stack/epp.log")).unwrap_or_default();
    assert!(epp_log.contains("request scheduled"), "{epp_log}");
    // Everything the script started is gone.
    let open: Vec<u16> = ports.all().into_iter().filter(|p| listening(*p)).collect();
    assert!(open.is_empty(), "still listening after the demo: {open:?}");
}

#[test]
fn demo_check_passes_in_full_duplex_mode() {
    check_mode(&["--check"], "duplex");
}

#[test]
fn demo_check_passes_in_buffered_mode() {
    check_mode(&["buffered", "--check"], "buffered");
}

#[test]
fn demo_refuses_bad_arguments_and_busy_ports() {
    let dir = tempfile::Builder::new()
        .prefix("epp-demo-")
        .tempdir()
        .expect("tempdir");
    let ports = DemoPorts::free();
    let output = run_demo(&["streamed"], &ports, dir.path());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown argument 'streamed'"), "{stderr}");

    let busy = std::net::TcpListener::bind(("127.0.0.1", ports.metrics)).expect("bind");
    let output = run_demo(&["--check"], &ports, dir.path());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {} is in use", ports.metrics)),
        "{stderr}"
    );
    drop(busy);
}
