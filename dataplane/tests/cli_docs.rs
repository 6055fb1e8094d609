//! `statewall --generate-docs DIR` (packaging/clidoc, for scripts/package.sh): a page per
//! command and subcommand and the completions, all from the CLI definition itself.

use std::process::Command;

#[test]
fn pages_and_completions_from_the_cli() {
    let dir = std::env::temp_dir().join(format!("statewall-cli-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_statewall"))
        .arg("--generate-docs")
        .arg(&dir)
        .output()
        .expect("run statewall");
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8(out.stdout).unwrap();
    for f in [
        "man1/statewall.1",
        "man1/statewall-run.1",
        "man1/statewall-check.1",
        "man1/statewall-import-iptables.1",
        "man1/statewall-replay.1",
        "bash/statewall",
        "zsh/_statewall",
        "fish/statewall.fish",
    ] {
        let path = dir.join(f);
        assert!(path.is_file(), "{f} missing; wrote {listed}");
        assert!(listed.contains(&path.display().to_string()), "{listed}");
    }
    let run = std::fs::read_to_string(dir.join("man1/statewall-run.1")).unwrap();
    assert!(run.contains("N|auto"), "{run}");
    assert!(run.contains("/etc/statewall/statewall.yaml"), "{run}");
    let bash = std::fs::read_to_string(dir.join("bash/statewall")).unwrap();
    assert!(bash.contains("import-iptables") && bash.contains("--workers"));
    // The option is no part of the CLI: no page or completion offers it.
    assert!(!bash.contains("generate-docs"));
    std::fs::remove_dir_all(&dir).unwrap();

    // Anything but exactly one DIR is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_statewall"))
        .args(["--generate-docs"])
        .output()
        .expect("run statewall");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "statewall: usage: statewall --generate-docs DIR\n"
    );
}
