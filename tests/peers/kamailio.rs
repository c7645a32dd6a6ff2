//! A private Kamailio (5.6, Debian package `kamailio`) on one loopback
//! address and a free port (UDP and TCP), with a routing script the test
//! configures ([`KamailioSetup`]): a registrar (usrloc in memory) with
//! digest authentication, a record-routing proxy, trunk peers by source
//! IP (no authentication), a "PSTN" next hop for numbers nobody
//! registered, and rtpengine for the media.
//!
//! What a call does is chosen by the Request-URI user's prefix (after
//! authentication; see the constants):
//! - [`BUSY`] `486…` → 486 Busy Here, [`NOT_FOUND`] `404…` → 404,
//!   [`UNAVAILABLE`] `480…` → 480, [`SERVICE_UNAVAILABLE`] `503…` → 503;
//! - [`NO_ANSWER`] `408…` → 180 Ringing, then, as the next hop never
//!   answers, tm's 408 after [`KamailioSetup::no_answer_ms`];
//! - [`T38_FORCE`] `38…` / [`T38_DECODE`] `71…`: rtpengine's
//!   `T.38=force` (audio offers become T.38) / `T.38=decode` (T.38 offers
//!   become PCMU/PCMA); the prefix is removed from the Request-URI, and
//!   the flags are kept for the dialog's re-INVITEs (a Record-Route
//!   parameter `mf=force|decode`, read back after `loose_route`);
//! - anything else: relayed, rtpengine without flags (it relays UDPTL
//!   and RTP as they are).
//!
//! Then the (stripped) user is looked up in the location table
//! (`lookup("location")`: a registered user gets the call at its
//! Contact), else the call goes to [`KamailioSetup::pstn`] (without one:
//! 404). The log shows every request (`REQ METHOD URI from IP:PORT over PROTO`),
//! every registration (`REGISTERED user`) and the rtpengine flags of each
//! offer (`initial offer flags [...]`, `in-dialog offer flags [...]`).

use super::sipp::{sip_port, Daemon};
use super::Rtpengine;
use std::net::{IpAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// Request-URI user prefixes that select a behaviour of the script.
pub const BUSY: &str = "486";
pub const NOT_FOUND: &str = "404";
pub const UNAVAILABLE: &str = "480";
pub const SERVICE_UNAVAILABLE: &str = "503";
pub const NO_ANSWER: &str = "408";
pub const T38_FORCE: &str = "38";
pub const T38_DECODE: &str = "71";

/// What the routing script knows.
pub struct KamailioSetup<'a> {
    /// The domain it is (alias) and the digest realm.
    pub domain: &'a str,
    /// Digest users: (user, password). They register and call with
    /// these credentials (auth user = To user for REGISTER).
    pub users: &'a [(&'a str, &'a str)],
    /// Source IPs of trunk peers: their INVITEs need no authentication.
    pub trunks: &'a [&'a str],
    /// `host:port` where calls to unregistered users go (a sipp UAS, a
    /// faxmta…).
    pub pstn: Option<&'a str>,
    /// The rtpengine for the media; None: SDP passes untouched.
    pub rtpengine: Option<&'a Rtpengine>,
    /// How long a [`NO_ANSWER`] call rings before the 408.
    pub no_answer_ms: u32,
    /// The longest registration it grants (the 200's `expires=`), to
    /// make a UA register again soon; None: Kamailio's default (3600).
    pub max_expires: Option<u32>,
}

impl Default for KamailioSetup<'_> {
    fn default() -> Self {
        KamailioSetup {
            domain: "trunk.test",
            users: &[],
            trunks: &[],
            pstn: None,
            rtpengine: None,
            no_answer_ms: 3000,
            max_expires: None,
        }
    }
}

pub struct Kamailio {
    pub ip: String,
    /// Its SIP port, UDP and TCP.
    pub port: u16,
    pub domain: String,
    // Before `dir`: a failing test's log is read when it is dropped.
    daemon: Daemon,
    dir: tempfile::TempDir,
    /// The next hop of [`NO_ANSWER`] calls: bound, never read.
    _black_hole: UdpSocket,
}

fn quote(s: &str) -> String {
    assert!(
        !s.contains(['"', '\\', '\n']),
        "{s:?}: no quotes in Kamailio strings"
    );
    s.to_string()
}

