//! The control socket's request decoder (`protocol::decode_request`, what the daemon runs on
//! every line a client sends) and the reply decoder (`Reply::from_line`, what statewallctl
//! runs on the daemon's answers) on arbitrary lines: an error with a kind and a message,
//! never a panic; a request that decodes encodes to a line that decodes to the same request.
//!
//! Run: `scripts/fuzz.sh control` (seeds: `dataplane/fuzz/seeds/control`, one request per
//! file, every command statewallctl sends).
#![no_main]

use config::protocol::{decode_request, Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match decode_request(line) {
        Ok(req) => {
            let again = req.to_line();
            let back = decode_request(again.trim_end_matches('\n'))
                .unwrap_or_else(|e| panic!("{again:?} does not decode: {e}"));
            assert_eq!(back, req);
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            let _ = e.reply().to_line();
        }
    }
    if let Ok(reply) = Reply::from_line(line) {
        let _ = reply.to_line();
    }
});
