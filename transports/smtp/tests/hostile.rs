//! Tests of the client against hostile peers on loopback: a server
//! that trickles its replies a byte at a time, one that never ends a line,
//! one that says 421 and hangs up, one that drops the connection after the
//! data. Every wait is a deadline for the whole reply, so none of them can
//! hold a connection longer than the step's timeout.

use faxmta_queue::{ClientInfo, Envelope, NewRecipient};
use faxmta_smtp::{ClientSettings, Connection, Security, Timeouts, MAX_REPLY_LINE};
use faxmta_smtp::{Tls, TlsPolicy};
use faxmta_transport::JobRecipient;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Short timeouts: every step 1 s.
fn settings() -> ClientSettings {
    let s = Duration::from_secs(1);
    ClientSettings {
        helo: "client.test".into(),
        tls: Tls::new().unwrap(),
        timeouts: Timeouts {
            connect: s,
            helo: s,
            command: s,
            data_init: s,
            data_block: s,
            data_end: s,
        },
        lmtp: false,
        signer: None,
    }
}

fn envelope() -> (Envelope, Vec<JobRecipient>) {
    let msg = faxmta_queue::NewMessage {
        sender: "s@example.org".into(),
        recipients: vec![NewRecipient::new("r@example.net")],
        client: ClientInfo::default(),
        ..Default::default()
    };
    let rcpt = JobRecipient {
        index: 0,
        address: "r@example.net".into(),
        mailbox: None,
    };
    (msg.into_envelope("ID1".into(), 0, 0), vec![rcpt])
}

/// A listener on loopback and a task serving its first connection.
async fn serve<F, Fut>(peer: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        peer(socket).await;
    });
    addr
}

async fn open(addr: SocketAddr) -> Result<Connection, faxmta_smtp::HopError> {
    let security = Security::starttls(TlsPolicy::Off);
    Connection::open(addr, "peer.test", &settings(), security).await
}

/// Greet and answer EHLO (with PIPELINING when asked); the reader is
/// returned for what comes next.
async fn greet(socket: TcpStream, pipelining: bool) -> BufReader<TcpStream> {
    let mut r = BufReader::new(socket);
    r.get_mut().write_all(b"220 peer.test\r\n").await.unwrap();
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let ehlo: &[u8] = if pipelining {
        b"250-peer.test\r\n250 PIPELINING\r\n"
    } else {
        b"250 peer.test\r\n"
    };
    r.get_mut().write_all(ehlo).await.unwrap();
    r
}