impl Kamailio {
    /// Starts on `ip` (loopback) and a free port; returns once it answers
    /// an OPTIONS.
    pub fn start(ip: &str, setup: &KamailioSetup) -> Kamailio {
        let addr: IpAddr = ip.parse().unwrap();
        assert!(addr.is_loopback(), "{ip}: loopback only");
        let port = sip_port(ip);
        let dir = tempfile::tempdir().unwrap();
        let black_hole = UdpSocket::bind((addr, 0)).unwrap();
        let hole = black_hole.local_addr().unwrap();
        let cfg = script(ip, port, setup, &hole.to_string());
        let cfg_path = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-Y")
            .arg(&run)
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-w")
            .arg(dir.path());
        let daemon = Daemon::spawn(
            cmd,
            &format!("kamailio {ip}:{port}"),
            &dir.path().join("kamailio.log"),
        );
        let mut k = Kamailio {
            ip: ip.to_string(),
            port,
            domain: setup.domain.to_string(),
            daemon,
            dir,
            _black_hole: black_hole,
        };
        k.wait_ready();
        k
    }

    /// Ready once an OPTIONS to it gets a 200.
    fn wait_ready(&mut self) {
        let probe = UdpSocket::bind((self.ip.parse::<IpAddr>().unwrap(), 0)).unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = probe.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut n = 0;
        loop {
            self.daemon.assert_alive();
            n += 1;
            let msg = format!(
                "OPTIONS sip:{ip}:{port} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bK-ready-{n}\r\n\
                 From: <sip:probe@{local}>;tag=ready\r\n\
                 To: <sip:{ip}:{port}>\r\n\
                 Call-ID: ready-{n}@{local}\r\n\
                 CSeq: {n} OPTIONS\r\n\
                 Max-Forwards: 70\r\n\
                 Content-Length: 0\r\n\r\n",
                ip = self.ip,
                port = self.port
            );
            let _ = probe.send_to(msg.as_bytes(), (self.ip.as_str(), self.port));
            let mut buf = [0u8; 2048];
            if let Ok(len) = probe.recv(&mut buf) {
                if buf[..len].starts_with(b"SIP/2.0 200") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not answer OPTIONS:\n{}",
                self.log()
            );
        }
    }

    /// `sip:IP:PORT`.
    pub fn uri(&self) -> String {
        format!("sip:{}:{}", self.ip, self.port)
    }

    /// `IP:PORT`, for a sipp remote or a faxmta registrar setting.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.daemon.output()
    }

    /// Waits up to `secs` for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str, secs: u64) -> bool {
        crate::common::wait_until(secs, || self.log().contains(needle))
    }

    /// The generated kamailio.cfg (for a failing test's output).
    pub fn config(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.cfg")).unwrap_or_default()
    }
}

