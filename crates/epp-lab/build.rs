//! Records the git revision the lab was built from, for its run manifests.

fn main() {
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok());
    if let Some(revision) = revision {
        println!("cargo:rustc-env=EPP_LAB_GIT_REVISION={}", revision.trim());
    }
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/refs/heads");
}
