//! Tests of AUTH (RFC 4954) against a scripted peer on loopback, in
//! plaintext (`tls = "off"`, the one policy that allows it): PLAIN when
//! offered, else LOGIN; credentials never sent without TLS otherwise; a
//! refused AUTH makes way for the next host and in the end defers; pooled
//! sessions are kept apart by their credentials. TLS itself (STARTTLS,
//! implicit) is shown against a real Postfix in tests/smarthost.rs.

use faxmta_queue::{Envelope, NewRecipient};
use faxmta_smtp::Dns;
use faxmta_smtp::{ClientSettings, Connection, Security, Timeouts};
use faxmta_smtp::{SmtpSettings, SmtpTransport};
use faxmta_smtp::{Tls, TlsPolicy};
use faxmta_transport::{
    Credentials, HostPort, Job, JobRecipient, NextHop, RelayHop, Status, Transport,
};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the scripted peer does AUTH.
#[derive(Clone, Copy)]
struct Peer {
    /// The EHLO AUTH line, e.g. `PLAIN LOGIN`; empty: no AUTH.
    mechanisms: &'static str,
    /// The only password it takes (user `u`).
    password: &'static str,
}

/// Serve every connection to `listener` as `peer` says; everything
/// received goes to `seen` (one string per connection).
fn serve(listener: TcpListener, peer: Peer) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let n = {
                    let mut l = log.lock().unwrap();
                    l.push(String::new());
                    l.len() - 1
                };
                session(socket, peer, |line| log.lock().unwrap()[n].push_str(line)).await;
            });
        }
    });
    seen
}