/// The routing script (kamailio.cfg) for `setup`.
fn script(ip: &str, port: u16, setup: &KamailioSetup, black_hole: &str) -> String {
    let domain = quote(setup.domain);
    let mut passwords = String::new();
    for (user, password) in setup.users {
        passwords.push_str(&format!(
            "    if ($au == \"{}\") {{ $var(pw) = \"{}\"; }}\n",
            quote(user),
            quote(password)
        ));
    }
    let mut trunks = String::from("    $var(trunk) = 0;\n");
    for t in setup.trunks {
        trunks.push_str(&format!(
            "    if ($si == \"{}\") {{ $var(trunk) = 1; }}\n",
            quote(t)
        ));
    }
    let pstn = match setup.pstn {
        Some(p) => format!("    $du = \"sip:{}\";\n    t_relay();\n", quote(p)),
        None => "    sl_send_reply(\"404\", \"No Route\");\n".to_string(),
    };
    let rtpengine = match setup.rtpengine {
        Some(r) => format!(
            "#!define WITH_RTPENGINE\n#!define RTPENGINE_SOCK \"{}\"\n",
            r.ng_socket()
        ),
        None => String::new(),
    };
    let no_answer = setup.no_answer_ms;
    let expires = match setup.max_expires {
        Some(n) => format!(
            "modparam(\"registrar\", \"max_expires\", {n})\nmodparam(\"registrar\", \"min_expires\", {})\n",
            n.min(60)
        ),
        None => String::new(),
    };
    format!(
        r#"#!KAMAILIO
# A throwaway Kamailio for faxmta's SIP tests (tests/peers/kamailio.rs).
{rtpengine}
debug=2
log_stderror=yes
fork=yes
children=2
tcp_children=2
auto_aliases=no
listen=udp:{ip}:{port}
listen=tcp:{ip}:{port}
alias="{domain}"
alias="{ip}:{port}"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
#!ifdef WITH_RTPENGINE
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", RTPENGINE_SOCK)
#!endif
modparam("usrloc", "db_mode", 0)
modparam("rr", "append_fromtag", 1)
{expires}
route[PASSWORD] {{
    $var(pw) = "";
{passwords}}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    xlog("L_INFO", "REQ $rm $ru from $si:$sp over $pr\n");
    if (has_totag()) {{
        if (loose_route()) {{
#!ifdef WITH_RTPENGINE
            if (is_method("INVITE|UPDATE") && has_body("application/sdp")) {{
                route(MEDIA_FLAGS_DIALOG);
                xlog("L_INFO", "in-dialog offer flags [$var(rtpflags)]\n");
                rtpengine_offer("$var(rtpflags)");
            }} else if (is_method("BYE")) {{
                rtpengine_delete();
            }}
            t_on_reply("MEDIA");
#!endif
            t_relay();
            exit;
        }}
        if (is_method("ACK") && t_check_trans()) {{ t_relay(); exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
#!ifdef WITH_RTPENGINE
            rtpengine_delete();
#!endif
            t_relay();
        }}
        exit;
    }}
    if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (is_method("OPTIONS") && $rU == $null) {{ sl_send_reply("200", "Alive"); exit; }}
    if (is_method("REGISTER")) {{
        route(PASSWORD);
        if (!pv_auth_check("{domain}", "$var(pw)", "0", "1")) {{
            $var(rc) = $rc;
            xlog("L_INFO", "REGISTER of $tU refused ($var(rc))\n");
            # Credentials that do not check (wrong password, unknown
            # user, auth user not the To user) are refused; none, or a
            # stale/expired nonce (-4, -6), get a challenge.
            if (is_present_hf("Authorization") && $var(rc) != -4 && $var(rc) != -6) {{
                sl_send_reply("403", "Forbidden");
                exit;
            }}
            auth_challenge("{domain}", "0");
            exit;
        }}
        consume_credentials();
        if (!save("location")) {{ sl_reply_error(); exit; }}
        xlog("L_INFO", "REGISTERED $tU\n");
        exit;
    }}
    if (!is_method("INVITE")) {{ sl_send_reply("405", "Method Not Allowed"); exit; }}
{trunks}    if ($var(trunk) == 0) {{
        route(PASSWORD);
        if (!pv_auth_check("{domain}", "$var(pw)", "0", "0")) {{
            $var(rc) = $rc;
            xlog("L_INFO", "INVITE from $si refused ($var(rc))\n");
            if (is_present_hf("Proxy-Authorization") && $var(rc) != -4 && $var(rc) != -6) {{
                sl_send_reply("403", "Forbidden");
                exit;
            }}
            proxy_challenge("{domain}", "0");
            exit;
        }}
        consume_credentials();
    }}
    if ($rU =~ "^486") {{ sl_send_reply("486", "Busy Here"); exit; }}
    if ($rU =~ "^404") {{ sl_send_reply("404", "Not Found"); exit; }}
    if ($rU =~ "^480") {{ sl_send_reply("480", "Temporarily Unavailable"); exit; }}
    if ($rU =~ "^503") {{ sl_send_reply("503", "Service Unavailable"); exit; }}
    if ($rU =~ "^408") {{
        # Ring, then no answer: the next hop is a socket nobody reads, so
        # tm's timer fires and answers 408.
        t_newtran();
        t_reply("180", "Ringing");
        $du = "sip:{black_hole}";
        t_set_fr({no_answer}, {no_answer});
        t_relay();
        exit;
    }}
    $var(mf) = "";
    if ($rU =~ "^38") {{ $var(mf) = "force"; $rU = $(rU{{s.substr,2,0}}); }}
    else if ($rU =~ "^71") {{ $var(mf) = "decode"; $rU = $(rU{{s.substr,2,0}}); }}
    if ($var(mf) != "") {{ add_rr_param(";mf=$var(mf)"); }}
    record_route();
#!ifdef WITH_RTPENGINE
    if (has_body("application/sdp")) {{
        route(MEDIA_FLAGS);
        xlog("L_INFO", "initial offer flags [$var(rtpflags)]\n");
        rtpengine_offer("$var(rtpflags)");
    }}
    t_on_reply("MEDIA");
    t_on_failure("FAILED");
#!endif
    if (lookup("location")) {{
        xlog("L_INFO", "to registered $rU at $ru\n");
        t_relay();
        exit;
    }}
{pstn}    exit;
}}

route[MEDIA_FLAGS] {{
    $var(rtpflags) = "";
    if ($var(mf) == "force") {{ $var(rtpflags) = "T.38=force"; }}
    else if ($var(mf) == "decode") {{ $var(rtpflags) = "T.38=decode"; }}
}}

route[MEDIA_FLAGS_DIALOG] {{
    $var(rtpflags) = "";
    if (check_route_param("mf=force")) {{ $var(rtpflags) = "T.38=force"; }}
    else if (check_route_param("mf=decode")) {{ $var(rtpflags) = "T.38=decode"; }}
}}

#!ifdef WITH_RTPENGINE
onreply_route[MEDIA] {{
    if (has_body("application/sdp")) {{ rtpengine_answer(); }}
}}

failure_route[FAILED] {{
    rtpengine_delete();
}}
#!endif
"#
    )
}
