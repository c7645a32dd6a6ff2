//! Tests of the client against a scripted peer on loopback (TCP or
//! a Unix socket): the LMTP mode (one reply per recipient after the data)
//! and the paths real servers rarely take (HELO fallback, no PIPELINING, a
//! connection lost between LMTP replies).

use faxmta_queue::{ClientInfo, Envelope, NewRecipient};
use faxmta_smtp::{ClientSettings, Connection, Peer, Security, Timeouts};
use faxmta_smtp::{Tls, TlsPolicy};
use faxmta_transport::{JobRecipient, Status};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};

/// A peer on the first connection to `listener`; see [`script`].
async fn peer(
    listener: TcpListener,
    hello: &'static str,
    pipelining: bool,
    after_dot: Vec<&'static str>,
) -> String {
    let (socket, _) = listener.accept().await.unwrap();
    script(socket, hello, pipelining, after_dot).await
}

/// A peer that answers each line it reads with the next scripted reply
/// (replies keyed by the command's first word); after DATA's 354 it reads
/// up to the final dot and sends `after_dot`, where `CLOSE` closes the
/// connection. Returns what it received.
async fn script<S: AsyncRead + AsyncWrite>(
    socket: S,
    hello: &'static str,
    pipelining: bool,
    after_dot: Vec<&'static str>,
) -> String {
    let (read, mut write) = tokio::io::split(socket);
    let mut reader = BufReader::new(read);
    let mut seen = String::new();
    write.write_all(b"220 scripted ready\r\n").await.unwrap();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap() == 0 {
            return seen;
        }
        seen.push_str(&line);
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" | "LHLO" if hello == "refuse-ehlo" => "502 5.5.1 what?\r\n".into(),
            "EHLO" | "LHLO" => {
                if pipelining {
                    "250-scripted\r\n250 PIPELINING\r\n".into()
                } else {
                    "250 scripted\r\n".into()
                }
            }
            "HELO" => "250 scripted\r\n".into(),
            "MAIL" | "RCPT" | "RSET" => "250 2.1.0 ok\r\n".into(),
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await.unwrap();
                let mut data = Vec::new();
                loop {
                    let mut byte = [0u8; 1];
                    reader.read_exact(&mut byte).await.unwrap();
                    data.push(byte[0]);
                    if data.ends_with(b"\r\n.\r\n") {
                        break;
                    }
                }
                seen.push_str(&String::from_utf8_lossy(&data));
                if let Some(close) = after_dot.iter().position(|r| *r == "CLOSE") {
                    write
                        .write_all(after_dot[..close].concat().as_bytes())
                        .await
                        .unwrap();
                    return seen;
                }
                after_dot.concat()
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await.unwrap();
                return seen;
            }
            _ => "500 unknown\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await.unwrap();
    }
}

fn settings(lmtp: bool) -> ClientSettings {
    ClientSettings {
        helo: "client.test".into(),
        tls: Tls::new().unwrap(),
        timeouts: Timeouts::default(),
        lmtp,
        signer: None,
    }
}

fn envelope(rcpts: &[&str]) -> (Envelope, Vec<JobRecipient>) {
    let msg = faxmta_queue::NewMessage {
        sender: "s@example.org".into(),
        recipients: rcpts.iter().map(|r| NewRecipient::new(*r)).collect(),
        client: ClientInfo::default(),
        ..Default::default()
    };
    let env = msg.into_envelope("ID1".into(), 0, 0);
    let jobs = rcpts
        .iter()
        .enumerate()
        .map(|(i, r)| JobRecipient {
            index: i,
            address: r.to_string(),
            mailbox: None,
        })
        .collect();
    (env, jobs)
}

