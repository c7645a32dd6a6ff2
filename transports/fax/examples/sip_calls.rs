//! A benchmark driver for the SIP engine (bench/fax-sip.sh runs it): two
//! [`SipEngine`]s in this one process on loopback, each the other's trunk
//! (as in the engine's own tests), fax a document to each other over T.38
//! or G.711, C calls at once, and the figures are printed as one
//! tab-separated line. It asserts nothing about speed.
//!
//!     sip_calls render MAIL OUT.tif [fine|standard]
//!         renders the mail with faxmta's renderer (A4, no cover page),
//!         writes it as TIFF-F (MH; spandsp recodes it for the line) and
//!         prints, per page, `page N ROWS T6_BYTES`: the page coded T.6,
//!         what crosses a V.17 ECM line when both ends offer T.6.
//!     sip_calls calls DOC.tif PAGES t38|g711 C [TIMEOUT_S [RAMP_MS]]
//!         C calls at once from engine A to engine B (separate SIP ports
//!         and media port ranges), each sending DOC.tif, started RAMP_MS
//!         apart (default 0: all in one burst); prints
//!         `calls MODE C SENT_OK RECV_OK CALL_MED CALL_MIN CALL_MAX WALL
//!         CPU_USER CPU_SYS BEHIND MISSED LOST PROBE_P99_MS PROBE_MAX_MS
//!         FAILURES`.
//!
//! CPU is the process's (getrusage RUSAGE_SELF, every thread) from the
//! first INVITE to the last received fax: both ends of every call, the
//! sender and the receiver, are in it. Pacing: the engine's audio session
//! says in a debug event when it fell more than 5 ticks behind and
//! restarted its schedule (`BEHIND` events, `MISSED` ticks, caught here
//! by a small tracing subscriber); the T.38 session catches up by
//! deadline and says nothing, so a probe thread paced exactly like the
//! media threads (a 20 ms deadline schedule, sleeping between ticks)
//! measures how late its ticks wake up under the same load (`PROBE_*`).
//! `LOST`: packets the receivers counted lost (UDPTL gaps not recovered,
//! RTP missing from the jitter buffer), from the sessions' end events.

use faxmta_fax::engine::sip::media::{T38Params, G711};
use faxmta_fax::engine::sip::settings::{SipSettings, T38Mode, Transport, Trunk};
use faxmta_fax::engine::sip::SipEngine;
use faxmta_fax::engine::{FaxEngine, Reception, SendRequest, SendResult};
use faxmta_fax::page::{Page, Resolution};
use faxmta_fax::render::{render, RenderOptions};
use faxmta_fax::tiff::{write_tiff_f, TiffHeader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("render") => render_cmd(&args[1..]),
        Some("calls") => calls_cmd(&args[1..]),
        _ => Err("usage: sip_calls render MAIL OUT.tif [fine|standard] | \
                  sip_calls calls DOC.tif PAGES t38|g711 C [TIMEOUT_S [RAMP_MS]]"
            .into()),
    };
    if let Err(e) = result {
        eprintln!("sip_calls: {e}");
        std::process::exit(1);
    }
}

// --- render ---------------------------------------------------------------

fn render_cmd(args: &[String]) -> Result<(), Error> {
    let [mail, out, rest @ ..] = args else {
        return Err("render MAIL OUT.tif [fine|standard]".into());
    };
    let resolution = match rest.first().map(String::as_str) {
        None | Some("fine") => Resolution::Fine,
        Some("standard") => Resolution::Standard,
        Some(other) => return Err(format!("resolution {other:?}: fine or standard").into()),
    };
    let message = std::fs::read(mail).map_err(|e| format!("{mail}: {e}"))?;
    let opts = RenderOptions {
        resolution,
        ..RenderOptions::default()
    };
    let pages = render(&message, &opts)
        .map_err(|e| format!("rendering {mail}: {e}"))?
        .into_pages();
    write_tiff_f(
        Path::new(out),
        &pages,
        faxmta_fax::page::Compression::Mh,
        &TiffHeader::default(),
    )
    .map_err(|e| format!("writing {out}: {e}"))?;
    for (i, page) in pages.iter().enumerate() {
        println!("page\t{}\t{}\t{}", i + 1, page.height, t6_bytes(page));
    }
    Ok(())
}

/// The page coded T.6 (MMR), as the line carries it with ECM.
fn t6_bytes(page: &Page) -> usize {
    use fax::encoder::Encoder;
    use fax::{Color, VecWriter};
    let stride = page.width.div_ceil(8) as usize;
    let mut encoder = Encoder::new(VecWriter::new());
    for y in 0..page.height as usize {
        let row = page.bits.get(y * stride..(y + 1) * stride).unwrap_or(&[]);
        let pels = (0..page.width as usize).map(|x| {
            if row.get(x / 8).is_some_and(|b| b & (0x80 >> (x % 8)) != 0) {
                Color::Black
            } else {
                Color::White
            }
        });
        match encoder.encode_line(pels, page.width) {
            Ok(()) => {}
            Err(e) => match e {},
        }
    }
    match encoder.finish() {
        Ok(w) => w.finish().len(),
        Err(e) => match e {},
    }
}

