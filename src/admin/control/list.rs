//! `faxmta queue list` against a running server: the listing streamed
//! over the control socket, one envelope a line as stored, then its end
//! (or the error that cut it), and the client's reader of those lines.

use super::Request;
use faxmta_queue::{Envelope, Store};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

/// One line of a streamed listing ([`Request::ListStream`]): an envelope,
/// then the count of envelopes sent, or an error that cut the listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListLine {
    Envelope(Box<Envelope>),
    End(usize),
    Error(String),
}

/// Write the listing to `out`, one line per envelope (as stored: it is
/// not parsed and encoded again here), then its end.
pub fn write_list(store: &Store, out: &mut impl Write) -> std::io::Result<()> {
    let mut n = 0;
    for raw in store.envelopes_raw() {
        match raw {
            Ok(raw) => {
                out.write_all(b"{\"envelope\":")?;
                out.write_all(&raw.json)?;
                out.write_all(b"}\n")?;
                n += 1;
            }
            Err(e) => {
                let line =
                    serde_json::to_string(&ListLine::Error(e.to_string())).unwrap_or_default();
                writeln!(out, "{line}")?;
                return out.flush();
            }
        }
    }
    let end = serde_json::to_string(&ListLine::End(n)).unwrap_or_default();
    writeln!(out, "{end}")?;
    out.flush()
}

/// Stream the listing to a control client, on a blocking thread.
pub(super) fn stream_list(store: &Store, stream: tokio::net::UnixStream) {
    let stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("control socket: {e}");
            return;
        }
    };
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, stream);
    if let Err(e) = write_list(store, &mut out) {
        // The client went away (e.g. `queue list | head`).
        tracing::debug!("control socket: listing cut: {e}");
    }
}

/// The envelopes of a streamed listing, read one line at a time.
pub struct ListReader<R> {
    lines: R,
    line: String,
    done: bool,
}

impl<R: BufRead> ListReader<R> {
    pub fn new(lines: R) -> Self {
        ListReader {
            lines,
            line: String::new(),
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for ListReader<R> {
    type Item = Result<Envelope, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.line.clear();
        let read = self.lines.read_line(&mut self.line);
        let parsed = match read {
            Ok(0) => Err("the server ended the listing early".to_string()),
            Ok(_) => serde_json::from_str::<ListLine>(&self.line)
                .map_err(|e| format!("bad listing line: {e}")),
            Err(e) => Err(format!("control socket: {e}")),
        };
        match parsed {
            Ok(ListLine::Envelope(env)) => Some(Ok(*env)),
            Ok(ListLine::End(_)) => {
                self.done = true;
                None
            }
            Ok(ListLine::Error(e)) | Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Ask a running server for the streamed listing. `Ok(None)` when no
/// server listens on the socket.
pub fn list(
    path: &Path,
) -> Result<Option<ListReader<BufReader<std::os::unix::net::UnixStream>>>, String> {
    let Some(stream) = super::send(path, &Request::ListStream)? else {
        return Ok(None);
    };
    Ok(Some(ListReader::new(BufReader::with_capacity(
        256 * 1024,
        stream,
    ))))
}