#[tokio::test]
async fn a_greeting_trickled_a_byte_at_a_time_times_out_as_a_whole() {
    // 40 octets at one every 100 ms: 4 s for the greeting, while no
    // single read waits longer than 100 ms. A per-read timeout of 1 s
    // would never fire.
    let addr = serve(|mut s| async move {
        for b in b"220 slow.peer.test ESMTP trickling along\r\n" {
            if s.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    })
    .await;
    let started = Instant::now();
    let e = open(addr).await.err().expect("the greeting must time out");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert_eq!(e.reply.code, 451, "{:?}", e.reply);
    assert!(
        e.reply
            .text
            .contains("timed out while receiving the greeting"),
        "{:?}",
        e.reply
    );
}

#[tokio::test]
async fn a_silent_server_times_out_at_the_greeting() {
    let addr = serve(|mut s| async move {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    })
    .await;
    let started = Instant::now();
    let e = open(addr).await.err().expect("no greeting: a timeout");
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert!(e.reply.text.contains("timed out"), "{:?}", e.reply);
}

#[tokio::test]
async fn a_line_without_end_is_cut_at_the_line_limit() {
    // A megabyte of greeting without a line end: the client stops at
    // the limit instead of buffering it all.
    let addr = serve(|mut s| async move {
        let junk = vec![b'x'; 1 << 20];
        let _ = s.write_all(b"220 ").await;
        let _ = s.write_all(&junk).await;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    })
    .await;
    let e = open(addr).await.err().expect("an endless line is refused");
    assert!(
        e.reply
            .text
            .contains(&format!("longer than {MAX_REPLY_LINE} octets")),
        "{:?}",
        e.reply
    );
}

#[tokio::test]
async fn too_many_reply_lines_end_the_connection() {
    let addr = serve(|mut s| async move {
        let mut many = String::new();
        for _ in 0..1000 {
            many.push_str("220-more\r\n");
        }
        let _ = s.write_all(many.as_bytes()).await;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    })
    .await;
    let e = open(addr)
        .await
        .err()
        .expect("a reply without end is refused");
    assert!(
        e.reply.text.contains("more than 200 lines"),
        "{:?}",
        e.reply
    );
}

#[tokio::test]
async fn a_421_after_a_pipelined_mail_defers_with_the_servers_words() {
    let addr = serve(|s| async move {
        let mut r = greet(s, true).await;
        let mut line = String::new();
        for _ in 0..3 {
            // MAIL, RCPT, DATA: all read, so that closing sends no RST.
            r.read_line(&mut line).await.unwrap();
        }
        let _ = r
            .get_mut()
            .write_all(b"421 4.3.2 too busy, closing\r\n")
            .await;
        // …and hang up.
    })
    .await;
    let mut conn = open(addr).await.unwrap();
    let (env, rcpts) = envelope();
    let started = Instant::now();
    let e = conn.send(&env, b"Subject: x\r\n\r\nhi\r\n", &rcpts).await;
    let e = e.expect_err("421 at MAIL fails the transaction");
    assert!(started.elapsed() < Duration::from_millis(900));
    assert_eq!((e.code, e.status.as_str()), (421, "4.3.2"), "{e:?}");
    assert!(e.text.contains("too busy, closing"), "{e:?}");
    assert!(!conn.usable, "a closing connection is not kept");
}

#[tokio::test]
async fn a_server_that_hangs_up_after_the_dot_defers() {
    let addr = serve(|s| async move {
        let mut r = greet(s, false).await;
        let mut line = String::new();
        for reply in ["250 ok\r\n", "250 ok\r\n", "354 go\r\n"] {
            line.clear();
            r.read_line(&mut line).await.unwrap();
            r.get_mut().write_all(reply.as_bytes()).await.unwrap();
        }
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap() == 0 || line == ".\r\n" {
                break;
            }
        }
        // The dot arrived: close without a reply.
    })
    .await;
    let mut conn = open(addr).await.unwrap();
    let (env, rcpts) = envelope();
    let e = conn.send(&env, b"Subject: x\r\n\r\nhi\r\n", &rcpts).await;
    let e = e.expect_err("no reply to the dot: the transaction failed");
    assert_eq!((e.code, e.status.as_str()), (451, "4.4.2"), "{e:?}");
    assert!(
        e.text.contains("lost connection with peer.test[127.0.0.1:"),
        "{e:?}"
    );
    assert!(
        e.text.contains("while receiving the reply to end of DATA"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_reply_to_the_dot_trickled_slowly_times_out() {
    let addr = serve(|s| async move {
        let mut r = greet(s, false).await;
        let mut line = String::new();
        for reply in ["250 ok\r\n", "250 ok\r\n", "354 go\r\n"] {
            line.clear();
            r.read_line(&mut line).await.unwrap();
            r.get_mut().write_all(reply.as_bytes()).await.unwrap();
        }
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap() == 0 || line == ".\r\n" {
                break;
            }
        }
        for b in b"250 2.0.0 queued as ABCDEFGHIJKLMNOP\r\n" {
            if r.get_mut().write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let mut conn = open(addr).await.unwrap();
    let (env, rcpts) = envelope();
    let started = Instant::now();
    let e = conn.send(&env, b"Subject: x\r\n\r\nhi\r\n", &rcpts).await;
    let e = e.expect_err("the reply to the dot must time out");
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert!(
        e.text
            .contains("timed out while receiving the reply to end of DATA"),
        "{e:?}"
    );
}
