//! A message on its way in: the client's octets go to the body file in
//! the queue as they arrive ([`faxmta_queue::BodyWriter`]); only the
//! header section is held in memory, until its end (the empty line) is
//! seen — there Authentication-Results fields forged with our authserv-id
//! are left out ([`crate::policy::authres`]) before it is written, and the
//! DKIM body hashers are set up for the signatures it names, which then
//! see the body go by ([`crate::policy::dkim_body`]). Our own header
//! fields (Received, Authentication-Results, Received-SPF) are known only
//! at the end; the queue keeps them above the body file
//! ([`faxmta_queue::Envelope::head`]).
//!
//! An error of the queue (no room, a failed write) is kept and answered
//! after the data, which is read to its end and dropped meanwhile. The
//! body file goes when the message is refused, the client times out or
//! the connection is lost (the writer is dropped).

use crate::policy::authres::append_without_ours;
use crate::policy::dkim_body::{BodyHash, BodyHashes};
use faxmta_queue::{BodyWriter, QueueError, QueueId, Store};

/// The largest header section taken (as Exchange's 256 KiB header limit,
/// with room to spare): it is held in memory until its end.
pub const MAX_HEADER: usize = 1024 * 1024;

/// The client's message, streaming into the queue.
pub(super) struct Incoming {
    writer: Option<BodyWriter>,
    /// Why the message cannot be queued (answered after the data).
    error: Option<QueueError>,
    /// The header section (until its end was seen: then complete).
    header: Vec<u8>,
    /// Where the scan for the empty line goes on.
    scanned: usize,
    in_header: bool,
    header_too_big: bool,
    /// Compute the DKIM body hashes (DKIM or DMARC will be verified).
    want_dkim: bool,
    hashes: Option<BodyHashes>,
    /// Our authserv-id: Authentication-Results claiming it are forged.
    ours: String,
    /// Forged Authentication-Results fields left out.
    pub forged: usize,
    /// Octets of the client's message received.
    pub size: u64,
}

/// What the message is once its data ended.
pub(super) struct Received {
    pub writer: BodyWriter,
    /// The header section as the client sent it (for DKIM and DMARC).
    pub header: Vec<u8>,
    pub body_hashes: Option<Vec<BodyHash>>,
    pub forged: usize,
}

/// Why a message that arrived whole cannot be queued.
pub(super) enum Refused {
    HeaderTooBig,
    Queue(QueueError),
}

impl Incoming {
    /// Start message `id` (or record why none can be): its body file,
    /// keeping `reserve` free.
    pub fn begin(
        store: &Store,
        id: Result<QueueId, QueueError>,
        reserve: u64,
        want_dkim: bool,
        ours: &str,
    ) -> Incoming {
        let writer = id
            .and_then(|id| store.check_room(reserve, 0).map(|()| id))
            .and_then(|id| store.begin_body(&id, reserve));
        let (writer, error) = match writer {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e)),
        };
        Incoming {
            writer,
            error,
            header: Vec::new(),
            scanned: 0,
            in_header: true,
            header_too_big: false,
            want_dkim,
            hashes: None,
            ours: ours.to_string(),
            forged: 0,
            size: 0,
        }
    }

    /// The queue id, when there is a body file.
    pub fn id(&self) -> Option<&QueueId> {
        self.writer.as_ref().map(|w| w.id())
    }

    /// Take the next octets of the client's message.
    pub async fn take(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        if self.writer.is_none() || self.header_too_big {
            return;
        }
        if !self.in_header {
            self.body(data).await;
            return;
        }
        self.header.extend_from_slice(data);
        let Some(end) = self.header_end() else {
            if self.header.len() > MAX_HEADER {
                self.header_too_big = true;
                self.header = Vec::new();
                if let Some(w) = self.writer.take() {
                    w.abort();
                }
            }
            return;
        };
        let rest = self.header.split_off(end);
        self.end_of_header().await;
        self.body(&rest).await;
    }

    /// The end of the header section (after its empty line), if seen.
    fn header_end(&mut self) -> Option<usize> {
        loop {
            let pos = self.scanned;
            let nl = self.header[pos..].iter().position(|&b| b == b'\n')?;
            let line = &self.header[pos..pos + nl + 1];
            self.scanned = pos + nl + 1;
            if line == b"\r\n" || line == b"\n" {
                return Some(self.scanned);
            }
        }
    }

    /// The header section is complete: write it without forged fields,
    /// and set up the body hashers.
    async fn end_of_header(&mut self) {
        self.in_header = false;
        let mut kept = Vec::with_capacity(self.header.len());
        self.forged = append_without_ours(&mut kept, &self.header, &self.ours);
        if self.want_dkim {
            self.hashes = Some(BodyHashes::for_header(&self.header));
        }
        self.write(&kept).await;
    }

    async fn body(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(h) = &mut self.hashes {
            h.write(data);
        }
        self.write(data).await;
    }

    async fn write(&mut self, data: &[u8]) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        if let Err(e) = w.write(data).await {
            // The writer removed its file; the rest is read and dropped.
            self.writer = None;
            self.error = Some(e);
        }
    }

    /// The data ended: the message to queue, or why it cannot be.
    pub async fn finish(mut self) -> Result<Received, Refused> {
        if self.header_too_big {
            return Err(Refused::HeaderTooBig);
        }
        if self.in_header && self.writer.is_some() {
            // No empty line: all of it is header section.
            self.end_of_header().await;
        }
        if let Some(e) = self.error.take() {
            return Err(Refused::Queue(e));
        }
        let Some(writer) = self.writer.take() else {
            return Err(Refused::Queue(QueueError::CommitterGone));
        };
        Ok(Received {
            writer,
            header: std::mem::take(&mut self.header),
            body_hashes: self.hashes.take().map(BodyHashes::finish),
            forged: self.forged,
        })
    }
}
