//! Man pages and shell completions generated from a binary's clap definition, so that `--help`,
//! the man pages and the completions cannot drift apart.
//!
//! Each binary (`statewall`, `statewallctl`, `statewall-pktgen`) calls [`generate_if_asked`]
//! first thing in `main`. `PROG --generate-docs DIR` then writes
//!
//! ```text
//! DIR/man1/PROG.1         the command's page
//! DIR/man1/PROG-SUB.1     one page per visible subcommand (statewall-run.1, ...), recursively
//! DIR/bash/PROG           bash-completion
//! DIR/zsh/_PROG           zsh
//! DIR/fish/PROG.fish      fish
//! ```
//!
//! prints the paths it wrote and exits. The option is deliberately not part of the clap
//! definitions, so no help text, page or completion shows it, it needs no subcommand (which
//! `statewall-pktgen` has none of) and it cannot collide with a command's own arguments.
//! `scripts/package.sh` gzips the pages and puts every file where Debian looks for it.
//!
//! Output is reproducible: no dates, nothing from the machine, the same bytes for the same
//! definitions.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::Command;
use clap_complete::Shell;

/// The hidden option: `PROG --generate-docs DIR`, alone on the command line.
pub const OPTION: &str = "--generate-docs";

/// When the command line is `PROG --generate-docs DIR`, write the docs of `command()` into DIR
/// and exit (0 when written, 1 on an IO error, 2 on a bad command line); otherwise return at
/// once, without building the command.
pub fn generate_if_asked(command: impl FnOnce() -> Command) {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(OPTION)) {
        return;
    }
    let cmd = command();
    let name = cmd.get_name().to_string();
    let code = match (args.next(), args.next()) {
        (Some(dir), None) => match generate(cmd, Path::new(&dir)) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                0
            }
            Err(e) => {
                eprintln!("{name}: {OPTION} {}: {e}", Path::new(&dir).display());
                1
            }
        },
        _ => {
            eprintln!("{name}: usage: {name} {OPTION} DIR");
            2
        }
    };
    std::process::exit(code);
}

/// Write the man pages and completions of `cmd` under `dir` (layout in the crate docs);
/// returns the files written, pages first.
pub fn generate(cmd: Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_string();
    let mut files = Vec::new();

    // The pages: `help` is not a command of its own there, and building the command gives
    // each subcommand its display name (`statewall-run`) and the global options it inherits.
    let mut man = cmd.clone().disable_help_subcommand(true);
    man.build();
    let man_dir = dir.join("man1");
    fs::create_dir_all(&man_dir)?;
    man_pages(&man, &man_dir, &mut files)?;

    // The completions complete what the binary accepts, `help SUBCOMMAND` included.
    let mut cmd = cmd;
    for (shell, sub, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let d = dir.join(sub);
        fs::create_dir_all(&d)?;
        let path = d.join(file);
        let mut out = io::BufWriter::new(fs::File::create(&path)?);
        clap_complete::generate(shell, &mut cmd, &name, &mut out);
        io::Write::flush(&mut out)?;
        files.push(path);
    }
    Ok(files)
}

/// `cmd`'s page, then its visible subcommands' pages, depth first.
fn man_pages(cmd: &Command, dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    let title = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let path = dir.join(format!("{title}.1"));
    let mut out = io::BufWriter::new(fs::File::create(&path)?);
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    io::Write::flush(&mut out)?;
    files.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, dir, files)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn demo() -> Command {
        Command::new("demo")
            .version("1.2.3")
            .about("A demo tool")
            .arg(
                Arg::new("verbose")
                    .long("verbose")
                    .action(ArgAction::SetTrue)
                    .help("Say more"),
            )
            .subcommand(
                Command::new("run")
                    .about("Run it")
                    .arg(Arg::new("workers").long("workers").help("Worker count"))
                    .subcommand(Command::new("deep").about("Deeper")),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("clidoc-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn pages_and_completions_where_the_docs_say() {
        let dir = temp_dir("layout");
        let files = generate(demo(), &dir).unwrap();
        let rel: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "man1/demo.1",
                "man1/demo-run.1",
                "man1/demo-run-deep.1",
                "bash/demo",
                "zsh/_demo",
                "fish/demo.fish"
            ]
        );
        let top = fs::read_to_string(dir.join("man1/demo.1")).unwrap();
        assert!(top.starts_with(".ie \\n(.g .ds Aq"), "{top}");
        assert!(top.contains(".TH demo 1"), "{top}");
        assert!(top.contains("A demo tool"), "{top}");
        assert!(top.contains("demo\\-run(1)"), "{top}");
        assert!(
            !top.contains("secret"),
            "a hidden subcommand has no page: {top}"
        );
        let run = fs::read_to_string(dir.join("man1/demo-run.1")).unwrap();
        assert!(run.contains("\\-\\-workers"), "{run}");
        let bash = fs::read_to_string(dir.join("bash/demo")).unwrap();
        assert!(bash.contains("complete -F _demo"), "{bash}");
        assert!(bash.contains("--workers"), "{bash}");
        let fish = fs::read_to_string(dir.join("fish/demo.fish")).unwrap();
        assert!(fish.contains("complete -c demo"), "{fish}");
        let zsh = fs::read_to_string(dir.join("zsh/_demo")).unwrap();
        assert!(zsh.starts_with("#compdef demo"), "{zsh}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_same_bytes_every_time() {
        let (a, b) = (temp_dir("repro-a"), temp_dir("repro-b"));
        let fa = generate(demo(), &a).unwrap();
        let fb = generate(demo(), &b).unwrap();
        for (x, y) in fa.iter().zip(&fb) {
            assert_eq!(
                fs::read(x).unwrap(),
                fs::read(y).unwrap(),
                "{}",
                x.display()
            );
        }
        fs::remove_dir_all(&a).unwrap();
        fs::remove_dir_all(&b).unwrap();
    }
}
