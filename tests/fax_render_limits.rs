//! Rendering within limits, with the real binary: each fax document is
//! rendered by a worker process under a memory limit, a CPU limit and a
//! deadline. A PDF bomb (a small file whose stream inflates to a
//! gigabyte), a PNG decompression bomb (6000×6000 RGBA16) and PostScript
//! that loops forever each fail their fax with a report naming the part,
//! the server stays up and other mail flows. A worker that keeps crashing
//! on a message (a failpoint) gets the message quarantined: held, the
//! sender told, and the server starts again with it in the queue.

mod common;
use common::*;
use std::path::Path;

#[path = "../transports/fax/tests/fixtures/fax/messages.rs"]
#[allow(dead_code)]
mod fixtures;

/// The fax domain, the simulated engine, alice as fax user, and tight
/// render limits: 256 MB, `timeout` (the bombs get time enough to reach
/// the memory limit in a debug build on a loaded machine).
fn config(work: &Path, timeout: &str) -> String {
    let w = work.display();
    format!(
        r#"
[[domain]]
name = "fax.localhost"
kind = "fax"
[fax]
# Fax requests come from a client that is not trusted: the fax user
# directory decides (tests/fax_addressing.rs shows the default).
senders = "any"
retries = 0
retry_interval = "1s"
spool = "{w}/spool"
render_memory = "256M"
render_timeout = "{timeout}"
render_concurrency = 1
[fax.simulated]
received = "{w}/remote"
inbound = "{w}/inbound"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
[[fax.user]]
address = "alice@example.test"
"#
    )
}

/// A PDF of one page whose content stream is `gib` GiB of zeros, deflated
/// (about 1 MB a GiB).
fn pdf_bomb(path: &Path, gib: u32) {
    python(
        r#"
import sys, zlib
path, gib = sys.argv[1], int(sys.argv[2])
c = zlib.compressobj(9)
zero = bytes(1 << 20)
parts = [c.compress(zero) for _ in range(gib * 1024)]
parts.append(c.flush())
stream = b''.join(parts)
objs = [
    b'<< /Type /Catalog /Pages 2 0 R >>',
    b'<< /Type /Pages /Count 1 /Kids [3 0 R] >>',
    b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>',
    b'<< /Length %d /Filter /FlateDecode >>\nstream\n' % len(stream) + stream + b'\nendstream',
]
out = bytearray(b'%PDF-1.4\n')
offsets = []
for i, o in enumerate(objs):
    offsets.append(len(out))
    out += b'%d 0 obj\n' % (i + 1) + o + b'\nendobj\n'
xref = len(out)
out += b'xref\n0 %d\n0000000000 65535 f \n' % (len(objs) + 1)
for off in offsets:
    out += b'%010d 00000 n \n' % off
out += b'trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n' % (len(objs) + 1, xref)
open(path, 'wb').write(out)
"#,
        &[path.to_str().unwrap(), &gib.to_string()],
    );
}

/// A 6000×6000 RGBA PNG at 16 bits a sample, all zero: about 280 KB
/// that decode to 288 MB.
fn png_bomb(path: &Path) {
    python(
        r#"
import sys, zlib, struct
w = h = 6000
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
c = zlib.compressobj(9)
row = bytes(1 + w * 8)
idat = b''.join(c.compress(row) for _ in range(h)) + c.flush()
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, 6, 0, 0, 0)) \
    + chunk(b'IDAT', idat) + chunk(b'IEND', b'')
open(sys.argv[1], 'wb').write(png)
"#,
        &[path.to_str().unwrap()],
    );
}

/// The mail in alice's Maildir whose text contains `needle`.
fn mail_with(s: &Server, needle: &str, secs: u64) -> String {
    let mut found = String::new();
    wait_until(secs, || {
        for f in s.maildir("example.test", "alice") {
            let text = String::from_utf8_lossy(&read(&f)).into_owned();
            if text.contains(needle) {
                found = text;
                return true;
            }
        }
        false
    });
    assert!(!found.is_empty(), "no mail with {needle:?}:\n{}", s.log());
    found
}

/// Mail to bob still flows.
fn mail_flows(s: &Server) {
    send(
        s,
        "alice@example.test",
        "bob@example.test",
        "Subject: still here\r\n\r\nHello\r\n",
    );
    assert_eq!(s.wait_maildir("example.test", "bob", 1, 20).len(), 1);
}

/// A fax with `attachment` (type, file name, octets) after a text part.
fn fax_with(s: &Server, ct: &str, name: &str, data: Vec<u8>) -> String {
    let msg = fixtures::message(
        name,
        &[
            fixtures::Part("text/plain", None, b"See the attachment.\r\n".to_vec()),
            fixtures::Part(ct, Some(name), data),
        ],
    );
    send(
        s,
        "alice@example.test",
        "+15551234567@fax.localhost",
        &String::from_utf8(msg).unwrap(),
    )
}