#[tokio::test]
async fn lmtp_gives_one_result_per_recipient() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(peer(
        listener,
        "ok",
        true,
        vec![
            "250 2.0.0 <a@x> delivered\r\n",
            "452 4.2.2 <b@x> mailbox full\r\n",
        ],
    ));
    let mut conn = Connection::open(
        addr,
        "lmtp.test",
        &settings(true),
        Security::starttls(TlsPolicy::Off),
    )
    .await
    .unwrap();
    let (env, rcpts) = envelope(&["a@x", "b@x"]);
    let results = conn
        .send(&env, b"Subject: t\r\n\r\nbody\r\n", &rcpts)
        .await
        .unwrap();
    conn.quit().await;
    let seen = server.await.unwrap();
    assert!(seen.starts_with("LHLO client.test\r\n"), "{seen}");
    assert_eq!(results.len(), 2);
    assert_eq!(
        (results[0].index, results[0].status),
        (0, Status::Delivered)
    );
    assert_eq!((results[1].index, results[1].status), (1, Status::Deferred));
    assert_eq!(results[1].reply.status, "4.2.2");
}

#[tokio::test]
async fn helo_fallback_without_pipelining() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(peer(
        listener,
        "refuse-ehlo",
        false,
        vec!["250 2.0.0 queued\r\n"],
    ));
    let mut conn = Connection::open(
        addr,
        "old.test",
        &settings(false),
        Security::starttls(TlsPolicy::Opportunistic),
    )
    .await
    .unwrap();
    let (env, rcpts) = envelope(&["a@x"]);
    let results = conn
        .send(&env, b"Subject: t\r\n\r\n.dot\r\n", &rcpts)
        .await
        .unwrap();
    conn.quit().await;
    let seen = server.await.unwrap();
    assert!(
        seen.contains("EHLO client.test\r\nHELO client.test\r\n"),
        "{seen}"
    );
    // No extensions: no SIZE or BODY parameters, one command at a time,
    // and the leading dot stuffed.
    assert!(
        seen.contains("MAIL FROM:<s@example.org>\r\nRCPT TO:<a@x>\r\nDATA\r\n"),
        "{seen}"
    );
    assert!(seen.contains("\r\n..dot\r\n.\r\n"), "{seen}");
    assert_eq!(results[0].status, Status::Delivered);
}

#[tokio::test]
async fn lmtp_over_a_unix_socket_keeps_replies_read_before_a_break() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lmtp");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        script(
            socket,
            "ok",
            true,
            vec!["250 2.0.0 <a@x> saved\r\n", "CLOSE"],
        )
        .await
    });
    let mut conn = Connection::open_unix(&path, &settings(true)).await.unwrap();
    assert_eq!(conn.peer, Peer::Unix(path.clone()));
    let (env, rcpts) = envelope(&["a@x", "b@x", "c@x"]);
    let results = conn
        .send(&env, b"Subject: t\r\n\r\nbody\r\n", &rcpts)
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert!(seen.starts_with("LHLO client.test\r\n"), "{seen}");
    assert!(seen.contains("RCPT TO:<c@x>\r\nDATA\r\n"), "{seen}");
    let got: Vec<(usize, Status)> = results.iter().map(|r| (r.index, r.status)).collect();
    assert_eq!(
        got,
        vec![
            (0, Status::Delivered),
            (1, Status::Deferred),
            (2, Status::Deferred)
        ]
    );
    let who = format!("unix:{}", path.display());
    assert!(results[0].reply.text.starts_with(&who), "{:?}", results[0]);
    assert_eq!(results[1].reply.code, 451);
    assert!(
        results[1].reply.text.contains("lost connection with unix:"),
        "{:?}",
        results[1]
    );
    assert!(!conn.usable);
}

#[tokio::test]
async fn a_unix_socket_without_a_server_is_a_temporary_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nobody-listens");
    let Err(e) = Connection::open_unix(&path, &settings(true)).await else {
        panic!("connected to nothing");
    };
    assert_eq!(e.reply.code, 451);
    assert!(
        e.reply
            .text
            .starts_with(&format!("connect to unix:{}: ", path.display())),
        "{}",
        e.reply.text
    );
}

