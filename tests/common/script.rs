//! A scripted SMTP client with TLS (tests/peers/smtp.py) and the bits of
//! SMTP AUTH the tests send.

use super::output_text;
use std::io::Write;
use std::process::{Command, Stdio};

/// One step of [`smtp_script`]: what was sent, the reply, and the seconds
/// from sending it to the complete reply.
pub type Step = (String, String, f64);

/// Run tests/peers/smtp.py (a scripted client with STARTTLS and implicit
/// TLS) against 127.0.0.1:`port` from `source`: the greeting, then one
/// reply per step (see the script for `!starttls`, `!data:`, `!close`).
pub fn smtp_script(port: u16, source: &str, implicit_tls: bool, steps: &[&str]) -> Vec<Step> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/smtp.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(port.to_string())
        .args(["--source", source]);
    if implicit_tls {
        cmd.arg("--implicit-tls");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is installed by scripts/test");
    let steps = serde_json::to_string(steps).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(steps.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "smtp.py failed:\n{}",
        output_text(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("smtp.py output ({e}):\n{}", output_text(&out)))
}

/// `AUTH PLAIN` with the initial response for `user` and `password`.
pub fn auth_plain(user: &str, password: &str) -> String {
    format!(
        "AUTH PLAIN {}",
        base64_encode(format!("\0{user}\0{password}").as_bytes())
    )
}

/// Standard base64 (RFC 4648) of `bytes`.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Add a user to the server's users file with `faxmta user add` (the
/// password on standard input); `senders` become `--sender` options.
pub fn add_user(server: &super::Server, name: &str, password: &str, senders: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faxmta"));
    cmd.args(["user", "add", name]);
    for s in senders {
        cmd.args(["--sender", s]);
    }
    let out = user_cli(cmd.arg("--config").arg(server.config()), password);
    assert!(out.status.success(), "user add:\n{}", output_text(&out));
}

/// Run a `faxmta user …` command with `stdin` as its standard input.
pub fn user_cli(cmd: &mut Command, stdin: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
