//! `epp`: the Endpoint Picker binary. Parse, validate, build, serve, drain.

use std::process::ExitCode;

use epp::app::{self, DRAIN_TIMEOUT};
use epp::cli::{self, Options, ProcessEnv};
use epp_core::config::EndpointPickerConfig;
use epp_core::telemetry::logging::{self, LogSettings};

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1), &ProcessEnv) {
        Ok(options) => options,
        Err(e) => {
            eprint!("{}", e.stderr_text());
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1));
        }
    };
    if options.print_crds {
        return print_crds();
    }
    if let Err(e) = logging::init(&log_settings(&options)) {
        eprintln!("{e}");
        return ExitCode::from(1);
    }
    log_startup(&options);
    let config = match app::load_config(&options) {
        Ok(config) => config,
        Err(e) => {
            // `--validate-config` answers with the one plain line below, not twice.
            if !options.validate_config {
                tracing::error!(error = %e, "invalid EndpointPickerConfig");
            }
            eprintln!("invalid EndpointPickerConfig: {e}");
            return ExitCode::from(1);
        }
    };
    if options.config_file.is_none() && options.config_text.is_none() {
        tracing::info!("no --config-file or --config-text: using the embedded default config");
    }
    for warning in &config.warnings {
        tracing::warn!(warning = %warning, "EndpointPickerConfig");
    }
    if options.validate_config {
        return print_config(&config);
    }
    match serve(&options, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "EPP failed");
            eprintln!("epp: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(options: &Options, config: EndpointPickerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let running = app::start(options, config).await?;
        wait_for_signal().await?;
        tracing::info!("shutting down: draining in-flight streams");
        running.shutdown(DRAIN_TIMEOUT).await;
        Ok(())
    })
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        result = tokio::signal::ctrl_c() => result?,
    }
    Ok(())
}

fn log_settings(options: &Options) -> LogSettings {
    LogSettings {
        verbosity: options.log.verbosity,
        encoder: options.log.encoder,
        time_encoding: options.log.time_encoding,
        directives: std::env::var("RUST_LOG").ok().filter(|d| !d.is_empty()),
    }
}

fn log_startup(options: &Options) {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "GIE build");
    for warning in &options.warnings {
        tracing::warn!(warning = %warning, "flag or environment value ignored");
    }
    for note in &options.inert {
        tracing::warn!(warning = %note, "flag or environment value has no effect");
    }
    let flags: Vec<String> = options
        .flag_values()
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    tracing::info!(flags = %flags.join(" "), "Flags processed");
}

/// `--validate-config`: the effective config (defaults applied) and the profiles.
fn print_config(config: &EndpointPickerConfig) -> ExitCode {
    let mut out = match serde_saphyr::to_string(&config.effective) {
        Ok(yaml) => format!("# effective configuration\n{yaml}\n"),
        Err(e) => format!("# effective configuration could not be printed: {e}\n"),
    };
    out.push_str(&format!("# resolved\n{}\n", config.describe().trim_end()));
    for warning in &config.warnings {
        out.push_str(&format!("# warning: {warning}\n"));
    }
    write_stdout(&out)
}

/// Writes to stdout; a closed pipe (`epp --print-crds | head`) is not an error.
fn write_stdout(text: &str) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}

/// `--print-crds`: the CRDs generated from the resource types, as one YAML stream.
fn print_crds() -> ExitCode {
    let mut out = String::new();
    for crd in epp_discovery::kube::resources::crds() {
        match serde_saphyr::to_string(&crd) {
            Ok(yaml) => out.push_str(&format!("---\n{}\n", yaml.trim_end())),
            Err(e) => {
                eprintln!("cannot render the CRDs: {e}");
                return ExitCode::from(1);
            }
        }
    }
    write_stdout(&out)
}
