//! One connection to the daemon's control socket: a request line out, a reply line back.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use config::protocol::{Command, ProtocolError, Reply, Request};

/// How long to wait for the daemon's answer (a flush of a full table takes a while).
const REPLY_TIMEOUT: Duration = Duration::from_mins(1);

#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Client {
    pub fn connect(path: &Path) -> anyhow::Result<Client> {
        let stream = UnixStream::connect(path).with_context(|| {
            format!(
                "cannot connect to the control socket {} (is statewall running, and may you \
                 open its socket? it is root's, or also its --control-group's)",
                path.display()
            )
        })?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Client {
            stream,
            reader,
            next_id: 1,
        })
    }

    /// Send one command; the reply line as received and as parsed.
    pub fn call(&mut self, cmd: Command) -> anyhow::Result<(String, Reply)> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = Request::new(id, cmd).to_line();
        line.push('\n');
        self.stream
            .write_all(line.as_bytes())
            .context("cannot send the request")?;
        let mut reply = String::new();
        let n = self
            .reader
            .read_line(&mut reply)
            .context("no reply from statewall")?;
        if n == 0 {
            bail!("statewall closed the connection without replying");
        }
        let reply = reply.trim_end().to_string();
        let parsed = Reply::from_line(&reply).map_err(|e: ProtocolError| anyhow::anyhow!(e))?;
        if parsed.id.is_some() && parsed.id != Some(id) {
            bail!("reply for request {:?}, expected {id}", parsed.id);
        }
        Ok((reply, parsed))
    }
}
