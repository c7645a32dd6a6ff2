//! Who may use the admin interfaces: `GET /metrics`
//! behind the token of `[admin] metrics_token_file` when one is set (open
//! on loopback as before when not); the control socket is mode 0600 and
//! checks its client's uid (SO_PEERCRED), so that `faxmta queue …` run as
//! another user (`nobody`, through setpriv) is refused with a clear
//! message even when the socket is made reachable — unless `[control]
//! allow_uids` names that user.

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// `GET /metrics` with these extra header lines: status and body.
fn metrics(s: &Server, headers: &str) -> (u16, String) {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.admin_port)).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    c.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut response = String::new();
    c.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn metrics_need_the_token_when_one_is_configured() {
    let mut s = Server::start();
    // Default: open (on loopback), as before.
    let (status, body) = metrics(&s, "");
    assert_eq!(status, 200, "{body}");
    assert_contains(&body, "faxmta_");

    let token_file = s.path("metrics.token");
    std::fs::write(&token_file, "s3cret-metrics-token\n").unwrap();
    restart_with(
        &mut s,
        &[(
            "[admin]\n",
            &format!(
                "[admin]\nmetrics_token_file = \"{}\"\n",
                token_file.display()
            ),
        )],
    );
    let (status, body) = metrics(&s, "");
    assert_eq!(status, 401, "{body}");
    assert_contains(&body, "metrics_token_file");
    assert!(!body.contains("faxmta_queue"), "{body}");
    let (status, _) = metrics(&s, "Authorization: Bearer wrong-token-of-same-len\r\n");
    assert_eq!(status, 401);
    let (status, _) = metrics(&s, "Authorization: Basic czNjcmV0LW1ldHJpY3MtdG9rZW4=\r\n");
    assert_eq!(status, 401);
    let (status, body) = metrics(&s, "Authorization: Bearer s3cret-metrics-token\r\n");
    assert_eq!(status, 200, "{body}");
    assert_contains(&body, "faxmta_");
    // A new token takes effect at once; a file that cannot be read lets
    // nobody in.
    std::fs::write(&token_file, "another-token\n").unwrap();
    assert_eq!(
        metrics(&s, "Authorization: Bearer s3cret-metrics-token\r\n").0,
        401
    );
    assert_eq!(
        metrics(&s, "Authorization: Bearer another-token\r\n").0,
        200
    );
    std::fs::remove_file(&token_file).unwrap();
    assert_eq!(
        metrics(&s, "Authorization: Bearer another-token\r\n").0,
        401
    );
    assert_contains(&s.log(), "GET /metrics refused: metrics_token_file");
}

/// `faxmta queue list` as `nobody`: the binary linked (or copied) into
/// the server's directory, which `nobody` can reach wherever the build
/// tree is.
fn as_nobody(s: &Server) -> std::process::Output {
    let bin = s.path("faxmta-bin");
    if !bin.exists() {
        std::fs::hard_link(env!("CARGO_BIN_EXE_faxmta"), &bin)
            .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_faxmta"), &bin).map(drop))
            .unwrap();
    }
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&bin)
        .args(["queue", "list", "--config"])
        .arg(s.config())
        .output()
        .expect("setpriv (util-linux) is installed")
}

/// Let `nobody` reach the socket: the directories searchable, the
/// configuration readable, the socket itself 0666.
fn open_up(s: &Server) {
    // The socket is made (and set to 0600) by its own task: wait for it.
    let sock = s.path("faxmta.sock");
    assert!(
        wait_until(10, || std::fs::metadata(&sock).is_ok_and(|m| m
            .permissions()
            .mode()
            & 0o777
            == 0o600)),
        "no control socket with mode 0600"
    );
    let chmod = |p: &std::path::Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod(s.dir.path(), 0o755);
    chmod(&s.config(), 0o644);
    chmod(&s.path("faxmta.sock"), 0o666);
}

#[test]
fn the_control_socket_serves_only_root_and_its_own_user() {
    let mut s = Server::start();
    // Root (this test) may.
    assert_contains(&cli_ok(&s, &["queue", "list"]), "Mail queue is empty");

    open_up(&s);
    let out = as_nobody(&s);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert_contains(
        &text,
        "permission denied: uid 65534 may not use the control socket",
    );
    assert_contains(&s.log(), "control socket: permission denied: uid 65534");

    // Named in [control] allow_uids: served.
    restart_with(
        &mut s,
        &[("[control]\n", "[control]\nallow_uids = [65534]\n")],
    );
    open_up(&s);
    let out = as_nobody(&s);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_contains(&output_text(&out), "Mail queue is empty");
}
