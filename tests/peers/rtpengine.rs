//! A private rtpengine (Debian package `rtpengine-daemon`), userspace
//! only: `--table=-1` (no kernel forwarding), `--config-file=none` (not
//! the system's /etc/rtpengine), in the foreground. Its ng control port
//! and its media ports (a [`PortBlock`] of its own) are picked per test,
//! so tests running in parallel never share them. Kamailio's rtpengine
//! module drives it ([`super::KamailioSetup::rtpengine`]); its T.38
//! gateway (`T.38=force`, `T.38=decode`) is what the fax tests go
//! through.

use super::sipp::{sip_port, Daemon, PortBlock};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Rtpengine {
    /// Where it listens for ng commands and relays media.
    pub ip: String,
    pub ng_port: u16,
    /// Its media ports: `ports.first`..=`ports.last`.
    pub ports: PortBlock,
    // Before `_dir`: a failing test's log is read when it is dropped.
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl Rtpengine {
    /// Starts on 127.0.0.1; returns once it reports "Startup complete".
    pub fn start() -> Rtpengine {
        Rtpengine::start_on("127.0.0.1")
    }

    /// Starts on `ip` (loopback).
    pub fn start_on(ip: &str) -> Rtpengine {
        let dir = tempfile::tempdir().unwrap();
        let ng_port = sip_port(ip);
        let ports = PortBlock::take();
        let mut cmd = Command::new("rtpengine");
        cmd.args([
            "--config-file=none",
            "--table=-1",
            "--foreground",
            "--log-stderr",
            "--log-level=6",
        ])
        .arg(format!(
            "--pidfile={}",
            dir.path().join("rtpengine.pid").display()
        ))
        .arg(format!("--interface={ip}"))
        .arg(format!("--listen-ng={ip}:{ng_port}"))
        .arg(format!("--port-min={}", ports.first))
        .arg(format!("--port-max={}", ports.last));
        let mut daemon = Daemon::spawn(
            cmd,
            &format!("rtpengine {ip}:{ng_port}"),
            &dir.path().join("rtpengine.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !daemon.output().contains("Startup complete") {
            daemon.assert_alive();
            assert!(
                Instant::now() < deadline,
                "rtpengine did not start:\n{}",
                daemon.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Rtpengine {
            ip: ip.to_string(),
            ng_port,
            ports,
            daemon,
            _dir: dir,
        }
    }

    /// The ng socket as Kamailio's rtpengine module writes it:
    /// `udp:IP:PORT`.
    pub fn ng_socket(&self) -> String {
        format!("udp:{}:{}", self.ip, self.ng_port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.daemon.output()
    }
}

/// A bencode value, for rtpengine's ng protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ben {
    Str(String),
    Int(i64),
    List(Vec<Ben>),
    Dict(Vec<(String, Ben)>),
}

impl Ben {
    pub fn str(s: &str) -> Ben {
        Ben::Str(s.to_string())
    }

    /// A list of strings (`"T.38": ["decode"]`).
    pub fn strs(items: &[&str]) -> Ben {
        Ben::List(items.iter().map(|s| Ben::str(s)).collect())
    }

    /// The value of `key` in a dictionary.
    pub fn get(&self, key: &str) -> Option<&Ben> {
        match self {
            Ben::Dict(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string value of `key` in a dictionary.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Ben::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Ben::Str(s) => {
                out.extend_from_slice(format!("{}:", s.len()).as_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Ben::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Ben::List(items) => {
                out.push(b'l');
                items.iter().for_each(|i| i.encode(out));
                out.push(b'e');
            }
            Ben::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    Ben::str(k).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// One value from the front of `input`, and the rest.
    fn decode(input: &[u8]) -> Option<(Ben, &[u8])> {
        match input.first()? {
            b'i' => {
                let end = input.iter().position(|b| *b == b'e')?;
                let n = std::str::from_utf8(&input[1..end]).ok()?.parse().ok()?;
                Some((Ben::Int(n), &input[end + 1..]))
            }
            b'l' => {
                let mut rest = &input[1..];
                let mut items = vec![];
                while *rest.first()? != b'e' {
                    let (item, r) = Ben::decode(rest)?;
                    items.push(item);
                    rest = r;
                }
                Some((Ben::List(items), &rest[1..]))
            }
            b'd' => {
                let mut rest = &input[1..];
                let mut entries = vec![];
                while *rest.first()? != b'e' {
                    let (Ben::Str(k), r) = Ben::decode(rest)? else {
                        return None;
                    };
                    let (v, r) = Ben::decode(r)?;
                    entries.push((k, v));
                    rest = r;
                }
                Some((Ben::Dict(entries), &rest[1..]))
            }
            _ => {
                let colon = input.iter().position(|b| *b == b':')?;
                let len: usize = std::str::from_utf8(&input[..colon]).ok()?.parse().ok()?;
                let s = input.get(colon + 1..colon + 1 + len)?;
                Some((
                    Ben::Str(String::from_utf8_lossy(s).into_owned()),
                    &input[colon + 1 + len..],
                ))
            }
        }
    }
}

impl Rtpengine {
    /// Sends one ng command (e.g. `command: offer`, `call-id`,
    /// `from-tag`, `sdp`, `T.38: [decode]`) with a fresh cookie and
    /// returns rtpengine's reply dictionary (`result`, `sdp`…), waiting
    /// up to 5 s for it.
    pub fn ng(&self, command: &[(&str, Ben)]) -> Ben {
        let socket = std::net::UdpSocket::bind((self.ip.as_str(), 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let cookie = format!("faxmta{}", rand::random::<u32>());
        let dict = Ben::Dict(
            command
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        );
        let mut msg = format!("{cookie} ").into_bytes();
        dict.encode(&mut msg);
        socket
            .send_to(&msg, (self.ip.as_str(), self.ng_port))
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let len = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no ng reply ({e}):\n{}", self.log()));
        let reply = &buf[..len];
        let body = reply
            .strip_prefix(format!("{cookie} ").as_bytes())
            .unwrap_or_else(|| panic!("ng reply for another cookie: {reply:?}"));
        match Ben::decode(body) {
            Some((dict @ Ben::Dict(_), _)) => dict,
            _ => panic!(
                "ng reply not a dictionary: {}",
                String::from_utf8_lossy(body)
            ),
        }
    }
}
