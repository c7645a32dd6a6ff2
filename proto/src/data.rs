//! The DATA body reader: finds the end of data, undoes dot-stuffing, and
//! enforces the size, line-length and bare-newline rules. Pure logic, no
//! I/O: the session feeds it bytes as they arrive and takes the message
//! octets it produced after each feed ([`DataReader::output`]), so that
//! they go to the body file as they come and the message is never held
//! in memory whole (only the line being read, and only its first octet).
//!
//! The end of data is only `CRLF . CRLF` (RFC 5321 §4.1.1.4), and a line
//! ends only with CRLF, so none of the smuggling variants (`LF . LF`,
//! `CR . CR`, `LF . CRLF` …; CVE-2023-51764) ends a message early. In
//! `reject` mode a bare CR or LF spoils the message; in `normalize` mode it
//! ends a line that is stored with CRLF (a lone dot on such a line stays a
//! dot: it is text, not the end of data).

use serde::Deserialize;

/// What to do with a bare CR or LF inside DATA (`[smtp] bare_newline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BareNewline {
    /// Refuse the message with 554 5.6.0 (SMTP smuggling defence).
    #[default]
    Reject,
    /// Treat a bare LF or CR as a line end and store CRLF.
    Normalize,
}

/// Why a message body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    TooBig,
    LineTooLong,
    BareNewline,
}

/// Reads one DATA body.
pub struct DataReader {
    mode: BareNewline,
    max_size: usize,
    /// Longest line, CRLF included; 0 = no limit.
    max_line: usize,
    /// Message octets produced and not yet taken by the session.
    out: Vec<u8>,
    /// Message octets produced in all.
    size: usize,
    /// Bytes of the current line seen (even when not kept).
    line_len: usize,
    /// The current line's first byte (a leading dot is held back until
    /// the line shows whether it is stuffing, a lone dot, or the end).
    first: u8,
    cr_pending: bool,
    /// The previous line ended with CRLF (or there was none): only then
    /// can a dot line end the data.
    after_crlf: bool,
    error: Option<DataError>,
}

impl DataReader {
    pub fn new(mode: BareNewline, max_size: usize, max_line: usize) -> Self {
        DataReader {
            mode,
            max_size,
            max_line,
            out: Vec::new(),
            size: 0,
            line_len: 0,
            first: 0,
            cr_pending: false,
            after_crlf: true,
            error: None,
        }
    }