#[tokio::test]
async fn the_lmtp_transport_gives_each_recipient_its_own_outcome() {
    use faxmta_smtp::Dns;
    use faxmta_smtp::LmtpTransport;
    use faxmta_transport::{Job, LmtpTarget, NextHop, Transport};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lmtp");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        script(
            socket,
            "ok",
            true,
            vec![
                "250 2.0.0 <a@x> saved\r\n",
                "552 5.2.2 <b@x> quota exceeded\r\n",
                "451 4.3.0 <c@x> try later\r\n",
            ],
        )
        .await
    });
    let dns = Dns::new(
        &["127.0.0.1:9".parse().unwrap()],
        std::time::Duration::from_secs(1),
    )
    .unwrap();
    let transport = LmtpTransport::new(dns, settings(false));
    let (env, rcpts) = envelope(&["a@x", "b@x", "c@x"]);
    let hop = NextHop::Lmtp(LmtpTarget::Unix(path.clone()));
    let job = Job {
        envelope: &env,
        body: b"Subject: t\r\n\r\nbody\r\n",
        recipients: &rcpts,
        next_hop: &hop,
    };
    let outcomes = transport.deliver(job).await;
    let seen = server.await.unwrap();
    assert!(seen.starts_with("LHLO client.test\r\n"), "{seen}");
    assert!(seen.ends_with("QUIT\r\n"), "{seen}");
    let got: Vec<(usize, Status)> = outcomes.iter().map(|o| (o.index, o.status)).collect();
    assert_eq!(
        got,
        vec![
            (0, Status::Delivered),
            (1, Status::Failed),
            (2, Status::Deferred)
        ]
    );
    let relay = format!("lmtp:unix:{}", path.display());
    assert!(outcomes.iter().all(|o| o.relay == relay), "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| o.remote_mta.is_none() && !o.relayed));
    assert_eq!(outcomes[1].reply.status, "5.2.2");

    // Nobody listens any more: every recipient is deferred.
    drop(dir);
    let outcomes = transport.deliver(job).await;
    assert!(
        outcomes
            .iter()
            .all(|o| o.status == Status::Deferred && o.relay == relay),
        "{outcomes:?}"
    );
}

/// An address with CR LF (or NUL) in it is never put
/// on the wire — not as a recipient of its own, not at all — with or
/// without PIPELINING, over SMTP and LMTP; it fails with a clear reply
/// and the other recipients go on.
#[tokio::test]
async fn addresses_with_cr_lf_or_nul_are_never_sent() {
    for (pipelining, lmtp) in [(true, false), (false, false), (true, true)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let after_dot = if lmtp {
            vec!["250 2.0.0 ok\r\n"]
        } else {
            vec!["250 2.0.0 queued\r\n"]
        };
        let server = tokio::spawn(peer(listener, "ok", pipelining, after_dot));
        let mut conn = Connection::open(
            addr,
            "next.test",
            &settings(lmtp),
            Security::starttls(TlsPolicy::Off),
        )
        .await
        .unwrap();
        let (env, rcpts) = envelope(&[
            "good@x.test",
            "a@x.test\r\nRCPT TO:<evil@y.test>",
            "n\0ul@x.test",
        ]);
        let results = conn
            .send(&env, b"Subject: t\r\n\r\nbody\r\n", &rcpts)
            .await
            .unwrap();
        // A sender with CR LF fails the whole message before any command.
        let (mut bad, rcpts2) = envelope(&["good@x.test"]);
        bad.sender = "s@x.test\r\nRCPT TO:<evil@y.test>".into();
        let refused = conn
            .send(&bad, b"Subject: t\r\n\r\nbody\r\n", &rcpts2)
            .await
            .unwrap();
        conn.quit().await;
        let seen = server.await.unwrap();
        assert!(!seen.contains("evil"), "{seen}");
        assert!(!seen.contains("ul@x.test"), "{seen}");
        assert_eq!(seen.matches("MAIL FROM").count(), 1, "{seen}");
        let by_index = |i: usize| results.iter().find(|r| r.index == i).unwrap();
        assert_eq!(by_index(0).status, Status::Delivered, "{results:?}");
        for i in [1, 2] {
            let r = by_index(i);
            assert_eq!(r.status, Status::Failed, "{r:?}");
            assert_eq!((r.reply.code, r.reply.status.as_str()), (553, "5.1.3"));
            assert!(r.reply.text.contains("control character"), "{r:?}");
        }
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].status, Status::Failed);
        assert_eq!(
            (refused[0].reply.code, refused[0].reply.status.as_str()),
            (553, "5.1.7")
        );
    }
}
