//! The committed completion scripts in `completions/` match what `ionctl completions`
//! generates from the current CLI definition. Regenerate with:
//! `for s in bash zsh fish; do cargo run -q -- completions $s; done`

use std::path::Path;
use std::process::Command;

#[test]
fn committed_completions_are_current() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fresh = tempfile::tempdir().expect("temp dir");
    for (shell, file) in [
        ("bash", "ionctl.bash"),
        ("zsh", "_ionctl"),
        ("fish", "ionctl.fish"),
    ] {
        let status = Command::new(env!("CARGO_BIN_EXE_ionctl"))
            .args(["completions", shell, "--dir"])
            .arg(fresh.path())
            .status()
            .expect("running ionctl completions");
        assert!(status.success(), "ionctl completions {shell} failed");
        let generated = std::fs::read_to_string(fresh.path().join(file)).expect("generated script");
        let committed = std::fs::read_to_string(repo.join("completions").join(file))
            .unwrap_or_else(|e| {
                panic!("completions/{file} is missing ({e}); run `ionctl completions {shell}`")
            });
        assert!(
            generated == committed,
            "completions/{file} is stale: run `cargo run -q -- completions {shell}` from the repository root and commit it"
        );
    }
}

#[test]
fn completions_can_go_to_stdout() {
    let output = Command::new(env!("CARGO_BIN_EXE_ionctl"))
        .args(["completions", "bash", "--stdout"])
        .output()
        .expect("running ionctl completions");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("_ionctl()"));
}
