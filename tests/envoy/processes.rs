//! The child processes: a real Envoy, the `epp` binary and `epp-sim`, each on loopback with
//! its own ports and log file, killed and reaped when its handle drops (also when a test
//! panics). Each `start` waits until the process is ready.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use epp_testkit::health::serving;
use epp_testkit::ports::{EppPorts, free_port};

use crate::client::Http;
use crate::harness::{POLL, STARTUP_TIMEOUT};

const EPP: &str = env!("CARGO_BIN_EXE_epp");
const EPP_SIM: &str = env!("CARGO_BIN_EXE_epp-sim");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

// === Envoy installation ===

/// The Envoy binary, installed once per test process by `.ci/install-envoy`. Panics with the
/// installer's message when that is impossible: the suite never skips.
pub fn envoy_binary() -> &'static Path {
    static ENVOY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match ENVOY.get_or_init(install_envoy) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

fn install_envoy() -> Result<PathBuf, String> {
    let output = Command::new(format!("{ROOT}/.ci/install-envoy"))
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run .ci/install-envoy: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "the Envoy end-to-end tests need Envoy, and .ci/install-envoy failed ({}):\n{stderr}",
            output.status
        ));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    match path.is_file() {
        true => Ok(path),
        false => Err(format!(
            ".ci/install-envoy printed {path:?}, which is not a file:\n{stderr}"
        )),
    }
}

// === processes ===

/// A child process, killed and reaped on drop; its stdout and stderr go to `log`.
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, command: &mut Command, log: &Path, stdout: Option<&Path>) -> Self {
        let file = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open a log file")
        };
        let out = file(stdout.unwrap_or(log));
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            name,
            child,
            log: log.to_owned(),
        }
    }

    /// Panics with the end of the log when the process has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("process status") {
            panic!(
                "{} exited early ({status}):\n{}",
                self.name,
                tail(&self.log, 40)
            );
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// === epp-sim ===

/// One `epp-sim` process serving `ports.len()` simulated vLLM servers.
pub struct Sims {
    _process: Process,
    pub ports: Vec<u16>,
}

impl Sims {
    /// Starts `servers` simulators on free ports (`--base-port 0`) and reads the ports from
    /// the lines the binary prints.
    pub async fn start(dir: &Path, servers: usize, args: &[String]) -> Sims {
        let log = dir.join("sim.log");
        let mut command = Command::new(EPP_SIM);
        command
            .args(["--servers", &servers.to_string(), "--base-port", "0"])
            .args(args);
        let mut process = Process::spawn("epp-sim", &mut command, &log, None);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let ports = serving_ports(&std::fs::read_to_string(&log).unwrap_or_default());
            if ports.len() == servers {
                return Sims {
                    _process: process,
                    ports,
                };
            }
            process.assert_running();
            assert!(Instant::now() < deadline, "epp-sim did not start");
            tokio::time::sleep(POLL).await;
        }
    }

    /// `127.0.0.1:<port>` of server `i`.
    pub fn address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }
}

/// Ports from `epp-sim: serving <model> on http://127.0.0.1:<port>` lines.
fn serving_ports(log: &str) -> Vec<u16> {
    log.lines()
        .filter(|line| line.starts_with("epp-sim: serving "))
        .filter_map(|line| line.rsplit(':').next()?.trim().parse().ok())
        .collect()
}

// === epp ===

/// The `epp` binary in standalone mode (`--endpoints`), restartable on the same ports.
pub struct Epp {
    process: Option<Process>,
    args: Vec<String>,
    log: PathBuf,
    pub grpc_port: u16,
    pub health_port: u16,
    pub metrics_port: u16,
}

impl Epp {
    /// Starts the EPP over `endpoints` (`ip:port,…`) on free ports, in plaintext unless
    /// `tls`, with `extra` flags last (they override the defaults here).
    pub async fn start(dir: &Path, endpoints: &str, tls: bool, extra: &[String]) -> Epp {
        let ports = EppPorts::free();
        let mut args = vec!["--endpoints".to_owned(), endpoints.to_owned()];
        args.extend(ports.flags());
        args.extend(
            // Envoy's cluster health check asks the ext_proc port itself.
            ["--health-checking", "--v", "4"].map(String::from),
        );
        args.push(format!("--secure-serving={tls}"));
        args.extend(extra.iter().cloned());
        let mut epp = Epp {
            process: None,
            args,
            log: dir.join("epp.log"),
            grpc_port: ports.grpc,
            health_port: ports.health,
            metrics_port: ports.metrics,
        };
        epp.restart().await;
        epp
    }

