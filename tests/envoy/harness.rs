//! The test stack: simulators, the EPP and Envoy (`processes.rs`), started in that order and
//! each waited for until ready, plus the limits every test runs under.

use std::future::Future;
use std::time::Duration;

use crate::client::Http;
use crate::processes::{Envoy, Epp, ROOT, Sims, tail};

/// How long each process may take to become ready.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Whole-test limit for the part after startup.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause between two polls of a condition.
pub const POLL: Duration = Duration::from_millis(25);

/// The model every simulator serves, and a LoRA adapter the rewrite header can name.
pub const MODEL: &str = "food-review";
pub const ADAPTER: &str = "food-review-1";

/// Runs `test` or panics when it takes longer than `limit`. Keep the [`Stack`] outside the
/// future so that it is still alive, and prints its logs, when the panic unwinds.
pub async fn within<F: Future>(limit: Duration, test: F) -> F::Output {
    match tokio::time::timeout(limit, test).await {
        Ok(output) => output,
        Err(_) => panic!("the test did not finish within {limit:?}"),
    }
}

// === the stack ===

/// What to start: the Envoy config, the simulators and the EPP's flags.
pub struct Setup {
    envoy_config: &'static str,
    servers: usize,
    sim_args: Vec<String>,
    plugins: String,
    /// A config text written to the run's directory instead of `plugins`.
    plugins_text: Option<String>,
    epp_args: Vec<String>,
    tls: bool,
    envoy_edits: Vec<(String, String)>,
}

impl Setup {
    /// `envoy_config` over three fast simulators serving [`MODEL`] and [`ADAPTER`], with the
    /// EPP on the upstream default plugins.
    pub fn new(envoy_config: &'static str) -> Setup {
        Setup {
            envoy_config,
            servers: 3,
            sim_args: [
                "--model",
                MODEL,
                "--lora-modules",
                ADAPTER,
                "--time-scale",
                "0.1",
            ]
            .map(String::from)
            .to_vec(),
            plugins: "default-plugins.yaml".to_owned(),
            plugins_text: None,
            epp_args: Vec::new(),
            tls: false,
            envoy_edits: Vec::new(),
        }
    }

    pub fn servers(mut self, servers: usize) -> Setup {
        self.servers = servers;
        self
    }

    /// More `epp-sim` flags; a flag given again overrides the default.
    pub fn sim_args(mut self, args: &[&str]) -> Setup {
        self.sim_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// More `epp` flags.
    pub fn epp_args(mut self, args: &[&str]) -> Setup {
        self.epp_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// The EPP's plugins config, a file in `plugins-config/`.
    pub fn plugins(mut self, file: &str) -> Setup {
        self.plugins = file.to_owned();
        self
    }

    /// The EPP's plugins config, as text (for configs that name ports chosen at run time).
    pub fn plugins_text(mut self, text: &str) -> Setup {
        self.plugins_text = Some(text.to_owned());
        self
    }

    /// Replaces `from` (which must occur) with `to` in the Envoy config, for a variant of
    /// a config file that one test needs.
    pub fn envoy_edit(mut self, from: &str, to: &str) -> Setup {
        self.envoy_edits.push((from.to_owned(), to.to_owned()));
        self
    }

    /// The EPP serves TLS (its self-signed certificate).
    pub fn tls(mut self) -> Setup {
        self.tls = true;
        self
    }

    /// Starts the simulators, then the EPP over them, then Envoy in front of the EPP.
    pub async fn start(self) -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("epp-e2e-")
            .tempdir()
            .expect("tempdir");
        let http = Http::new();
        let sims = Sims::start(dir.path(), self.servers, &self.sim_args).await;
        let endpoints: Vec<String> = (0..self.servers).map(|i| sims.address(i)).collect();
        let config_file = match &self.plugins_text {
            Some(text) => {
                let path = dir.path().join("plugins.yaml");
                std::fs::write(&path, text).expect("write the plugins config");
                path.display().to_string()
            }
            None => format!("{ROOT}/plugins-config/{}", self.plugins),
        };
        let mut epp_args = vec!["--config-file".to_owned(), config_file];
        epp_args.extend(self.epp_args);
        let epp = Epp::start(dir.path(), &endpoints.join(","), self.tls, &epp_args).await;
        let mut vars = vec![("EPP_PORT", epp.grpc_port.to_string())];
        let names = ["SIM_PORT_1", "SIM_PORT_2", "SIM_PORT_3"];
        vars.extend(names.into_iter().zip(sims.ports.iter().map(u16::to_string)));
        let envoy = Envoy::start(
            dir.path(),
            self.envoy_config,
            &vars,
            &self.envoy_edits,
            &http,
        )
        .await;
        Stack {
            envoy,
            epp,
            sims,
            http,
            dir,
        }
    }
}

/// Envoy → EPP → simulators, all running. Fields drop in order: Envoy first.
pub struct Stack {
    pub envoy: Envoy,
    pub epp: Epp,
    pub sims: Sims,
    pub http: Http,
    dir: tempfile::TempDir,
}

impl Stack {
    /// `http://127.0.0.1:<listener>/<path>`: through Envoy.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.envoy.listen_port)
    }

    /// A URL on simulator `i` directly, bypassing Envoy and the EPP.
    pub fn sim_url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.sims.address(i))
    }

    /// The EPP's `/metrics` page once `series` (a sample name with `labels`) reads `value`;
    /// the EPP records a response's metrics as its ext_proc stream ends, which may be after
    /// the client has the response. Panics after 10 s, showing the value it saw.
    pub async fn epp_metrics_when(
        &self,
        series: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.epp.metrics_port);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let page = self.http.fetch_text(&url).await;
            let seen = page
                .as_deref()
                .and_then(|p| crate::client::sample(p, series, labels));
            if let Some(page) = page.filter(|_| seen == Some(value)) {
                return page;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{url}: {series}{labels:?} is {seen:?}, not {value}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Index of the simulator listening on `port`.
    pub fn sim_index(&self, port: u16) -> usize {
        self.sims
            .ports
            .iter()
            .position(|&p| p == port)
            .unwrap_or_else(|| panic!("port {port} is not a simulator ({:?})", self.sims.ports))
    }
}

impl Drop for Stack {
    /// On a failed test, show what each process said.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for name in ["sim.log", "epp.log", "envoy.log", "access.log"] {
            eprintln!(
                "---- {name} (tail)\n{}",
                tail(&self.dir.path().join(name), 60)
            );
        }
    }
}
