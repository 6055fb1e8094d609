//! `statewallctl conntrack save [FILE]` and `conntrack restore [FILE]`: the table in
//! conntrack-tools' `conntrack -L -o save` lines, which `conntrack -R` loads into a kernel,
//! and such lines (from a Linux box, or a save) loaded into the running daemon.
//!
//! The daemon reads the lines (the client does not link the engine). A large input goes in
//! pieces of [`PIECE`] bytes, each naming its first line: first every piece is only checked,
//! and unless all are good nothing is added; then the pieces are added. Bad lines are listed
//! as `FILE:LINE:COL: what; hint`.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use config::protocol::{
    Command, ConntrackFilter, ConntrackOp, DiagnosticMsg, ErrorKind, ErrorReply, Outcome, Payload,
    Reply, Restored,
};

use crate::client::Client;
use crate::output;

/// Bytes of lines per restore request: well under any control socket's line limit (the
/// daemon reads up to 4 MiB), and a piece's worth of work keeps each request short.
const PIECE: usize = 32 * 1024;
/// Longer lines are not conntrack lines (conntrack-tools prints them into 1 KiB).
const LONGEST_LINE: usize = 4096;

/// `FILE:LINE:COL: what; hint`.
fn render(d: &DiagnosticMsg) -> String {
    match &d.hint {
        Some(h) => format!("{}:{}:{}: {}; {}", d.file, d.line, d.col, d.message, h),
        None => format!("{}:{}:{}: {}", d.file, d.line, d.col, d.message),
    }
}

fn refused(json: bool, line: &str, error: &ErrorReply) {
    if json {
        println!("{line}");
        return;
    }
    for d in &error.diagnostics {
        eprintln!("{}", render(d));
    }
    eprintln!("statewallctl: {} ({})", error.message, error.kind);
}

/// Write `text` to `path` whole or not at all (a temporary file beside it, renamed over it),
/// readable by the owner only: the table names every connection.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// `conntrack save [FILE]`: whether the daemon did it.
pub fn save(
    socket: &Path,
    json: bool,
    filter: ConntrackFilter,
    file: Option<&Path>,
) -> anyhow::Result<bool> {
    let mut client = Client::connect(socket)?;
    let (line, reply) = client.call(Command::Conntrack {
        op: ConntrackOp::Save,
        filter,
    })?;
    let c = match reply.result {
        Outcome::Ok {
            data: Payload::Conntrack(c),
        } => c,
        Outcome::Ok { data } => anyhow::bail!("unexpected reply to save: {data:?}"),
        Outcome::Error { error } => {
            refused(json, &line, &error);
            return Ok(false);
        }
    };
    let mut text = String::with_capacity(c.lines.iter().map(|l| l.len() + 1).sum());
    for l in &c.lines {
        text.push_str(l);
        text.push('\n');
    }
    match file {
        Some(p) if p != Path::new("-") => write_private(p, &text)?,
        _ if json => {}
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .context("cannot write the lines to standard output")?;
        }
    }
    if json {
        println!("{line}");
    } else {
        // As conntrack's "N flow entries have been shown.", on standard error.
        eprintln!("{} flow entries have been saved.", c.lines.len());
    }
    if c.skipped > 0 {
        eprintln!(
            "statewallctl: {} SCTP/DCCP entries were left out: `conntrack -R` needs their \
             protocol state, which Statewall does not track",
            c.skipped
        );
    }
    Ok(true)
}

/// The input's lines in pieces, `(text, first line)`, and the lines that cannot be sent
/// (not UTF-8, too long) as errors; such a line is sent empty, to keep the numbering.
fn pieces(bytes: &[u8], file: &str) -> (Vec<(String, usize)>, Vec<DiagnosticMsg>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut cur = String::new();
    let mut first = 1;
    let mut lines = bytes.split(|b| *b == b'\n').peekable();
    let mut n = 0;
    while let Some(raw) = lines.next() {
        n += 1;
        if raw.is_empty() && lines.peek().is_none() {
            break; // After the last newline.
        }
        let mut error = |col: usize, message: String, hint: &str| {
            errors.push(DiagnosticMsg {
                severity: "error".into(),
                file: file.to_string(),
                line: n,
                col,
                message,
                hint: Some(hint.into()),
            });
        };
        let text = match std::str::from_utf8(raw) {
            Ok(t) if t.len() > LONGEST_LINE => {
                error(
                    1,
                    format!("the line is {} bytes long", t.len()),
                    "conntrack lines are a few hundred bytes; is this a `conntrack -L -o save` file?",
                );
                ""
            }
            Ok(t) => t,
            Err(e) => {
                let col = String::from_utf8_lossy(&raw[..e.valid_up_to()])
                    .chars()
                    .count()
                    + 1;
                error(
                    col,
                    "the line is not UTF-8 text".into(),
                    "conntrack lines are ASCII; is this a `conntrack -L -o save` file?",
                );
                ""
            }
        };
        if !cur.is_empty() && cur.len() + text.len() + 1 > PIECE {
            out.push((std::mem::take(&mut cur), first));
            first = n;
        }
        cur.push_str(text);
        cur.push('\n');
    }
    if !cur.is_empty() || out.is_empty() {
        out.push((cur, first));
    }
    (out, errors)
}

