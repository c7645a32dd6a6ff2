//! What devices send that sdp-rs's strict reading refuses, put right
//! before it parses: the lines of each section put in RFC 4566 order
//! (some write `b=` before `c=`, or `a=` before `c=`), LF or CRLF line
//! ends alike with a final line end added (SIP bodies often lack it),
//! empty lines dropped, and an `o=` address that is a host name (RFC 4566
//! allows it; sdp-rs wants an IP, and we never use `o=`) replaced by
//! `0.0.0.0`. A line that is not `X=…` with a known type letter is an
//! error: RFC 4566 §5 wants an SDP with an unknown type letter ignored
//! whole.

use super::SdpError;
use std::net::IpAddr;

/// The rank of a line type in the session part (RFC 4566 §5 order).
fn session_rank(t: u8) -> Option<u8> {
    b"vosiuepcbtrzka"
        .iter()
        .position(|c| *c == t)
        .map(|p| p as u8)
}

/// The rank of a line type in a media section.
fn media_rank(t: u8) -> Option<u8> {
    b"micbka".iter().position(|c| *c == t).map(|p| p as u8)
}

/// The SDP `text` in the order and form sdp-rs reads.
pub(super) fn normalize(text: &str) -> Result<String, SdpError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut sections: Vec<Vec<&str>> = vec![vec![]];
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        if line.trim().is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' {
            return Err(SdpError::Malformed(format!("unexpected line {line:?}")));
        }
        if bytes[0] == b'm' {
            sections.push(vec![]);
        }
        if let Some(section) = sections.last_mut() {
            section.push(line);
        }
    }
    let mut out = String::with_capacity(text.len() + 64);
    for (i, section) in sections.iter().enumerate() {
        let rank = if i == 0 { session_rank } else { media_rank };
        let mut ranked = Vec::with_capacity(section.len());
        for line in section {
            let r = rank(line.as_bytes()[0])
                .ok_or_else(|| SdpError::Malformed(format!("unexpected line {line:?}")))?;
            ranked.push((r, *line));
        }
        // Stable: lines of one type keep their order.
        ranked.sort_by_key(|(r, _)| *r);
        for (_, line) in ranked {
            match line.strip_prefix("o=") {
                Some(origin) => out.push_str(&origin_with_ip(origin)),
                None => out.push_str(line),
            }
            out.push_str("\r\n");
        }
    }
    Ok(out)
}

/// `o=` with a host name for an address: the address `0.0.0.0` instead.
fn origin_with_ip(origin: &str) -> String {
    let fields: Vec<&str> = origin.split_whitespace().collect();
    match fields.as_slice() {
        [user, id, version, net, addrtype, addr] if addr.parse::<IpAddr>().is_err() => {
            let ip = if addrtype.eq_ignore_ascii_case("IP6") {
                "::"
            } else {
                "0.0.0.0"
            };
            format!("o={user} {id} {version} {net} {addrtype} {ip}")
        }
        _ => format!("o={origin}"),
    }
}
