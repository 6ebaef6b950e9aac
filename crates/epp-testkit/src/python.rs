//! The Python interpreter of the KV-event interoperability tests, which publish with pyzmq
//! and msgspec as vLLM does, and of the router-mode test that runs the `openai` SDK.

/// `$EPP_KV_PYTHON`, else the virtualenv `.ci/install-kv-python` makes, else `python3`.
pub fn kv_python() -> String {
    if let Ok(python) = std::env::var("EPP_KV_PYTHON") {
        return python;
    }
    let venv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.tools/kv-python/bin/python"
    );
    if std::path::Path::new(venv).exists() {
        venv.to_owned()
    } else {
        "python3".to_owned()
    }
}

/// Fails the test, saying how to fix it, when [`kv_python`] cannot import zmq and msgspec.
pub fn require_kv_python() {
    require_modules("zmq, msgspec", "pyzmq msgspec");
}

/// Fails the test, saying how to fix it, when [`kv_python`] cannot import `openai`.
pub fn require_openai_python() {
    require_modules("openai", "openai");
}

fn require_modules(modules: &str, packages: &str) {
    let python = kv_python();
    let probe = std::process::Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{python} cannot import {modules}: run `.ci/install-kv-python` (.ci/run does), or `pip install {packages}`: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(error) => panic!("{python} is not runnable ({error}): run `.ci/install-kv-python`"),
    }
}