async fn session(socket: TcpStream, peer: Peer, mut seen: impl FnMut(&str)) {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    let plain_ok = base64(format!("\0u\0{}", peer.password).as_bytes());
    let _ = write.write_all(b"220 scripted ready\r\n").await;
    let mut read_line = async |line: &mut String| {
        line.clear();
        matches!(reader.read_line(line).await, Ok(n) if n > 0)
    };
    while read_line(&mut line).await {
        seen(&line);
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        let verb = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let reply = match (verb.as_str(), words.get(1).map(String::as_str)) {
            ("EHLO", _) if peer.mechanisms.is_empty() => {
                "250-scripted\r\n250 PIPELINING\r\n".into()
            }
            ("EHLO", _) => format!("250-scripted\r\n250 AUTH {}\r\n", peer.mechanisms),
            ("AUTH", Some("PLAIN")) if words.get(2) == Some(&plain_ok) => {
                "235 2.7.0 Authentication successful\r\n".to_string()
            }
            ("AUTH", Some("LOGIN")) => {
                let _ = write.write_all(b"334 VXNlcm5hbWU6\r\n").await;
                let mut user = String::new();
                read_line(&mut user).await;
                seen(&user);
                let _ = write.write_all(b"334 UGFzc3dvcmQ6\r\n").await;
                let mut password = String::new();
                read_line(&mut password).await;
                seen(&password);
                if user.trim() == base64(b"u")
                    && password.trim() == base64(peer.password.as_bytes())
                {
                    "235 2.7.0 Authentication successful\r\n".into()
                } else {
                    "535 5.7.8 Error: authentication failed: bad login\r\n".into()
                }
            }
            ("AUTH", _) => "535 5.7.8 Error: authentication failed: bad plain\r\n".into(),
            ("MAIL" | "RCPT" | "RSET", _) => "250 2.1.0 ok\r\n".into(),
            ("DATA", _) => {
                let _ = write.write_all(b"354 go ahead\r\n").await;
                let mut data = String::new();
                while read_line(&mut line).await {
                    data.push_str(&line);
                    if line == ".\r\n" {
                        break;
                    }
                }
                seen(&data);
                "250 2.0.0 queued\r\n".into()
            }
            ("QUIT", _) => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => "500 unknown\r\n".into(),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn settings() -> ClientSettings {
    ClientSettings {
        helo: "client.test".into(),
        tls: Tls::new().unwrap(),
        timeouts: Timeouts::default(),
        lmtp: false,
        signer: None,
    }
}

async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

fn security(policy: TlsPolicy, credentials: &Credentials) -> Security<'_> {
    Security {
        auth: Some(credentials),
        ..Security::starttls(policy)
    }
}

#[tokio::test]
async fn auth_plain_when_offered_login_otherwise() {
    let creds = Credentials::new("u", "pässword");
    for (mechanisms, expect) in [("LOGIN PLAIN", "AUTH PLAIN "), ("LOGIN", "AUTH LOGIN\r\n")] {
        let (l, addr) = listener().await;
        let seen = serve(
            l,
            Peer {
                mechanisms,
                password: "pässword",
            },
        );
        let conn = Connection::open(
            addr,
            "smart.test",
            &settings(),
            security(TlsPolicy::Off, &creds),
        )
        .await
        .unwrap_or_else(|e| panic!("{mechanisms}: {e:?}"));
        assert_eq!(conn.authenticated.as_ref(), Some(&creds));
        conn.quit().await;
        let seen = seen.lock().unwrap()[0].clone();
        let after_ehlo = seen.split_once("EHLO client.test\r\n").unwrap().1;
        assert!(after_ehlo.starts_with(expect), "{mechanisms}: {seen}");
    }
}

#[tokio::test]
async fn a_refused_login_is_a_hop_error_that_quotes_the_server_only() {
    let (l, addr) = listener().await;
    let seen = serve(
        l,
        Peer {
            mechanisms: "PLAIN",
            password: "right",
        },
    );
    let creds = Credentials::new("u", "wrong-password");
    let Err(e) = Connection::open(
        addr,
        "smart.test",
        &settings(),
        security(TlsPolicy::Off, &creds),
    )
    .await
    else {
        panic!("logged in with the wrong password");
    };
    assert_eq!((e.reply.code, e.reply.status.as_str()), (554, "5.7.8"));
    assert_eq!(
        e.reply.text,
        format!(
            "host smart.test[{addr}] said: 535 5.7.8 Error: authentication failed: bad plain \
             (in reply to AUTH)"
        )
    );
    let token = base64(b"\0u\0wrong-password");
    assert!(!format!("{e:?}").contains("wrong-password") && !format!("{e:?}").contains(&token));
    // Said goodbye after the refusal (the peer records it when it reads
    // it: wait for that, with a deadline).
    let quit = || seen.lock().unwrap()[0].ends_with("QUIT\r\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !quit() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn credentials_never_go_in_plaintext_unless_tls_is_off() {
    let creds = Credentials::new("u", "secret");
    for policy in [TlsPolicy::Opportunistic, TlsPolicy::Required] {
        let (l, addr) = listener().await;
        let seen = serve(
            l,
            Peer {
                mechanisms: "PLAIN LOGIN",
                password: "secret",
            },
        );
        let Err(e) =
            Connection::open(addr, "smart.test", &settings(), security(policy, &creds)).await
        else {
            panic!("{policy:?}: sent credentials without TLS");
        };
        assert_eq!(e.reply.code, 451, "{e:?}");
        // (What must not happen: AUTH arriving late; only time shows it.)
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let seen = seen.lock().unwrap()[0].clone();
        assert!(!seen.contains("AUTH"), "{policy:?}: {seen}");
    }
    // A server without AUTH at all: a clear temporary error.
    let (l, addr) = listener().await;
    serve(
        l,
        Peer {
            mechanisms: "",
            password: "secret",
        },
    );
    let Err(e) = Connection::open(
        addr,
        "smart.test",
        &settings(),
        security(TlsPolicy::Off, &creds),
    )
    .await
    else {
        panic!("no AUTH offered, yet logged in");
    };
    assert!(e.reply.text.ends_with("it does not offer AUTH"), "{e:?}");
}

fn envelope() -> (Envelope, Vec<JobRecipient>) {
    let msg = faxmta_queue::NewMessage {
        sender: "s@example.org".into(),
        recipients: vec![NewRecipient::new("r@remote.test")],
        ..Default::default()
    };
    let rcpts = vec![JobRecipient {
        index: 0,
        address: "r@remote.test".into(),
        mailbox: None,
    }];
    (msg.into_envelope("ID1".into(), 0, 0), rcpts)
}

fn transport() -> SmtpTransport {
    let dns = Dns::new(
        &["127.0.0.1:9".parse().unwrap()],
        std::time::Duration::from_secs(1),
    )
    .unwrap();
    SmtpTransport::new(
        dns,
        SmtpSettings {
            client: settings(),
            port: 25,
            security: faxmta_smtp::SecuritySettings {
                default: TlsPolicy::Opportunistic,
                ..Default::default()
            },
            sts: None,
            tls_reports: None,
            myself: Default::default(),
            max_received: 50,
            idle_per_host: 4,
            suspend: std::time::Duration::ZERO,
        },
    )
}

fn hop(addrs: &[std::net::SocketAddr], password: &str) -> NextHop {
    NextHop::Relay(RelayHop {
        hosts: addrs
            .iter()
            .map(|a| HostPort {
                name: a.ip().to_string(),
                port: a.port(),
            })
            .collect(),
        tls: TlsPolicy::Off,
        implicit_tls: false,
        auth: Some(Credentials::new("u", password)),
    })
}

#[tokio::test]
async fn a_host_refusing_auth_makes_way_for_the_next_and_all_refusing_defers() {
    let (l1, a1) = listener().await;
    let (l2, a2) = listener().await;
    let first = serve(
        l1,
        Peer {
            mechanisms: "PLAIN",
            password: "other",
        },
    );
    let second = serve(
        l2,
        Peer {
            mechanisms: "LOGIN",
            password: "pw",
        },
    );
    let t = transport();
    let (env, rcpts) = envelope();
    let body = b"Subject: t\r\n\r\nbody\r\n";
    let next = hop(&[a1, a2], "pw");
    let job = Job {
        envelope: &env,
        body,
        recipients: &rcpts,
        next_hop: &next,
    };
    let out = t.deliver(job).await;
    assert_eq!(out[0].status, Status::Delivered, "{out:?}");
    assert_eq!(
        out[0].relay,
        format!("{}[{}]:{}", a2.ip(), a2.ip(), a2.port())
    );
    assert!(first.lock().unwrap()[0].contains("AUTH PLAIN "));
    assert!(second.lock().unwrap()[0].contains("Subject: t"));

    // Neither takes this password: deferred, with the last server's reply.
    let next = hop(&[a2, a1], "nope");
    let out = t
        .deliver(Job {
            next_hop: &next,
            ..job
        })
        .await;
    assert_eq!(out[0].status, Status::Deferred, "{out:?}");
    let reply = &out[0].reply;
    assert_eq!(
        (reply.code, reply.status.as_str()),
        (451, "4.7.8"),
        "{reply:?}"
    );
    assert!(
        reply
            .text
            .contains("said: 535 5.7.8 Error: authentication failed: bad plain"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn pooled_sessions_are_reused_only_with_the_same_credentials() {
    let (l, addr) = listener().await;
    let seen = serve(
        l,
        Peer {
            mechanisms: "PLAIN",
            password: "pw",
        },
    );
    let t = transport();
    let (env, rcpts) = envelope();
    let body = b"Subject: t\r\n\r\nbody\r\n";
    let with = hop(&[addr], "pw");
    let job = Job {
        envelope: &env,
        body,
        recipients: &rcpts,
        next_hop: &with,
    };
    for _ in 0..2 {
        assert_eq!(t.deliver(job).await[0].status, Status::Delivered);
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the same hop reuses its session"
    );

    // The same address without AUTH: never the authenticated session.
    let NextHop::Relay(mut plain) = with.clone() else {
        unreachable!()
    };
    plain.auth = None;
    let plain = NextHop::Relay(plain);
    let out = t
        .deliver(Job {
            next_hop: &plain,
            ..job
        })
        .await;
    assert_eq!(out[0].status, Status::Delivered, "{out:?}");
    let sessions = seen.lock().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(!sessions[1].contains("AUTH"), "{}", sessions[1]);
}

/// Base64 as the SASL exchanges carry it (RFC 4648, padded).
fn base64(content: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(content)
}
