//! `statewall check FILE` (DESIGN.md §6): exit 0 for a clean file or warnings only, 1 on
//! errors; diagnostics on stderr as `file:line:col: severity: message`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A ruleset written to a uniquely named temporary file, removed on drop.
struct TempRuleset(PathBuf);

impl TempRuleset {
    fn new(text: &str) -> TempRuleset {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "statewall-cli-check-{}-{n}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write the temporary ruleset");
        TempRuleset(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temporary path is UTF-8")
    }
}

impl Drop for TempRuleset {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn check(path: &str) -> (i32, String, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_statewall"))
        .args(["check", path])
        .output()
        .expect("run statewall");
    (
        out.status.code().expect("exited with a code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = "\
forward:
  policy: drop
  rules:
    - ctstate: [established, related]
      action: accept
    - ctstate: invalid
      action: drop
    - proto: tcp
      dport: [22, 80]
      ctstate: new
      action: accept
";

#[test]
fn good_file_exits_0_quietly() {
    let f = TempRuleset::new(GOOD);
    let (code, stdout, stderr) = check(f.path());
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stderr, "", "no warnings expected");
    assert!(stdout.contains("0 warning(s)"), "{stdout}");
}

#[test]
fn warnings_exit_0_and_go_to_stderr() {
    // Rule 1 is shadowed by rule 0; the policy accepts with INVALID not dropped.
    let text = "\
forward:
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: established, proto: tcp, action: accept}
";
    let f = TempRuleset::new(text);
    let (code, stdout, stderr) = check(f.path());
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let p = f.path();
    assert!(
        stderr.contains(&format!(
            "{p}:4:7: warning: forward rule 1 never fires; rule 0 at line 3"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{p}:1:1: warning: forward policy accept with INVALID not dropped"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("  hint: "), "{stderr}");
    assert!(stdout.contains("2 warning(s)"), "{stdout}");
}

#[test]
fn errors_exit_1_with_file_line_col() {
    let text = "\
forward:
  policy: drop
  rules:
    - action: accept
      dprt: 22
";
    let f = TempRuleset::new(text);
    let (code, stdout, stderr) = check(f.path());
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    let p = f.path();
    assert!(
        stderr.contains(&format!(
            "{p}:5:7: error: forward.rules[0]: unknown field `dprt`"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: did you mean `dport`?"), "{stderr}");
    assert!(stderr.contains("1 error(s)"), "{stderr}");
}

#[test]
fn cross_field_errors_exit_1() {
    let text = "\
raw:
  rules:
    - action: notrack
      ctstate: new
";
    let f = TempRuleset::new(text);
    let (code, _, stderr) = check(f.path());
    assert_eq!(code, 1, "{stderr}");
    let p = f.path();
    assert!(
        stderr.contains(&format!(
            "{p}:4:7: error: `ctstate` cannot be matched in the `raw` stage"
        )),
        "{stderr}"
    );
}

#[test]
fn missing_file_exits_1() {
    let path = std::env::temp_dir().join(format!(
        "statewall-cli-check-{}-absent.yaml",
        std::process::id()
    ));
    let p = path.to_str().expect("UTF-8 path");
    let (code, _, stderr) = check(p);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cannot read the file"), "{stderr}");
}

#[test]
fn shipped_examples_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // packaging/statewall.yaml is the package's /etc/statewall/statewall.yaml.
    for name in [
        "examples/minimal.yaml",
        "examples/seed-multiport.yaml",
        "examples/gateway-tools.yaml",
        "examples/marks.yaml",
        "packaging/statewall.yaml",
    ] {
        let path = root.join(name);
        let (code, stdout, stderr) = check(path.to_str().expect("UTF-8 path"));
        assert_eq!(code, 0, "{name}: {stdout}{stderr}");
        assert_eq!(stderr, "", "{name} should have no warnings");
    }
}