// --- calls ----------------------------------------------------------------

/// What the engine's debug events told about pacing and loss.
#[derive(Default)]
struct Seen {
    behind: AtomicU64,
    missed: AtomicU64,
    lost: AtomicU64,
}

/// A tracing subscriber that only reads the SIP engine's session events.
struct Catcher(Arc<Seen>);

/// The fields of one event, as text.
#[derive(Default)]
struct Fields {
    message: String,
    values: Vec<(String, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.values.push((field.name().into(), value.to_string()));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.values
                .push((field.name().into(), format!("{value:?}")));
        }
    }
}

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `lost: N` inside a Debug-formatted struct.
fn debug_field(text: &str, name: &str) -> Option<u64> {
    let at = text.find(&format!("{name}: "))? + name.len() + 2;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

impl tracing::Subscriber for Catcher {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if self.enabled(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.is_event()
            && (meta.target().ends_with("sip::audio_session")
                || meta.target().ends_with("sip::t38_session"))
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let num = |v: Option<&str>| v.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        if f.message.contains("fell behind") {
            self.0.behind.fetch_add(1, Ordering::Relaxed);
            self.0
                .missed
                .fetch_add(num(f.get("missed")), Ordering::Relaxed);
        } else if f.message.contains("T.38 session ended") {
            self.0.lost.fetch_add(num(f.get("lost")), Ordering::Relaxed);
        } else if f.message.contains("audio fax session ends") {
            let lost = f.get("jitter").and_then(|j| debug_field(j, "lost"));
            self.0.lost.fetch_add(lost.unwrap_or(0), Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn free_udp() -> Result<SocketAddr, Error> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?)
}

fn settings(
    listen: SocketAddr,
    peer: SocketAddr,
    t38: T38Mode,
    media_ports: std::ops::RangeInclusive<u16>,
    dir: &Path,
    max_calls: usize,
) -> SipSettings {
    SipSettings {
        listen,
        public_address: None,
        media_ip: listen.ip(),
        media_ports,
        t38,
        t38_params: T38Params::default(),
        codecs: vec![G711::Ulaw, G711::Alaw],
        ring_timeout: Duration::from_secs(60),
        received: dir.join("received"),
        csid: "+49 30 1234".into(),
        trunks: vec![Trunk {
            name: "peer".into(),
            proxy: peer.to_string(),
            transport: Transport::Udp,
            domain: peer.ip().to_string(),
            register: false,
            user: String::new(),
            auth_user: None,
            password: None,
            expires: Duration::from_secs(300),
            dial: format!("sip:{{number}}@{peer}"),
            caller_id: "{tsi}".into(),
            max_calls,
            peers: vec![],
        }],
    }
}

/// User and system CPU seconds of the whole process so far.
fn cpu() -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) } != 0 {
        return (0.0, 0.0);
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(r.ru_utime), s(r.ru_stime))
}

/// A thread ticking every 20 ms by deadline, like the media sessions,
/// recording how late each wake-up is (ms).
fn probe(stop: Arc<AtomicBool>, late: Arc<Mutex<Vec<f64>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tick = Duration::from_millis(20);
        let start = Instant::now();
        let mut n = 0u32;
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let due = start + tick * n;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            seen.push(Instant::now().saturating_duration_since(due).as_secs_f64() * 1000.0);
        }
        if let Ok(mut l) = late.lock() {
            *l = seen;
        }
    })
}