/// `conntrack restore [FILE]`: whether every entry was taken (added, present or expired).
pub fn restore(socket: &Path, json: bool, file: Option<&Path>) -> anyhow::Result<bool> {
    let (bytes, name) = match file {
        Some(p) if p != Path::new("-") => (
            fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
            p.display().to_string(),
        ),
        _ => {
            let mut b = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut b)
                .context("cannot read standard input")?;
            (b, "<stdin>".to_string())
        }
    };
    let (pieces, mut errors) = pieces(&bytes, &name);
    let mut client = Client::connect(socket)?;
    let mut call = |text: &str, first_line: usize, check: bool| {
        client.call(Command::ConntrackRestore {
            text: text.to_string(),
            file: name.clone(),
            first_line,
            check,
        })
    };
    // Check every piece first, unless one request carries it all (the daemon then checks
    // it whole before adding anything).
    if pieces.len() > 1 || !errors.is_empty() {
        for (text, first) in &pieces {
            let (line, reply) = call(text, *first, true)?;
            match reply.result {
                Outcome::Ok { .. } => {}
                Outcome::Error { error } if error.kind == ErrorKind::InvalidEntries => {
                    errors.extend(error.diagnostics);
                }
                Outcome::Error { error } => {
                    refused(json, &line, &error);
                    return Ok(false);
                }
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|d| (d.line, d.col));
            let n = errors.len();
            let error = ErrorReply {
                kind: ErrorKind::InvalidEntries,
                message: format!(
                    "{n} bad line{} in {name}; nothing was restored",
                    if n == 1 { "" } else { "s" }
                ),
                diagnostics: errors,
            };
            refused(json, &Reply::error(None, error.clone()).to_line(), &error);
            return Ok(false);
        }
    }
    let mut total = Restored::default();
    let mut last_id = None;
    for (text, first) in &pieces {
        let (line, reply) = call(text, *first, false)?;
        last_id = reply.id;
        match reply.result {
            Outcome::Ok {
                data: Payload::Restored(r),
            } => {
                total.parsed += r.parsed;
                total.added += r.added;
                total.present += r.present;
                total.expired += r.expired;
                total.full += r.full;
            }
            Outcome::Ok { data } => anyhow::bail!("unexpected reply to restore: {data:?}"),
            Outcome::Error { mut error } => {
                if total.added > 0 {
                    error.message = format!(
                        "{}; {} entries from earlier lines were added",
                        error.message, total.added
                    );
                }
                refused(json, &line, &error);
                return Ok(false);
            }
        }
    }
    let data = Payload::Restored(total.clone());
    if json {
        println!("{}", Reply::ok(last_id.unwrap_or(0), data).to_line());
    } else {
        print!("{}", output::payload(&data, None));
    }
    if total.full > 0 {
        eprintln!(
            "statewallctl: {} entries did not fit: the table is full (raise conntrack `max` \
             in the config and restart, or flush entries no longer needed)",
            total.full
        );
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_keep_line_numbers_and_flag_unsendable_lines() {
        let line = "-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p 50\n";
        let mut input = line.repeat(2000).into_bytes();
        input.extend_from_slice(b"bad \xff byte\n");
        input.extend_from_slice(&vec![b'x'; LONGEST_LINE + 1]);
        input.extend_from_slice(b"\nlast");
        let (sent, errors) = pieces(&input, "t.save");
        assert!(sent.len() > 1);
        let mut next = 1;
        for (text, first) in &sent {
            assert_eq!(*first, next);
            assert!(text.len() <= PIECE, "{}", text.len());
            next += text.lines().count();
        }
        assert_eq!(next, 2004, "every line is sent, numbered");
        assert_eq!(
            errors.iter().map(|d| (d.line, d.col)).collect::<Vec<_>>(),
            [(2001, 5), (2002, 1)]
        );
        assert!(sent.last().unwrap().0.ends_with("\n\nlast\n"));
        let (sent, errors) = pieces(b"", "t.save");
        assert_eq!((sent, errors.len()), (vec![(String::new(), 1)], 0));
        assert_eq!(
            render(&pieces(b"x\xff", "t.save").1.remove(0)),
            "t.save:1:2: the line is not UTF-8 text; conntrack lines are ASCII; is this a `conntrack -L -o save` file?"
        );
    }
}
