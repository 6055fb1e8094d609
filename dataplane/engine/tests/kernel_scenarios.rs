//! The Linux kernel's recorded answers in `cargo test`: every scenario directory of
//! tests/scenarios/ (found at run time, so a new one is checked without editing this file)
//! and every kernel-recorded capture of tests/data/ goes through the engine as
//! `statewall replay` runs it (capture timestamps as the clock, the expiry sweep before each
//! packet), with one shard and with two, and every packet's verdict and ctstate must equal
//! what the kernel decided (`kernel.jsonl`). This is the comparison the scripts made before it
//! moved here (scripts/swlab/verdicts.py: port, ctstate and verdict per packet; a null ctstate, a packet
//! that never reached filter FORWARD such as ARP or a bad IPv4 header checksum, must be null
//! on both sides), without binaries, root or a lab.
//!
//! Rules: a scenario's `rules.iptables` (with `sysctl.conf`, `helpers` and `ipset.save` when present) goes
//! through `config::iptables::import`, then to YAML and back through `config::load_str`, as
//! `statewall import-iptables --sysctl --helpers`, `statewall check` and `statewall replay
//! --config` do; a tests/data capture runs under examples/seed-gateway.yaml, the ruleset its
//! lab loaded (its `NAME.iptables` is the kernel's side of it, NFLOG and physdev included).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use config::matches::CtState;
use engine::capture::Frame;
use engine::ruleset::CompiledRuleset;
use engine::sharded::Sharded;

/// Shard counts each capture is replayed with (the daemon's workers; the answers must not
/// depend on them).
const SHARDS: [usize; 2] = [1, 2];

const CTSTATES: [&str; 5] = ["new", "established", "related", "invalid", "untracked"];

/// One packet's recorded kernel answer.
struct Answer {
    port: String,
    /// `None`: the packet never reached filter FORWARD.
    ctstate: Option<String>,
    verdict: String,
}

/// What was checked, for the summary.
#[derive(Default)]
struct Tally {
    sets: usize,
    packets: usize,
    replayed: usize,
}

/// Read `kernel.jsonl` strictly: one object per line, `index` counting from 0 in order, a
/// string `port`, `ctstate` one of the five states or null, `verdict` accept or drop.
fn read_answers(path: &Path) -> Result<Vec<Answer>, String> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{}:{}", shown(path), n + 1);
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{at}: not JSON: {e}"))?;
        let index = v.get("index").and_then(serde_json::Value::as_u64);
        if index != Some(out.len() as u64) {
            return Err(format!(
                "{at}: index {}, expected {} (one answer per packet, in capture order)",
                json(v.get("index")),
                out.len()
            ));
        }
        let port = v
            .get("port")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("{at}: no string `port`"))?;
        let ctstate = match v.get("ctstate") {
            Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if CTSTATES.contains(&s.as_str()) => Some(s.clone()),
            other => {
                return Err(format!(
                    "{at}: ctstate {} is not a state or null",
                    json(other)
                ))
            }
        };
        let verdict = match v.get("verdict").and_then(serde_json::Value::as_str) {
            Some(s @ ("accept" | "drop")) => s.to_string(),
            _ => {
                return Err(format!(
                    "{at}: verdict {} is not accept or drop",
                    json(v.get("verdict"))
                ))
            }
        };
        out.push(Answer {
            port: port.to_string(),
            ctstate,
            verdict,
        });
    }
    if out.is_empty() {
        return Err(format!("{} has no answers", shown(path)));
    }
    Ok(out)
}

/// A JSON field as written, for messages.
fn json(v: Option<&serde_json::Value>) -> String {
    v.map_or_else(|| "(missing)".to_string(), ToString::to_string)
}

/// A file of the set that must exist.
fn required(path: PathBuf) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} is missing", shown(&path)))
    }
}

/// Read a file, naming it in the error.
fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", shown(path)))
}

