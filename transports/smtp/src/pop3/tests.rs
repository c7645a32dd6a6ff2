//! The POP3 client against a scripted server on 127.0.0.1.

use super::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

/// A server that sends `greeting`, then for each `(command, answer)`
/// reads one line, checks it equals `command`, and writes `answer`
/// verbatim, then holds the connection until the client closes it.
/// Returns the port and a handle yielding the lines read.
async fn scripted(
    greeting: &'static str,
    script: Vec<(&'static str, String)>,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        write.write_all(greeting.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        for (command, answer) in script {
            let mut line = String::new();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                break;
            }
            let line = line.trim_end().to_string();
            assert_eq!(line, command);
            seen.push(line);
            write.write_all(answer.as_bytes()).await.unwrap();
        }
        // Keep the connection until the client closes it.
        let mut rest = Vec::new();
        let _ = read.read_to_end(&mut rest).await;
        seen
    });
    (addr, task)
}

fn plain() -> Pop3Settings {
    Pop3Settings {
        tls: Pop3Tls::None,
        command_timeout: Duration::from_secs(2),
        ..Pop3Settings::default()
    }
}

fn tls() -> Tls {
    Tls::new().unwrap()
}

#[tokio::test]
async fn a_whole_session_with_dot_unstuffing() {
    let message = "Subject: x\r\n\r\n..leading dot\r\n...\r\nend\r\n.\r\n";
    let (addr, server) = scripted(
        "+OK POP3 ready\r\n",
        vec![
            ("USER fax", "+OK\r\n".into()),
            ("PASS secret", "+OK logged in\r\n".into()),
            ("STAT", "+OK 2 320\r\n".into()),
            ("LIST", "+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n".into()),
            ("UIDL", "+OK\r\n1 abc\r\n2 def\r\n.\r\n".into()),
            ("RETR 1", format!("+OK 120 octets\r\n{message}")),
            ("DELE 1", "+OK deleted\r\n".into()),
            ("QUIT", "+OK bye\r\n".into()),
        ],
    )
    .await;
    let mut c = Pop3Client::connect("localhost", addr, &plain(), &tls())
        .await
        .unwrap();
    c.login("fax", "secret").await.unwrap();
    assert_eq!(c.stat().await.unwrap(), (2, 320));
    assert_eq!(c.list().await.unwrap(), vec![(1, 120), (2, 200)]);
    assert_eq!(
        c.uidl().await.unwrap(),
        vec![(1, "abc".to_string()), (2, "def".to_string())]
    );
    let got = c.retr(1).await.unwrap();
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "Subject: x\r\n\r\n.leading dot\r\n..\r\nend\r\n"
    );
    c.dele(1).await.unwrap();
    c.quit().await.unwrap();
    assert_eq!(server.await.unwrap().len(), 8);
}

#[tokio::test]
async fn an_err_reply_is_an_error_with_the_server_text() {
    let (addr, _server) = scripted(
        "+OK ready\r\n",
        vec![
            ("USER fax", "+OK\r\n".into()),
            (
                "PASS wrong",
                "-ERR [AUTH] Authentication failed.\r\n".into(),
            ),
        ],
    )
    .await;
    let mut c = Pop3Client::connect("localhost", addr, &plain(), &tls())
        .await
        .unwrap();
    let e = c.login("fax", "wrong").await.unwrap_err();
    assert!(matches!(e, Pop3Error::Refused { .. }), "{e}");
    assert!(e.to_string().contains("Authentication failed"), "{e}");
    assert!(!e.to_string().contains("wrong"), "the password leaks: {e}");
}

#[tokio::test]
async fn a_bad_greeting_is_refused() {
    let (addr, _server) = scripted("-ERR go away\r\n", vec![]).await;
    let e = Pop3Client::connect("localhost", addr, &plain(), &tls())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("go away"), "{e}");
}

