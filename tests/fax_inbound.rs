//! Received faxes end to end with the real binary: `faxmta fax
//! simulate-incoming` makes a simulated fax machine call the server's
//! simulated engine over real T.30 (spandsp); the incoming routing table
//! turns the fax into mail in the queue, delivered to Maildirs. The
//! directory rule sends DID 100 to alice as PDF; a direct rule sends DID
//! 200 to bob as TIFF, pixel for pixel what the machine sent; a rule with
//! `continue` copies NANP callers' faxes to a second address and a
//! folder; an unknown DID goes to the default recipient; a failed
//! reception sends the "Incoming Failed" notice; zero retention deletes
//! an image at the purge once its mail was delivered, not before.

mod common;
use common::*;
use faxmta_fax::page::{Compression, Page, Resolution};
use faxmta_fax::tiff::{decode_tiff, read_tiff, write_tiff_f, ReadLimits, TiffHeader};
use mail_parser::{MessageParser, MimeHeaders};
use std::path::{Path, PathBuf};

fn config(work: &Path) -> String {
    let w = work.display();
    format!(
        r#"
[fax]
# Fax requests come from a client that is not trusted: the fax user
# directory decides (tests/fax_addressing.rs shows the default).
senders = "any"
tsi = "+1 555 0100"
cover_page = false
spool = "{w}/spool"
[fax.simulated]
received = "{w}/remote"
inbound = "{w}/inbound"
[fax.incoming]
default_to = ["postmaster@example.test"]
store = "{w}/faxes"
[[fax.incoming.rule]]
name = "nanp-copy"
ani = "+1555*"
to = ["copy@localhost"]
folder = "{w}/folder"
continue = true
[[fax.incoming.rule]]
name = "sales"
did = "200"
to = ["bob@example.test"]
format = "tiff"
[[fax.user]]
address = "alice@example.test"
numbers = ["+1 555 0100", "100"]
"#
    )
}

/// A 2-page fine fax: a black box on each page, in a different place.
fn pages() -> Vec<Page> {
    (0..2u32)
        .map(|n| {
            let mut p = Page::blank(1728, 1200, Resolution::Fine);
            for y in 100 + n * 300..400 + n * 300 {
                for x in 200..900 {
                    p.set(x, y, true);
                }
            }
            p
        })
        .collect()
}

fn document(work: &Path) -> PathBuf {
    let tif = work.join("incoming.tif");
    write_tiff_f(&tif, &pages(), Compression::Mh, &TiffHeader::default()).unwrap();
    tif
}

fn call(s: &Server, did: &str, ani: &str, file: &Path) -> std::process::Output {
    s.cli(&[
        "fax",
        "simulate-incoming",
        "--did",
        did,
        "--ani",
        ani,
        "--tsi",
        "REMOTE FAX",
        file.to_str().unwrap(),
    ])
}

/// The one mail in a Maildir (waited for), parsed: (raw text, the
/// attachment's name and bytes).
fn one_mail(s: &Server, domain: &str, user: &str) -> (String, Option<(String, Vec<u8>)>) {
    let files = s.wait_maildir(domain, user, 1, 60);
    assert_eq!(files.len(), 1, "{user}@{domain}: {files:?}\n{}", s.log());
    let raw = read(&files[0]);
    let message = MessageParser::default().parse(&raw).unwrap();
    let attachment = message.attachments().next().map(|a| {
        (
            a.attachment_name().unwrap_or_default().to_string(),
            a.contents().to_vec(),
        )
    });
    (String::from_utf8_lossy(&raw).into_owned(), attachment)
}