#[test]
fn a_pdf_bomb_fails_its_fax_and_the_server_stays_up() {
    let work = tempfile::tempdir().unwrap();
    let bomb = work.path().join("bomb.pdf");
    pdf_bomb(&bomb, 1);
    let size = std::fs::metadata(&bomb).unwrap().len();
    assert!(size < 2 << 20, "a small file: {size}");
    let mut s = Server::start_with("", &config(work.path(), "60s"));
    let id = fax_with(&s, "application/pdf", "bomb.pdf", read(&bomb));
    let report = mail_with(&s, "Subject: Fax to +15551234567 failed", 120);
    assert_contains(&report, "part 2 \"bomb.pdf\" (application/pdf)");
    assert_contains(&report, "needs more than the limit of 256 MB of memory");
    assert_contains(&report, "X-Fax-Result: render-failed");
    wait_status(&s, &id, "+15551234567@fax.localhost", "bounced", 5);
    assert!(s.running(), "the server died:\n{}", s.log());
    mail_flows(&s);
    // And a good fax after it goes out.
    let ok = fax_with(
        &s,
        "application/pdf",
        "letter.pdf",
        fixtures::pdf(&[(595, 842, fixtures::PDF_PAGE)]),
    );
    wait_status(&s, &ok, "+15551234567@fax.localhost", "sent", 60);
}

#[test]
fn postscript_that_loops_forever_hits_the_deadline() {
    let work = tempfile::tempdir().unwrap();
    let mut s = Server::start_with("", &config(work.path(), "5s"));
    let started = std::time::Instant::now();
    let id = fax_with(
        &s,
        "application/postscript",
        "loop.ps",
        b"%!PS-Adobe-3.0\n{ } loop\nshowpage\n".to_vec(),
    );
    let report = mail_with(&s, "Subject: Fax to +15551234567 failed", 60);
    assert_contains(&report, "part 2 \"loop.ps\" (application/postscript)");
    assert_contains(&report, "took longer than the limit of 5s");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "not cut at the deadline"
    );
    wait_status(&s, &id, "+15551234567@fax.localhost", "bounced", 5);
    assert!(s.running());
    mail_flows(&s);
}

#[test]
fn a_png_decompression_bomb_fails_within_the_limits() {
    let work = tempfile::tempdir().unwrap();
    let bomb = work.path().join("bomb.png");
    png_bomb(&bomb);
    let size = std::fs::metadata(&bomb).unwrap().len();
    assert!(size < 1 << 20, "a small file: {size}");
    let mut s = Server::start_with("", &config(work.path(), "60s"));
    let id = fax_with(&s, "image/png", "bomb.png", read(&bomb));
    let report = mail_with(&s, "Subject: Fax to +15551234567 failed", 60);
    assert_contains(&report, "part 2 \"bomb.png\" (image/png)");
    assert_contains(&report, "256 MB");
    wait_status(&s, &id, "+15551234567@fax.localhost", "bounced", 5);
    assert!(s.running());
    mail_flows(&s);
}

/// A worker that dies on a message without passing a limit (a failpoint
/// makes every worker abort): tried `render_crash_limit` (3) times, then
/// the message is held and the sender told; a restart starts with it held.
#[test]
fn a_message_that_keeps_crashing_the_renderer_is_quarantined() {
    let work = tempfile::tempdir().unwrap();
    let mut s = Server::start_with_env(
        "",
        &config(work.path(), "60s"),
        &[("FAXMTA_FAILPOINT", "render-worker-crash")],
    );
    let id = send(
        &s,
        "alice@example.test",
        "+15551234567@fax.localhost",
        "Subject: crashes\r\n\r\nHello\r\n",
    );
    let report = mail_with(&s, "held in quarantine", 60);
    assert_contains(&report, "the fax renderer crashed 3 times on this message");
    assert_contains(&report, "Action: delayed");
    assert_contains(&s.log(), &format!("{id}: quarantined"));
    let held = |s: &Server| find_queued(s, &id).is_some_and(|e| e["held"] == true);
    assert!(
        wait_until(10, || held(&s)),
        "not held: {:?}",
        find_queued(&s, &id)
    );
    assert!(s.running());
    mail_flows(&s);
    // The queue starts with it, still held.
    assert!(s.stop());
    s.env.clear();
    s.spawn();
    assert!(held(&s), "{:?}", find_queued(&s, &id));
    assert_eq!(
        s.log()
            .matches("the fax renderer crashed on the message")
            .count(),
        3,
        "tried again after the restart"
    );
}