    /// Feed bytes. Returns `Some(n)` once the end of data was found after
    /// consuming `n` bytes of `input` (the rest belongs to the next
    /// command); `None` when all of `input` was consumed and more is needed.
    pub fn feed(&mut self, input: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            if self.cr_pending {
                self.cr_pending = false;
                if input[i] == b'\n' {
                    i += 1;
                    if self.end_line(true) {
                        return Some(i);
                    }
                    continue;
                }
                self.bare();
                if self.mode == BareNewline::Normalize {
                    self.end_line(false);
                } else {
                    self.push(b"\r");
                }
                // input[i] is handled below as an ordinary byte.
            }
            match input[i] {
                b'\r' => {
                    self.cr_pending = true;
                    i += 1;
                }
                b'\n' => {
                    self.bare();
                    if self.mode == BareNewline::Normalize {
                        self.end_line(false);
                    } else {
                        self.push(b"\n");
                    }
                    i += 1;
                }
                _ => {
                    let run = input[i..]
                        .iter()
                        .position(|&b| b == b'\r' || b == b'\n')
                        .unwrap_or(input.len() - i);
                    self.push(&input[i..i + run]);
                    i += run;
                }
            }
        }
        None
    }

    /// The message octets produced since the last [`DataReader::clear_output`].
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// The session took the output.
    pub fn clear_output(&mut self) {
        self.out.clear();
    }

    /// Whether the message is spoiled already (what follows is only read
    /// to find its end).
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    fn bare(&mut self) {
        if self.mode == BareNewline::Reject && self.error.is_none() {
            self.error = Some(DataError::BareNewline);
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        let Some(&first) = bytes.first() else {
            return;
        };
        let start = self.line_len;
        self.line_len += bytes.len();
        if start == 0 {
            self.first = first;
            if first == b'.' {
                // Held back: see `end_line`.
                bytes = &bytes[1..];
            }
        }
        if self.error.is_some() {
            return;
        }
        // A line longer than the limit spoils the message.
        if self.max_line != 0 && self.line_len + 2 > self.max_line {
            self.error = Some(DataError::LineTooLong);
            return;
        }
        self.emit(bytes);
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.size + bytes.len() > self.max_size {
            self.error = Some(DataError::TooBig);
            self.out = Vec::new();
            return;
        }
        self.size += bytes.len();
        self.out.extend_from_slice(bytes);
    }

    /// A line ended. Returns true if it was the end-of-data dot line:
    /// `CRLF . CRLF` only — in normalize mode a line that ended with a bare
    /// newline does not make the next `.CRLF` the end (`\n.\r\n` is one
    /// of the smuggling variants).
    fn end_line(&mut self, crlf: bool) -> bool {
        let lone_dot = self.line_len == 1 && self.first == b'.';
        if crlf && self.after_crlf && lone_dot {
            return true;
        }
        self.after_crlf = crlf;
        if self.error.is_none() {
            // Dot-stuffing undone (§4.5.2: a leading dot with more on the
            // line was dropped in `push`). A lone dot that ended with a
            // bare newline (normalize mode) is not the end of data, and is
            // kept as it came.
            if lone_dot {
                self.emit(b".");
            }
            if self.error.is_none() {
                self.emit(b"\r\n");
            }
        }
        self.line_len = 0;
        false
    }

    /// The output not taken yet (CRLF line endings, dot-stuffing undone)
    /// or why the message was refused.
    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(mode: BareNewline, input: &[u8]) -> (Option<usize>, Result<Vec<u8>, DataError>) {
        let mut r = DataReader::new(mode, 1 << 20, 1000);
        let n = r.feed(input);
        (n, r.finish())
    }

    #[test]
    fn ends_on_crlf_dot_crlf_and_unstuffs() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        let (n, body) = read(BareNewline::Reject, input);
        assert_eq!(n, Some(input.len() - 6));
        assert_eq!(body.unwrap(), b"Subject: x\r\n\r\n.leading dot\r\n");
    }

    #[test]
    fn end_found_across_feeds() {
        let mut r = DataReader::new(BareNewline::Reject, 1 << 20, 1000);
        for chunk in [&b"a\r"[..], b"\n.", b"\r", b"\nNOOP\r\n"] {
            if let Some(n) = r.feed(chunk) {
                assert_eq!(&chunk[n..], b"NOOP\r\n");
                assert_eq!(r.finish().unwrap(), b"a\r\n");
                return;
            }
        }
        panic!("end of data not found");
    }

    /// Fed a byte at a time and taken after each feed, the output is the
    /// same message, and nothing is kept once taken.
    #[test]
    fn output_streams_as_fed() {
        let input = b"Subject: x\r\n\r\n..a\r\n.b\r\nlast line\r\n.\r\n";
        let (_, whole) = read(BareNewline::Reject, input);
        let mut r = DataReader::new(BareNewline::Reject, 1 << 20, 1000);
        let mut taken = Vec::new();
        for (i, b) in input.iter().enumerate() {
            let end = r.feed(std::slice::from_ref(b));
            taken.extend_from_slice(r.output());
            r.clear_output();
            assert!(r.output().is_empty());
            if end.is_some() {
                assert_eq!(i, input.len() - 1);
                break;
            }
        }
        assert_eq!(r.finish().unwrap(), b"");
        assert_eq!(taken, whole.unwrap());
        assert_eq!(taken, b"Subject: x\r\n\r\n.a\r\nb\r\nlast line\r\n");
    }

    #[test]
    fn empty_message() {
        let (n, body) = read(BareNewline::Reject, b".\r\n");
        assert_eq!(n, Some(3));
        assert_eq!(body.unwrap(), b"");
    }

    /// hannob/smtpsmug's end-of-data variants: none ends the message, and
    /// each spoils it in reject mode.
    #[test]
    fn smuggling_variants_do_not_end_data() {
        let variants: [&[u8]; 9] = [
            b"\n.\n",
            b"\r.\r",
            b"\r.\n",
            b"\n.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r\n",
            b"\r\n.\r",
            b"\r\n\x00.\r\n",
        ];
        for v in variants {
            let mut input = b"Subject: a\r\n\r\nfirst".to_vec();
            input.extend_from_slice(v);
            input.extend_from_slice(b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n");
            let mut r = DataReader::new(BareNewline::Reject, 1 << 20, 1000);
            assert_eq!(r.feed(&input), None, "variant {v:?} ended data early");
            assert_eq!(r.feed(b"\r\n.\r\n"), Some(5));
            let result = r.finish();
            if v == b"\r\n\x00.\r\n" {
                // No bare newline, just a NUL: one message, nothing smuggled.
                let body = result.unwrap();
                assert!(body.windows(8).any(|w| w == b"smuggled"));
            } else {
                assert_eq!(result, Err(DataError::BareNewline), "variant {v:?}");
            }
        }
    }

    /// In normalize mode too, every variant is text: one message, the
    /// would-be commands in it, each bare CR or LF stored as CRLF.
    #[test]
    fn smuggling_variants_in_normalize_mode() {
        for (v, stored) in [
            (&b"\n.\n"[..], &b"first\r\n.\r\nMAIL"[..]),
            (b"\r.\r", b"first\r\n.\r\nMAIL"),
            (b"\r.\n", b"first\r\n.\r\nMAIL"),
            (b"\n.\r", b"first\r\n.\r\nMAIL"),
            (b"\n.\r\n", b"first\r\n.\r\nMAIL"),
            (b"\r\n.\n", b"first\r\n.\r\nMAIL"),
            (b"\r.\r\n", b"first\r\n.\r\nMAIL"),
            (b"\r\n.\r", b"first\r\n.\r\nMAIL"),
            (b"\r\n\x00.\r\n", b"first\r\n\x00.\r\nMAIL"),
        ] {
            let mut input = b"first".to_vec();
            input.extend_from_slice(v);
            input.extend_from_slice(b"MAIL FROM:<evil@x>\r\n");
            let mut r = DataReader::new(BareNewline::Normalize, 1 << 20, 1000);
            assert_eq!(r.feed(&input), None, "variant {v:?} ended data early");
            assert_eq!(r.feed(b".\r\n"), Some(3));
            let body = r.finish().unwrap();
            assert!(body.starts_with(stored), "{v:?}: {body:?}");
        }
    }

    #[test]
    fn normalize_mode_stores_crlf_but_still_ends_only_on_crlf() {
        let input = b"a\nb\rc\n.\nd\r\n.\r\n";
        let (n, body) = read(BareNewline::Normalize, input);
        assert_eq!(n, Some(input.len()));
        assert_eq!(body.unwrap(), b"a\r\nb\r\nc\r\n.\r\nd\r\n");
    }

    #[test]
    fn too_big_and_too_long() {
        let mut r = DataReader::new(BareNewline::Reject, 10, 1000);
        assert!(r.feed(b"0123456789abc\r\n.\r\n").is_some());
        assert_eq!(r.finish(), Err(DataError::TooBig));

        let mut long = vec![b'x'; 999];
        long.extend_from_slice(b"\r\n.\r\n");
        let (_, body) = read(BareNewline::Reject, &long);
        assert_eq!(body, Err(DataError::LineTooLong));

        let mut ok = vec![b'x'; 998];
        ok.extend_from_slice(b"\r\n.\r\n");
        let (_, body) = read(BareNewline::Reject, &ok);
        assert_eq!(body.unwrap().len(), 1000);
    }

    #[test]
    fn a_dot_after_a_long_line_still_ends() {
        let mut input = vec![b'y'; 5000];
        input.extend_from_slice(b"\r\n.\r\n");
        let (n, body) = read(BareNewline::Reject, &input);
        assert_eq!(n, Some(input.len()));
        assert_eq!(body, Err(DataError::LineTooLong));
    }
}