/// The pages of a PDF, as the fax renderer (hayro) reads them: through
/// `faxmta fax render` of a mail carrying it.
fn pdf_pages(s: &Server, work: &Path, mail: &str) -> Vec<faxmta_fax::tiff::ReadPage> {
    let msg = work.join("pdf-mail.eml");
    std::fs::write(&msg, mail).unwrap();
    let out = work.join("pdf-mail.tif");
    let o = s.cli(&[
        "fax",
        "render",
        msg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", output_text(&o));
    read_tiff(&out).unwrap()
}

#[test]
fn received_faxes_are_routed_to_mailboxes_and_folders() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &config(work.path()));
    let doc = document(work.path());

    // DID 100 from Berlin: the directory rule, alice, PDF.
    let o = call(&s, "100", "+4930123456", &doc);
    assert!(o.status.success(), "{}\n{}", output_text(&o), s.log());
    assert_contains(&output_text(&o), "2 page(s)");
    let (raw, attachment) = one_mail(&s, "example.test", "alice");
    assert_contains(&raw, "fax-daemon@mx.example.test");
    assert_contains(&raw, "Subject: Fax from +4930123456 (2 pages)");
    assert_contains(&raw, "REMOTE FAX");
    let (name, pdf) = attachment.expect("a PDF attachment");
    assert!(name.ends_with(".pdf"), "{name}");
    assert!(pdf.starts_with(b"%PDF-"));
    // The renderer reads the PDF back: the text part's page, then the
    // 2 PDF pages placed on A4 (scaled by about 0.98 to fit its width),
    // ink where the boxes are (700×300 dots: about 5 % of the sheet).
    let rendered = pdf_pages(&s, work.path(), &raw);
    assert_eq!(rendered.len(), 3, "{rendered:?}");
    for (n, page) in rendered[1..].iter().enumerate() {
        let fax = page.to_fax_page().unwrap();
        let black = fax.black_pixels() as f64 / f64::from(fax.width * fax.height);
        assert!((0.03..0.08).contains(&black), "page {n}: {black}");
        let y = 250 + n as u32 * 300;
        assert!(fax.get(550, y), "page {n}: box missing");
        assert!(!fax.get(1400, y), "page {n}: ink right of the box");
        assert!(!fax.get(550, y + 400), "page {n}: ink below the box");
    }
    // Kept in the store, with the record of the mail that carries it.
    let stored: Vec<PathBuf> = std::fs::read_dir(work.path().join("faxes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        stored
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "tif")),
        "{stored:?}"
    );
    assert!(
        stored
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "queue")),
        "{stored:?}"
    );

    // DID 200 from a NANP caller: "nanp-copy" (continue) copies it to
    // copy@localhost and the folder, then "sales" gives bob the TIFF.
    let o = call(&s, "200", "+1 555 123 4567", &doc);
    assert!(o.status.success(), "{}", output_text(&o));
    let (raw, attachment) = one_mail(&s, "example.test", "bob");
    assert_contains(&raw, "Subject: Fax from +1 555 123 4567 (2 pages)");
    let (name, tif) = attachment.expect("a TIFF attachment");
    assert!(name.ends_with(".tif"), "{name}");
    let got = decode_tiff(&tif, &ReadLimits::default()).unwrap();
    let sent = pages();
    assert_eq!(got.len(), 2);
    for (g, p) in got.iter().zip(&sent) {
        assert_eq!(g.to_fax_page().unwrap().bits, p.bits, "the received pixels");
    }
    let (_, copy) = one_mail(&s, "localhost", "copy");
    assert!(copy.expect("the copy").0.ends_with(".pdf"));
    let folder: Vec<PathBuf> = std::fs::read_dir(work.path().join("folder"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folder.len(), 1, "{folder:?}");
    assert!(read(&folder[0]).starts_with(b"%PDF-"));
    // alice (DID 100 only) got nothing more.
    assert_eq!(s.maildir("example.test", "alice").len(), 1);

    // An unknown DID: the default rule.
    let o = call(&s, "999", "+4930123456", &doc);
    assert!(o.status.success(), "{}", output_text(&o));
    let (raw, attachment) = one_mail(&s, "example.test", "postmaster");
    assert_contains(&raw, "Subject: Fax from +4930123456 (2 pages)");
    assert!(attachment.is_some());
    assert_contains(&s.log(), "[rules: default]");

    let metrics = s.http_get("/metrics");
    assert_contains(&metrics, "faxmta_fax_received_total{status=\"complete\"} 3");
}

