//! Command-line options of `loadgen` (hand-parsed: the tool depends on
//! tokio only).

use std::net::SocketAddr;
use std::time::Duration;

pub const USAGE: &str = "\
usage: loadgen --server ADDR:PORT [--rate 500] [--messages 5000] [--sessions 20]
               [--size 10240] [--deadline 30] [--warmup-ms 300] [--late-ms 2]
               [--from s@bench.test] [--to u@sink.test] [--helo loadgen.bench.test]

  --server    the SMTP server; must be a loopback address (127.0.0.0/8, ::1)
  --rate      messages per second offered (message i is due at t0 + i/rate)
  --messages  how many messages to offer
  --sessions  persistent SMTP sessions (EHLO once, MAIL/RCPT/DATA per message)
  --size      message size in octets (headers included)
  --deadline  seconds from start after which no message starts; replies are
              awaited 5 s longer at most
  --warmup-ms time for the sessions to connect before message 0 is due
  --late-ms   a message starting more than this after its due time is late";

/// The options.
#[derive(Clone, Debug)]
pub struct Args {
    pub server: SocketAddr,
    pub rate: f64,
    pub messages: u64,
    pub sessions: usize,
    pub size: usize,
    pub deadline: Duration,
    pub warmup: Duration,
    pub late: Duration,
    pub from: String,
    pub to: String,
    pub helo: String,
}

/// Parses `--name value` pairs.
pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        server: SocketAddr::from(([127, 0, 0, 1], 25)),
        rate: 500.0,
        messages: 5000,
        sessions: 20,
        size: 10240,
        deadline: Duration::from_secs(30),
        warmup: Duration::from_millis(300),
        late: Duration::from_millis(2),
        from: "s@bench.test".into(),
        to: "u@sink.test".into(),
        helo: "loadgen.bench.test".into(),
    };
    let mut server = None;
    while let Some(name) = it.next() {
        if name == "--help" || name == "-h" {
            return Err("help".into());
        }
        let value = it.next().ok_or_else(|| format!("{name} needs a value"))?;
        let bad = |what: &str| format!("{name} {value}: {what}");
        match name.as_str() {
            "--server" => {
                let addr: SocketAddr = value.parse().map_err(|_| bad("not ADDR:PORT"))?;
                if !addr.ip().is_loopback() {
                    return Err(bad("not a loopback address (this tool stays on loopback)"));
                }
                server = Some(addr);
            }
            "--rate" => {
                a.rate = value.parse().map_err(|_| bad("not a number"))?;
                if !(a.rate.is_finite() && a.rate > 0.0) {
                    return Err(bad("must be > 0"));
                }
            }
            "--messages" => a.messages = value.parse().map_err(|_| bad("not a count"))?,
            "--sessions" => {
                a.sessions = value.parse().map_err(|_| bad("not a count"))?;
                if a.sessions == 0 || a.sessions > 10_000 {
                    return Err(bad("must be 1..=10000"));
                }
            }
            "--size" => a.size = value.parse().map_err(|_| bad("not a size"))?,
            "--deadline" => a.deadline = secs(&value).ok_or_else(|| bad("not seconds"))?,
            "--warmup-ms" => a.warmup = millis(&value).ok_or_else(|| bad("not ms"))?,
            "--late-ms" => a.late = millis(&value).ok_or_else(|| bad("not ms"))?,
            "--from" => a.from = value,
            "--to" => a.to = value,
            "--helo" => a.helo = value,
            _ => return Err(format!("unknown option {name}")),
        }
    }
    a.server = server.ok_or("--server is required")?;
    Ok(a)
}

fn secs(v: &str) -> Option<Duration> {
    let s: f64 = v.parse().ok()?;
    (s.is_finite() && s > 0.0 && s < 86_400.0).then(|| Duration::from_secs_f64(s))
}

fn millis(v: &str) -> Option<Duration> {
    let ms: f64 = v.parse().ok()?;
    (ms.is_finite() && (0.0..86_400_000.0).contains(&ms))
        .then(|| Duration::from_secs_f64(ms / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Args, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn refuses_a_server_off_loopback() {
        let e = parse_str("--server 192.0.2.1:25").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!(parse_str("--server 127.0.0.9:2525").is_ok());
    }

    #[test]
    fn needs_a_server_and_a_positive_rate() {
        assert!(parse_str("--rate 100").is_err());
        assert!(parse_str("--server 127.0.0.1:25 --rate 0").is_err());
    }
}