fn calls_cmd(args: &[String]) -> Result<(), Error> {
    let [doc, pages, mode, calls, rest @ ..] = args else {
        return Err("calls DOC.tif PAGES t38|g711 C [TIMEOUT_S [RAMP_MS]]".into());
    };
    let pages: u32 = pages.parse().map_err(|_| format!("PAGES {pages:?}"))?;
    let calls: usize = calls.parse().map_err(|_| format!("C {calls:?}"))?;
    let timeout: u64 = match rest.first() {
        Some(t) => t.parse().map_err(|_| format!("TIMEOUT_S {t:?}"))?,
        None => 600,
    };
    let ramp: u64 = match rest.get(1) {
        Some(t) => t.parse().map_err(|_| format!("RAMP_MS {t:?}"))?,
        None => 0,
    };
    let (a_mode, b_mode) = match mode.as_str() {
        // The caller offers T.38 at once; the answerer takes it.
        "t38" => (T38Mode::Offer, T38Mode::Reinvite),
        "g711" => (T38Mode::Off, T38Mode::Off),
        other => return Err(format!("mode {other:?}: t38 or g711").into()),
    };
    let seen = Arc::new(Seen::default());
    tracing::subscriber::set_global_default(Catcher(seen.clone()))
        .map_err(|e| format!("tracing: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_calls(
        PathBuf::from(doc),
        pages,
        mode,
        a_mode,
        b_mode,
        calls,
        Duration::from_secs(timeout),
        Duration::from_millis(ramp),
        seen,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn run_calls(
    doc: PathBuf,
    pages: u32,
    mode: &str,
    a_mode: T38Mode,
    b_mode: T38Mode,
    calls: usize,
    timeout: Duration,
    ramp: Duration,
    seen: Arc<Seen>,
) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let (a, b) = (free_udp()?, free_udp()?);
    let lines = calls.max(1);
    let sender = SipEngine::start(settings(
        a,
        b,
        a_mode,
        20000..=29999,
        &dir.path().join("a"),
        lines,
    ))
    .await
    .map_err(|e| format!("engine A: {e}"))?;
    let receiver = Arc::new(
        SipEngine::start(settings(
            b,
            a,
            b_mode,
            30000..=39999,
            &dir.path().join("b"),
            lines,
        ))
        .await
        .map_err(|e| format!("engine B: {e}"))?,
    );
    let sender = Arc::new(sender);

    let stop = Arc::new(AtomicBool::new(false));
    let late = Arc::new(Mutex::new(Vec::new()));
    let probe = probe(stop.clone(), late.clone());
    let cpu0 = cpu();
    let t0 = Instant::now();

    // The receiving side: C faxes handed out, or the deadline, or 15 s
    // after the last sender's result (a refused call brings no fax).
    let senders_done = Arc::new(Mutex::new(None::<Instant>));
    let rx = {
        let (receiver, senders_done) = (receiver.clone(), senders_done.clone());
        tokio::spawn(async move {
            let mut got = Vec::new();
            let deadline = Instant::now() + timeout;
            while got.len() < calls && Instant::now() < deadline {
                let done = senders_done.lock().map(|d| *d).unwrap_or(None);
                if done.is_some_and(|at| at.elapsed() > Duration::from_secs(15)) {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(500), receiver.receive()).await {
                    Ok(Some(fax)) => {
                        receiver.acknowledge(&fax).await;
                        std::fs::remove_file(&fax.document).ok();
                        got.push((fax.status, fax.pages));
                    }
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
            got
        })
    };
    let mut tasks = Vec::new();
    for i in 0..calls {
        if i > 0 && !ramp.is_zero() {
            tokio::time::sleep(ramp).await;
        }
        let (sender, doc) = (sender.clone(), doc.clone());
        tasks.push(tokio::spawn(async move {
            let request = SendRequest {
                job_id: format!("BENCH/{i}"),
                dial: format!("+4940555{i:04}"),
                number: format!("+4940555{i:04}"),
                document: doc,
                first_page: 1,
                pages,
                tsi: "+49 30 999".into(),
                header: None,
                subaddress: None,
                extension: None,
                progress: None,
            };
            let started = Instant::now();
            let result = tokio::time::timeout(timeout, sender.send(request)).await;
            (started.elapsed().as_secs_f64(), result)
        }));
    }
    let mut times = Vec::new();
    let mut sent_ok = 0;
    let mut failures: Vec<String> = Vec::new();
    for t in tasks {
        let (took, result) = t.await?;
        times.push(took);
        match result {
            Ok(SendResult::Sent { pages: p, .. }) if p == pages => sent_ok += 1,
            Ok(other) => failures.push(format!("{other:?}")),
            Err(_) => failures.push("timeout".into()),
        }
    }
    if let Ok(mut d) = senders_done.lock() {
        *d = Some(Instant::now());
    }
    let received = rx.await?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = cpu();
    stop.store(true, Ordering::Relaxed);
    probe.join().ok();
    let recv_ok = received
        .iter()
        .filter(|(s, p)| *s == Reception::Complete && *p == pages)
        .count();
    for (s, p) in &received {
        if !(*s == Reception::Complete && *p == pages) {
            failures.push(format!("received {p} pages: {s:?}"));
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    let mut late = late.lock().map(|l| l.clone()).unwrap_or_default();
    late.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        late.get(((late.len() as f64 * q) as usize).min(late.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    failures.sort();
    failures.dedup();
    let failures = if failures.is_empty() {
        "-".to_string()
    } else {
        failures.join(" | ").replace(['\t', '\n'], " ")
    };
    println!(
        "calls\t{mode}\t{calls}\t{sent_ok}\t{recv_ok}\t{median:.2}\t{:.2}\t{:.2}\t{wall:.2}\t{:.2}\t{:.2}\t{}\t{}\t{}\t{:.1}\t{:.1}\t{failures}",
        times.first().copied().unwrap_or(0.0),
        times.last().copied().unwrap_or(0.0),
        cpu1.0 - cpu0.0,
        cpu1.1 - cpu0.1,
        seen.behind.load(Ordering::Relaxed),
        seen.missed.load(Ordering::Relaxed),
        seen.lost.load(Ordering::Relaxed),
        pct(0.99),
        late.last().copied().unwrap_or(0.0),
    );
    Ok(())
}