#[test]
fn a_failed_reception_sends_the_incoming_failed_notice() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &config(work.path()));
    // Not a TIFF: the calling machine cannot send a page; the call fails.
    let junk = work.path().join("junk.tif");
    std::fs::write(&junk, b"this is not a fax").unwrap();
    let o = call(&s, "100", "+4930123456", &junk);
    assert!(!o.status.success(), "{}", output_text(&o));
    assert_contains(&output_text(&o), "failed after 0 page(s)");
    let (raw, attachment) = one_mail(&s, "example.test", "alice");
    assert_contains(
        &raw,
        "Subject: Incoming Failed: fax from +4930123456 (0 page(s) received)",
    );
    assert_contains(&raw, "No page arrived.");
    assert!(attachment.is_none());
    // Nothing else was routed (the default recipient got nothing: once
    // the queue is empty, a notice to it would have been delivered).
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    assert!(s.maildir("example.test", "postmaster").is_empty());
    // A number with no users: the default recipient hears of it.
    let o = call(&s, "555", "+4930123456", &junk);
    assert!(!o.status.success());
    let (raw, _) = one_mail(&s, "example.test", "postmaster");
    assert_contains(&raw, "Incoming Failed");
    let metrics = s.http_get("/metrics");
    assert_contains(&metrics, "faxmta_fax_received_total{status=\"failed\"} 2");
}

/// The `.tif` files in a directory, sorted.
fn tifs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.extension().is_some_and(|e| e == "tif"));
    out.sort();
    out
}

#[test]
fn zero_retention_deletes_an_image_once_its_mail_is_delivered() {
    let work = tempfile::tempdir().unwrap();
    let mut s = Server::start_with("", &config(work.path()));
    let doc = document(work.path());
    let store = work.path().join("faxes");
    // One fax delivered (alice), one whose mail cannot be delivered yet
    // (bob's Maildir is blocked: it waits in the queue).
    block(&s, "bob");
    let o = call(&s, "100", "+4930123456", &doc);
    assert!(o.status.success(), "{}", output_text(&o));
    s.wait_maildir("example.test", "alice", 1, 30);
    let delivered = tifs(&store);
    assert_eq!(delivered.len(), 1);
    let o = call(&s, "200", "+4930123456", &doc);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(wait_until(30, || s.log().contains("for bob@example.test")));
    let waiting: Vec<PathBuf> = tifs(&store)
        .into_iter()
        .filter(|p| !delivered.contains(p))
        .collect();
    assert_eq!(waiting.len(), 1);
    // Kept 90 days by default: the purge at start deletes nothing.
    restart_with(&mut s, &[]);
    assert_eq!(tifs(&store).len(), 2);
    // Zero retention: the delivered one goes at start, the other stays.
    restart_with(
        &mut s,
        &[(
            "[fax.incoming]\n",
            "[fax.incoming]\nzero_retention = true\n",
        )],
    );
    // The purge counts its deletions at the end of its pass (each file
    // goes, and is logged, before): wait for the count, then look.
    assert!(
        wait_until(10, || s
            .http_get("/metrics")
            .contains("faxmta_fax_images_purged_total 1\n")),
        "{:?}\n{}",
        tifs(&store),
        s.log()
    );
    assert_eq!(tifs(&store), waiting);
    assert_contains(
        &s.log(),
        &format!(
            "fax image {} deleted (retention 0 days)",
            delivered[0].display()
        ),
    );
    // bob's fax mail waited in the queue like any mail (deferred: his
    // Maildir cannot be written) …
    let queued = queue_json(&s);
    assert_eq!(queued.len(), 1, "{queued:?}");
    let rcpt = &queued[0]["recipients"][0];
    assert_eq!(rcpt["address"], "bob@example.test");
    assert_eq!(rcpt["state"], "deferred", "{rcpt}");
    // … and arrives once it can; then its image goes too.
    unblock(&s, "bob");
    s.wait_maildir("example.test", "bob", 1, 30);
    assert!(wait_queue_empty(&s, 30));
    restart_with(&mut s, &[]);
    // (The count comes at the end of the purge's pass, as above.)
    assert!(
        wait_until(10, || s
            .http_get("/metrics")
            .contains("faxmta_fax_images_purged_total 1\n")),
        "{:?}\n{}",
        tifs(&store),
        s.log()
    );
    assert!(tifs(&store).is_empty(), "{:?}", tifs(&store));
}