/// Path as written in messages: relative to the repository root.
fn shown(path: &Path) -> String {
    path.strip_prefix(common::repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A scenario's rules as the differential script builds them: `statewall import-iptables
/// --sysctl sysctl.conf --helpers helpers rules.iptables` (each optional file only when it
/// exists; `statewall import-nft rules.json` for an nftables scenario), the YAML it prints loaded and validated as `statewall check` and `statewall
/// replay --config` load it, then compiled as replay compiles it (generation 1).
fn import_scenario(dir: &Path, name: &str) -> Result<config::Ruleset, String> {
    // An nftables scenario: `statewall import-nft rules.json` (what nft made of rules.nft).
    if dir.join("rules.nft").exists() {
        let path = required(dir.join("rules.json"))?;
        let (file, text) = (shown(&path), read(&path)?);
        let imported = config::nft::import(&config::nft::NftInput {
            rules: (&file, &text),
        })
        .map_err(|e| format!("import-nft rejects the rules:\n{}", common::diagnostics(&e)))?;
        let yaml = imported.to_yaml();
        return load_yaml(&yaml, &format!("{name}.yaml (imported)"))
            .map_err(|e| format!("{e}\n--- the imported YAML:\n{yaml}"));
    }
    let rules_path = required(dir.join("rules.iptables"))?;
    let rules = (shown(&rules_path), read(&rules_path)?);
    let optional = |file: &str| -> Result<Option<(String, String)>, String> {
        let p = dir.join(file);
        if p.exists() {
            Ok(Some((shown(&p), read(&p)?)))
        } else {
            Ok(None)
        }
    };
    let sysctl = optional("sysctl.conf")?;
    let helpers = optional("helpers")?;
    let ipset = optional("ipset.save")?;
    let input = config::iptables::ImportInput {
        rules: (&rules.0, &rules.1),
        sysctl: sysctl.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        helpers: helpers.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        ipset: ipset.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        family: None,
    };
    let imported = config::iptables::import(&input).map_err(|e| {
        format!(
            "import-iptables rejects the rules:\n{}",
            common::diagnostics(&e)
        )
    })?;
    let yaml = imported.to_yaml();
    load_yaml(&yaml, &format!("{name}.yaml (imported)"))
        .map_err(|e| format!("{e}\n--- the imported YAML:\n{yaml}"))
}

/// Load (parse, validate) a YAML ruleset as `statewall check` and `statewall replay --config`
/// do, and compile it as replay compiles it (generation 1).
fn load_yaml(text: &str, file: &str) -> Result<config::Ruleset, String> {
    let loaded = config::load_str(text, file)
        .map_err(|e| format!("{file} does not load:\n{}", common::diagnostics(&e)))?;
    compile(&loaded.ruleset).map_err(|e| format!("{file} does not compile: {e}"))?;
    Ok(loaded.ruleset)
}

/// A ruleset compiled as replay compiles it (generation 1): a fresh one for every replay, as
/// each `statewall replay` run compiles its own (rate limits start with full buckets).
fn compile(r: &config::Ruleset) -> Result<Arc<CompiledRuleset>, String> {
    CompiledRuleset::compile(r, 1)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn st(ctstate: Option<&str>) -> &str {
    ctstate.unwrap_or("-")
}

/// Replay `capture` under `rules` with each shard count and compare with `kernel`; returns one
/// line per problem (every differing packet of every shard count), empty when all agree.
fn check(
    name: &str,
    ruleset: &config::Ruleset,
    capture: &Path,
    kernel: &Path,
    kernel_log: Option<&Path>,
    tally: &mut Tally,
) -> Vec<String> {
    let rules = match compile(ruleset) {
        Ok(r) => r,
        Err(e) => return vec![format!("{name}: does not compile: {e}")],
    };
    let rules = &rules;
    let frames: Vec<Frame> = match common::read_capture(capture) {
        Ok(f) => f,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let answers = match read_answers(kernel) {
        Ok(a) => a,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let kernel_lines = match kernel_log.map(read).transpose() {
        Ok(text) => text.map(|t| t.lines().map(bridged_as_ports).collect::<Vec<_>>()),
        Err(e) => return vec![format!("{name}: {e}")],
    };
    if frames.len() != answers.len() {
        return vec![format!(
            "{name}: {} has {} packets but {} has {} answers",
            shown(capture),
            frames.len(),
            shown(kernel),
            answers.len()
        )];
    }
    let mut problems: Vec<String> = frames
        .iter()
        .zip(&answers)
        .enumerate()
        .filter(|(_, (f, a))| f.port != a.port)
        .map(|(i, (f, a))| {
            format!(
                "{name}: packet {i} arrived on `{}` in the capture but on `{}` in kernel.jsonl",
                f.port, a.port
            )
        })
        .collect();
    let mut ports = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        match rules.port_index(&f.port) {
            Some(p) => ports.push(p),
            None => problems.push(format!(
                "{name}: packet {i} arrived on `{}`, not a port of the ruleset ({})",
                f.port,
                rules.ports.join(", ")
            )),
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    tally.sets += 1;
    tally.packets += frames.len();
    for shards in SHARDS {
        let Ok(rules) = compile(ruleset) else {
            continue;
        };
        let mut engine = Sharded::new(&rules, shards);
        let outcomes = common::replay(
            &mut engine,
            frames
                .iter()
                .zip(&ports)
                .map(|(f, &p)| (f.ts_ns, p, f.data.as_slice())),
        );
        tally.replayed += outcomes.len();
        let logged: Vec<String> = engine
            .take_logged()
            .iter()
            .map(|(_, r)| format!("<{}>{}", r.level, rules.log_line(r)))
            .collect();
        problems.extend(log_problems(name, shards, &logged, kernel_lines.as_deref()));
        for (i, (o, a)) in outcomes.iter().zip(&answers).enumerate() {
            let ctstate = o.ctstate.map(CtState::name);
            let verdict = o.verdict.as_str();
            if ctstate == a.ctstate.as_deref() && verdict == a.verdict {
                continue;
            }
            let differs = match (ctstate == a.ctstate.as_deref(), verdict == a.verdict) {
                (false, false) => "ctstate and verdict",
                (false, true) => "ctstate",
                _ => "verdict",
            };
            let rule = o.rule.map_or_else(|| "-".to_string(), |r| r.to_string());
            problems.push(format!(
                "{name} [{shards} shard{}] packet {i} port {}: kernel {}/{}, engine {}/{} \
                 (differs in {differs}; engine rule {rule}, reason {})",
                if shards == 1 { "" } else { "s" },
                a.port,
                st(a.ctstate.as_deref()),
                a.verdict,
                st(ctstate),
                verdict,
                o.reason.as_str(),
            ));
        }
    }
    problems
}

/// A line the kernel's LOG wrote for a bridged packet, as statewall writes it for the same
/// packet between ports: `IN=br0 OUT=br0 PHYSIN=lan PHYSOUT=wan ` is `IN=lan OUT=wan `, and
/// before the bridge decides, `IN=br0 OUT= PHYSIN=lan ` is `IN=lan OUT= `.
fn bridged_as_ports(line: &str) -> String {
    let Some(at) = line.find("IN=") else {
        return line.to_string();
    };
    let (head, rest) = line.split_at(at);
    let mut words = rest.splitn(5, ' ');
    let (Some(_), Some(_), Some(pin), Some(pout), Some(tail)) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return line.to_string();
    };
    match (pin.strip_prefix("PHYSIN="), pout.strip_prefix("PHYSOUT=")) {
        (Some(i), Some(o)) => format!("{head}IN={i} OUT={o} {tail}"),
        // Before the bridge has chosen a port (raw, mangle PREROUTING): `OUT=` and no PHYSOUT.
        (Some(i), None) => format!("{head}IN={i} OUT= {pout} {tail}"),
        _ => line.to_string(),
    }
}

/// The lines statewall logged against the kernel's (`kernel-log.txt`, `<LEVEL>LINE` each, in
/// order); without a recording, statewall must log nothing.
fn log_problems(
    name: &str,
    shards: usize,
    logged: &[String],
    kernel: Option<&[String]>,
) -> Vec<String> {
    let Some(kernel) = kernel else {
        return if logged.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "{name}: the rules log {} lines but there is no kernel-log.txt (record it: \
                 scripts/swlab kernel tests/scenarios/{name})",
                logged.len()
            )]
        };
    };
    if logged == kernel {
        return Vec::new();
    }
    let mut p = vec![format!(
        "{name} [{shards} shards]: {} log lines, the kernel wrote {}; the first that differ:",
        logged.len(),
        kernel.len()
    )];
    if let Some((i, (a, b))) = logged
        .iter()
        .zip(kernel)
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        p.push(format!(
            "  line {i}: engine {a:?}\n  line {i}: kernel {b:?}"
        ));
    }
    p
}

/// Fail with every problem, or print what was checked.
fn report(what: &str, total: usize, failed: usize, problems: &[String], tally: &Tally) {
    let checked = format!(
        "{} of {total} {what} replayed: {} packets, each with {SHARDS:?} shards ({} outcomes)",
        tally.sets, tally.packets, tally.replayed
    );
    if problems.is_empty() {
        println!("{checked}; all agree with the kernel (ctstate and verdict)");
        return;
    }
    let mut msg = format!(
        "{failed} of {total} {what} disagree with the kernel or are incomplete \
         (ctstate/verdict; `-`: no ctstate, the packet never reached filter FORWARD):\n"
    );
    for p in problems {
        let _ = writeln!(msg, "  {}", p.replace('\n', "\n      "));
    }
    panic!("{msg}{checked}");
}

/// Every directory of `root` (tests/scenarios, tests/scenarios-fragments), sorted.
fn scenario_dirs(root: &str) -> Vec<PathBuf> {
    let root = common::repo_path(root);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_scenario_agrees_with_the_kernel() {
    every_scenario_of("tests/scenarios");
}

/// IP fragments: reassembled before conntrack, as the kernel's nf_defrag does.
#[test]
fn every_fragment_scenario_agrees_with_the_kernel() {
    every_scenario_of("tests/scenarios-fragments");
}

/// Seeded random scenarios (`swlab random`): rulesets, sysctls and traffic nobody wrote by
/// hand (tests/scenarios-random/README.md). `STATEWALL_RANDOM_SCENARIOS=DIR` replays those
/// of DIR instead (scripts/random-differential.sh's long runs).
#[test]
fn every_random_scenario_agrees_with_the_kernel() {
    let dir = std::env::var("STATEWALL_RANDOM_SCENARIOS");
    every_scenario_of(dir.as_deref().unwrap_or("tests/scenarios-random"));
}

fn every_scenario_of(root: &str) {
    let dirs = scenario_dirs(root);
    assert!(!dirs.is_empty(), "no scenario directories in {root}");
    let mut tally = Tally::default();
    let mut problems = Vec::new();
    let mut failed = 0;
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let found = required(dir.join("packets.pcapng")).and_then(|capture| {
            let kernel = required(dir.join("kernel.jsonl"))?;
            Ok((capture, kernel, import_scenario(dir, &name)?))
        });
        let log = dir.join("kernel-log.txt");
        let log = log.exists().then_some(log.as_path());
        let mine = match found {
            Ok((capture, kernel, rules)) => {
                check(&name, &rules, &capture, &kernel, log, &mut tally)
            }
            Err(e) => vec![format!("{name}: {e}")],
        };
        if !mine.is_empty() {
            failed += 1;
            problems.extend(mine);
        }
    }
    report(root, dirs.len(), failed, &problems, &tally);
}

#[test]
fn every_recorded_capture_agrees_with_the_kernel() {
    let data = common::repo_path("tests/data");
    let mut names: Vec<String> = std::fs::read_dir(&data)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", data.display()))
        .filter_map(|e| {
            let name = e.expect("directory entry").file_name();
            name.to_str()?.strip_suffix(".pcapng").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no NAME.pcapng in tests/data");
    // The ruleset the capture lab (scripts/capture-lab.sh) runs the kernel under.
    let seed = read(&common::repo_path("examples/seed-gateway.yaml"))
        .and_then(|text| load_yaml(&text, "examples/seed-gateway.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tally = Tally::default();
    let mut problems = Vec::new();
    let mut failed = 0;
    for name in &names {
        let found = required(data.join(format!("{name}.kernel.jsonl"))).and_then(|kernel| {
            required(data.join(format!("{name}.iptables")))?;
            Ok(kernel)
        });
        let mine = match found {
            Ok(kernel) => check(
                name,
                &seed,
                &data.join(format!("{name}.pcapng")),
                &kernel,
                None,
                &mut tally,
            ),
            Err(e) => vec![format!("{name}: {e}")],
        };
        if !mine.is_empty() {
            failed += 1;
            problems.extend(mine);
        }
    }
    report(
        "tests/data captures",
        names.len(),
        failed,
        &problems,
        &tally,
    );
}
