//! `conntrack::save::parse` on arbitrary text: errors with a line and column inside the
//! input, never panics; every entry it makes is one the engine can hold, and prints as a
//! line that reads back as the same entry (less `EXPECTED`, which the printer leaves out).
//!
//! Run: `cd dataplane/fuzz && cargo +nightly fuzz run conntrack_save corpus/conntrack_save
//! seeds/conntrack_save` (the seeds are real `conntrack -L -o save` output).
#![no_main]

use engine::conntrack::entry::status;
use engine::conntrack::save::{format_line, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count();
    match parse(text, 0) {
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(e.line >= 1 && e.line <= lines, "{e:?}");
                let width = text
                    .lines()
                    .nth(e.line - 1)
                    .map_or(0, |l| l.chars().count());
                assert!(e.col >= 1 && e.col <= width.max(1), "{e:?}");
                assert!(!e.message.is_empty() && !e.hint.is_empty(), "{e:?}");
            }
        }
        Ok(entries) => {
            for p in entries {
                let e = p.entry;
                assert!(e.check().is_ok(), "{e:?}");
                assert!(p.line >= 1 && p.line <= lines);
                if let Ok(line) = format_line(&e, 0) {
                    let back = parse(&line, 0).unwrap_or_else(|err| panic!("{line}: {err:?}"));
                    assert_eq!(back.len(), 1, "{line}");
                    let mut want = e;
                    want.status &= !status::EXPECTED;
                    assert_eq!(back[0].entry, want, "{line}");
                }
            }
        }
    }
});