/// The disk reserve: while less than `[queue]
/// min_free` is free, a received fax is not queued and not acknowledged
/// — it stays with the engine (its hand-over record stays) and is tried
/// again; with room (here: at the next start) it is routed.
#[test]
fn below_the_disk_reserve_a_received_fax_stays_with_the_engine() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut s = Server::start_with("", &config(w));
    // A reserve larger than any disk: always below it.
    restart_with(
        &mut s,
        &[(
            "lifetime = \"1h\"\n",
            "lifetime = \"1h\"\nmin_free = \"1000000G\"\n",
        )],
    );
    let tif = document(w);
    let o = call(&s, "200", "+4930123456", &tif);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        wait_until(20, || s.log().contains("not taken from the engine yet")),
        "{}",
        s.log()
    );
    assert_contains(&s.log(), "insufficient system storage");
    assert!(queue_json(&s).is_empty(), "{:?}", queue_json(&s));
    let records = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "rx"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(records(&w.join("inbound")).len(), 1, "not acknowledged");
    assert!(s.maildir("example.test", "bob").is_empty());

    restart_with(&mut s, &[("min_free = \"1000000G\"", "min_free = \"0\"")]);
    let (raw, attachment) = one_mail(&s, "example.test", "bob");
    assert_contains(&raw, "+4930123456");
    assert!(attachment.is_some(), "{raw}");
    assert!(
        wait_until(10, || records(&w.join("inbound")).is_empty()),
        "acknowledged once queued"
    );
}

/// A received fax handed on to a folder and moved into
/// the store is on disk — each file fsynced, and each directory that got
/// a new name — before the engine removes its source (the simulated
/// engine's record, as the spool engine's board files or HylaFAX's DELE).
#[test]
fn a_received_fax_is_fsynced_into_folder_and_store_before_its_source_goes() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &config(work.path()));
    let doc = document(work.path());
    let out = work.path().join("trace");
    let mut strace = strace(
        s.pid(),
        &out,
        "openat,fsync,fdatasync,rename,renameat,renameat2,link,linkat,unlink,unlinkat",
    );
    // "nanp-copy": the folder and copy@localhost, then the store.
    let o = call(&s, "200", "+1 555 123 4567", &doc);
    assert!(o.status.success(), "{}\n{}", output_text(&o), s.log());
    let inbound = work.path().join("inbound").display().to_string();
    // The acknowledgement: the record in inbound/ is removed.
    let acked = |t: &str| {
        t.lines()
            .any(|l| l.contains("unlink") && l.contains(&inbound) && l.contains(".rx\""))
    };
    assert!(
        wait_until(30, || std::fs::read_to_string(&out)
            .is_ok_and(|t| acked(&t))),
        "the fax was not acknowledged:\n{}",
        s.log()
    );
    let _ = std::process::Command::new("kill")
        .arg(strace.id().to_string())
        .status();
    let _ = strace.wait();

    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let ack = lines
        .iter()
        .position(|l| acked(l))
        .expect("the record's removal");
    let before = &lines[..ack];
    let folder = work.path().join("folder").display().to_string();
    let store = work.path().join("faxes").display().to_string();
    let fsynced = |path_end: &str| {
        before
            .iter()
            .any(|l| l.contains("fsync(") && l.contains(&format!("{path_end}>)")))
    };
    let folder_file = std::fs::read_dir(work.path().join("folder"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .next()
        .expect("the folder's file");
    let stored = std::fs::read_dir(work.path().join("faxes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".tif"))
        .expect("the stored image");
    let report = || format!("{}\n", before.join("\n"));
    // The folder's file was written under a dot name, fsynced, renamed.
    assert!(
        fsynced(&format!("{folder}/.{folder_file}")),
        "the folder's file is not fsynced before the source goes:\n{}",
        report()
    );
    assert!(
        fsynced(&folder),
        "the folder is not fsynced before the source goes:\n{}",
        report()
    );
    assert!(
        fsynced(&store),
        "the store's directory is not fsynced after the move, before the source goes:\n{}",
        report()
    );
    // The image itself was synced when the engine wrote it (same inode,
    // moved by rename).
    assert!(
        before
            .iter()
            .any(|l| l.contains("fsync(") && l.contains(&inbound) && l.contains(".tif>)")),
        "the received image is not fsynced:\n{}",
        report()
    );
    assert!(work.path().join("faxes").join(&stored).exists());
}