/// A client of the scripted server at `addr` whose messages may have
/// `max_message` octets.
async fn limited(addr: SocketAddr, max_message: usize) -> Pop3Client {
    let settings = Pop3Settings {
        max_message,
        ..plain()
    };
    Pop3Client::connect("localhost", addr, &settings, &tls())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_message_larger_than_listed_is_skipped_and_the_session_goes_on() {
    // LIST said 100 octets; RETR 2 sends 900 (over the 500 limit): the
    // answer is read to its end and dropped, the session stays usable,
    // so DELE 1 and QUIT still take effect.
    let big = format!("+OK\r\n{}\r\n.\r\n", "x".repeat(900));
    let (addr, server) = scripted(
        "+OK\r\n",
        vec![
            ("LIST", "+OK\r\n1 20\r\n2 100\r\n.\r\n".into()),
            ("RETR 1", "+OK\r\nSubject: a\r\n\r\nsmall\r\n.\r\n".into()),
            ("DELE 1", "+OK\r\n".into()),
            ("RETR 2", big),
            ("QUIT", "+OK bye\r\n".into()),
        ],
    )
    .await;
    let mut c = limited(addr, 500).await;
    assert_eq!(c.list().await.unwrap(), vec![(1, 20), (2, 100)]);
    assert_eq!(c.retr(1).await.unwrap(), b"Subject: a\r\n\r\nsmall\r\n");
    c.dele(1).await.unwrap();
    let e = c.retr(2).await.unwrap_err();
    assert!(matches!(e, Pop3Error::TooBig(2, 500)), "{e}");
    c.quit().await.unwrap();
    assert_eq!(
        server.await.unwrap(),
        ["LIST", "RETR 1", "DELE 1", "RETR 2", "QUIT"]
    );
}

#[tokio::test]
async fn an_endless_answer_over_the_limit_closes_the_session() {
    // Over the limit and past what is drained: the session is given up.
    let endless = format!("+OK\r\n{}", format!("{}\r\n", "z".repeat(998)).repeat(1100));
    let (addr, _server) = scripted("+OK\r\n", vec![("RETR 1", endless)]).await;
    let mut c = limited(addr, 100).await;
    let e = c.retr(1).await.unwrap_err();
    assert!(matches!(e, Pop3Error::TooBig(1, 100)), "{e}");
    assert!(c.dele(1).await.is_err(), "the session was closed");
}

#[tokio::test]
async fn an_endless_line_is_cut() {
    let endless = "+OK ".to_string() + &"y".repeat(10_000);
    let (addr, _server) = scripted("+OK\r\n", vec![("STAT", endless)]).await;
    let settings = Pop3Settings {
        max_line: 1000,
        ..plain()
    };
    let mut c = Pop3Client::connect("localhost", addr, &settings, &tls())
        .await
        .unwrap();
    let e = c.stat().await.unwrap_err();
    assert!(matches!(e, Pop3Error::LineTooLong(_)), "{e}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // Greets, then never answers STAT.
    let (addr, _server) = scripted("+OK\r\n", vec![("STAT", String::new())]).await;
    let settings = Pop3Settings {
        command_timeout: Duration::from_millis(300),
        ..plain()
    };
    let mut c = Pop3Client::connect("localhost", addr, &settings, &tls())
        .await
        .unwrap();
    let e = c.stat().await.unwrap_err();
    assert!(matches!(e, Pop3Error::Timeout(_)), "{e}");
}

#[tokio::test]
async fn stls_refused_is_an_error_not_a_plain_login() {
    let (addr, server) = scripted("+OK\r\n", vec![("STLS", "-ERR no TLS\r\n".into())]).await;
    let settings = Pop3Settings {
        tls: Pop3Tls::Starttls,
        ..plain()
    };
    let e = Pop3Client::connect("localhost", addr, &settings, &tls())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Pop3Error::Refused { .. }), "{e}");
    assert_eq!(server.await.unwrap(), vec!["STLS".to_string()]);
}

#[tokio::test]
async fn malformed_listings_are_errors() {
    let (addr, _server) = scripted(
        "+OK\r\n",
        vec![
            ("STAT", "+OK many\r\n".into()),
            ("LIST", "+OK\r\n1 lots\r\n.\r\n".into()),
        ],
    )
    .await;
    let mut c = Pop3Client::connect("localhost", addr, &plain(), &tls())
        .await
        .unwrap();
    assert!(matches!(
        c.stat().await.unwrap_err(),
        Pop3Error::Malformed(..)
    ));
    assert!(matches!(
        c.list().await.unwrap_err(),
        Pop3Error::Malformed(..)
    ));
}

#[tokio::test]
async fn line_breaks_in_credentials_are_refused() {
    let (addr, server) = scripted("+OK\r\n", vec![]).await;
    let mut c = Pop3Client::connect("localhost", addr, &plain(), &tls())
        .await
        .unwrap();
    assert!(c.login("fax\r\nDELE 1", "x").await.is_err());
    drop(c);
    assert!(server.await.unwrap().is_empty(), "nothing was sent");
}