    /// Kills the EPP (SIGKILL, as a crash).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts the EPP again with the same flags and ports, and waits until it is ready.
    pub async fn restart(&mut self) {
        self.stop();
        let mut command = Command::new(EPP);
        command.args(&self.args);
        self.process = Some(Process::spawn("epp", &mut command, &self.log, None));
        self.wait_serving().await;
    }

    /// Waits until the health port answers SERVING (the pool is known).
    async fn wait_serving(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let health = SocketAddr::from(([127, 0, 0, 1], self.health_port));
        loop {
            if let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_secs(1), serving(health, "")).await
            {
                return;
            }
            if let Some(process) = &mut self.process {
                process.assert_running();
            }
            assert!(Instant::now() < deadline, "epp did not become ready");
            tokio::time::sleep(POLL).await;
        }
    }
}

// === envoy ===

/// Envoy running one of `tests/envoy/configs/*.yaml`, placeholders filled in.
pub struct Envoy {
    process: Process,
    pub admin_port: u16,
    pub listen_port: u16,
    access_log: PathBuf,
}

impl Envoy {
    /// Starts Envoy on the config file `config` with its placeholders filled from `vars`,
    /// then each `edits` pair (text, replacement) applied.
    pub async fn start(
        dir: &Path,
        config: &str,
        vars: &[(&str, String)],
        edits: &[(String, String)],
        http: &Http,
    ) -> Envoy {
        let (admin_port, listen_port) = (free_port(), free_port());
        let mut all = vec![
            ("ADMIN_PORT", admin_port.to_string()),
            ("LISTEN_PORT", listen_port.to_string()),
        ];
        all.extend(vars.iter().cloned());
        let path = dir.join("envoy.yaml");
        let mut text = render(config, &all);
        for (from, to) in edits {
            assert!(
                text.contains(from.as_str()),
                "{config}: no {from:?} to edit"
            );
            text = text.replace(from.as_str(), to);
        }
        std::fs::write(&path, text).expect("write the Envoy config");
        let access_log = dir.join("access.log");
        let mut command = Command::new(envoy_binary());
        command
            .arg("-c")
            .arg(&path)
            // Several Envoys run at once: no shared memory between them.
            .args(["--disable-hot-restart", "--concurrency", "1"])
            .args(["--log-level", "warn", "--file-flush-interval-msec", "50"]);
        let log = dir.join("envoy.log");
        let process = Process::spawn("envoy", &mut command, &log, Some(&access_log));
        let mut envoy = Envoy {
            process,
            admin_port,
            listen_port,
            access_log,
        };
        let epp_port = vars.iter().find(|(k, _)| *k == "EPP_PORT");
        let epp_host = epp_port.map(|(_, port)| format!("ext_proc::127.0.0.1:{port}"));
        envoy.wait_ready(http, epp_host.as_deref()).await;
        envoy
    }

    /// Waits for `/ready` (listeners up, clusters initialised, the EPP's first health check
    /// done) and for the EPP's host (`ext_proc::<address>`) to be healthy.
    async fn wait_ready(&mut self, http: &Http, epp_host: Option<&str>) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let healthy = epp_host.map(|host| format!("{host}::health_flags::healthy"));
        loop {
            let ready = http.admin(self.admin_port, "/ready").await;
            let clusters = http.admin(self.admin_port, "/clusters").await;
            let epp_ok = match &healthy {
                None => true,
                Some(line) => clusters.is_some_and(|c| c.lines().any(|l| l == line)),
            };
            if ready.as_deref().map(str::trim) == Some("LIVE") && epp_ok {
                return;
            }
            self.process.assert_running();
            assert!(Instant::now() < deadline, "envoy did not become ready");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Envoy's access log so far (flushed every 50 ms).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.access_log).unwrap_or_default()
    }

    /// Waits until the access log has a line containing `needle`, and returns that line.
    pub async fn access_log_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(line) = self.access_log().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no access log line with {needle:?}:\n{}",
                self.access_log()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Reads `tests/envoy/configs/<name>` and replaces each `{{NAME}}`.
fn render(name: &str, vars: &[(&str, String)]) -> String {
    let path = format!("{ROOT}/tests/envoy/configs/{name}");
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (key, value) in vars {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    // Comments mention placeholders too; only the YAML itself must be complete.
    let unfilled = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find(|l| l.contains("{{"));
    assert!(
        unfilled.is_none(),
        "{name}: unfilled placeholder in {unfilled:?}"
    );
    text
}
