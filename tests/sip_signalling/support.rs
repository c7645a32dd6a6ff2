//! What the SIP signalling tests share: the engine's settings and trunks
//! on loopback, a one-page TIFF-F to send, the engine's log captured
//! (tracing into a buffer) so a test can read what it said, and waits by
//! condition with a deadline.

use faxmta_fax::engine::sip::media::{T38Params, G711};
use faxmta_fax::engine::sip::settings::{SipSettings, T38Mode, Transport, Trunk};
use faxmta_fax::engine::SendRequest;
use faxmta_fax::page::{Compression, Page, Resolution};
use faxmta_fax::tiff::{write_tiff_f, TiffHeader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::peers::{sip_port, PortBlock};

/// Where the engine's tracing output goes (one buffer per test process).
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the engine's log (info and up; rsipstack's warnings) from
/// now on.
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,rsipstack=warn")
            .with_ansi(false)
            .with_writer(move || Buffer(writer.clone()))
            .try_init();
        buffer
    });
}

/// The engine's log so far.
pub fn logs() -> String {
    LOGS.get()
        .and_then(|b| {
            b.lock()
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
        .unwrap_or_default()
}

/// The log lines of one job (`job=ID`), in order.
pub fn job_lines(job: &str) -> Vec<String> {
    let needle = format!("job={job}");
    logs()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// Waits up to `secs` for `f`, without blocking the runtime.
pub async fn until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs blocking peer code (a SIPp wait, a Kamailio start) on this
/// worker without stalling the engine's tasks.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// A free SIP address for an engine on `ip`.
pub fn engine_addr(ip: &str) -> SocketAddr {
    format!("{ip}:{}", sip_port(ip)).parse().unwrap()
}

/// A trunk to `proxy` (`IP:PORT`), a peer by IP (no registration), the
/// Request-URI `sip:{number}@PROXY`, the From user our TSI.
pub fn trunk(name: &str, proxy: &str) -> Trunk {
    Trunk {
        name: name.into(),
        proxy: proxy.into(),
        transport: Transport::Udp,
        domain: "trunk.test".into(),
        register: false,
        user: String::new(),
        auth_user: None,
        password: None,
        expires: Duration::from_secs(60),
        dial: format!("sip:{{number}}@{proxy}"),
        caller_id: "{tsi}".into(),
        max_calls: 2,
        peers: vec![],
    }
}

/// The engine's settings: SIP on `listen`, media on `ports` of the same
/// address, calls starting as audio (T.38 by re-INVITE), 10 s of ringing.
pub fn settings(
    listen: SocketAddr,
    ports: &PortBlock,
    dir: &Path,
    trunks: Vec<Trunk>,
) -> SipSettings {
    SipSettings {
        listen,
        public_address: None,
        media_ip: listen.ip(),
        media_ports: ports.first..=ports.last,
        t38: T38Mode::Reinvite,
        t38_params: T38Params::default(),
        codecs: vec![G711::Ulaw, G711::Alaw],
        ring_timeout: Duration::from_secs(10),
        received: dir.join("received"),
        csid: "+49 40 555".into(),
        trunks,
    }
}

/// A one-page TIFF-F in `dir`.
pub fn document(dir: &Path) -> PathBuf {
    let mut page = Page::blank(1728, 400, Resolution::Fine);
    for y in 100..300 {
        for x in 200..900 {
            page.set(x, y, true);
        }
    }
    let path = dir.join("doc.tif");
    write_tiff_f(&path, &[page], Compression::Mh, &TiffHeader::default()).unwrap();
    path
}

/// A request to send `document` to `dial`, with our TSI `tsi`.
pub fn request(job: &str, dial: &str, document: &Path, tsi: &str) -> SendRequest {
    SendRequest {
        job_id: job.into(),
        dial: dial.into(),
        number: dial.into(),
        document: document.to_path_buf(),
        first_page: 1,
        pages: 1,
        tsi: tsi.into(),
        header: None,
        subaddress: None,
        extension: None,
        progress: None,
    }
}

/// The start line of each message a SIPp run received (`INVITE sip:…`,
/// `SIP/2.0 200 OK`), with the whole message.
pub fn received_messages(messages: &str) -> Vec<(String, String)> {
    messages
        .split("message received")
        .skip(1)
        .map(|m| {
            let m = m.split("message sent").next().unwrap_or(m);
            let start = m
                .lines()
                .skip(1)
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_string();
            (start, m.to_string())
        })
        .collect()
}

/// The INVITEs (new calls and re-INVITEs, retransmissions too) among
/// them.
pub fn invites(messages: &str) -> Vec<String> {
    received_messages(messages)
        .into_iter()
        .filter(|(start, _)| start.starts_with("INVITE "))
        .map(|(_, m)| m)
        .collect()
}
