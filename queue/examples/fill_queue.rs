//! Fill a queue directory with many small messages, for bench/big-queue.sh.
//!
//! Every message goes through the real store API ([`Store::enqueue`]:
//! body file fsynced, envelope inserted, group commit), from many
//! concurrent tasks so that their syncs are shared; then its recipient is
//! put in the state the scheduler would have left it in:
//!
//! - `MESSAGES - HELD` messages to `userN@RELAY_DOMAIN`: deferred after one
//!   attempt (421 connection refused), next attempt in `--defer` seconds;
//! - `HELD` messages to `userN@ETRN_DOMAIN`: held for ETRN, their next
//!   attempt at their expiry (arrival + `--lifetime`), as the scheduler
//!   marks a recipient of an ETRN domain it looked at.
//!
//! ```text
//! cargo run --release -p faxmta-queue --example fill_queue -- \
//!     DIR MESSAGES HELD [--relay relay.test] [--etrn etrn.test] \
//!     [--size 1024] [--concurrency 256] [--defer 3600] [--lifetime 432000]
//! ```
//!
//! Prints progress to stderr and `filled N messages in S s (R/s)` last.

use faxmta_queue::{now_unix, Etrn, NewMessage, NewRecipient, RcptState, Reply, Store};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

struct Args {
    dir: PathBuf,
    messages: usize,
    held: usize,
    relay: String,
    etrn: String,
    size: usize,
    concurrency: usize,
    defer: u64,
    lifetime: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut args = Args {
        dir: PathBuf::new(),
        messages: 0,
        held: 0,
        relay: "relay.test".into(),
        etrn: "etrn.test".into(),
        size: 1024,
        concurrency: 256,
        defer: 3600,
        lifetime: 5 * 86_400,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
        match a.as_str() {
            "--relay" => args.relay = value("--relay")?,
            "--etrn" => args.etrn = value("--etrn")?,
            "--size" => args.size = number(value("--size")?)? as usize,
            "--concurrency" => args.concurrency = number(value("--concurrency")?)?.max(1) as usize,
            "--defer" => args.defer = number(value("--defer")?)?,
            "--lifetime" => args.lifetime = number(value("--lifetime")?)?,
            _ => positional.push(a),
        }
    }
    let [dir, messages, held] = positional.as_slice() else {
        return Err("usage: fill_queue DIR MESSAGES HELD [options]".into());
    };
    args.dir = PathBuf::from(dir);
    args.messages = messages.parse().map_err(|e| format!("{messages}: {e}"))?;
    args.held = held.parse().map_err(|e| format!("{held}: {e}"))?;
    if args.held > args.messages {
        return Err("HELD cannot exceed MESSAGES".into());
    }
    Ok(args)
}

/// A small message of about `size` octets.
fn body(i: usize, rcpt: &str, size: usize) -> Vec<u8> {
    let mut text = format!(
        "From: <bench@source.test>\r\nTo: <{rcpt}>\r\nSubject: big queue {i}\r\n\
         Message-ID: <big-queue-{i}@source.test>\r\n\r\n"
    );
    let line = "The quick brown fox jumps over the lazy dog, once more for the queue.\r\n";
    while text.len() + line.len() <= size {
        text.push_str(line);
    }
    text.into_bytes()
}

async fn fill_one(store: &Store, args: &Args, i: usize) -> Result<(), String> {
    let held = i < args.held;
    let rcpt = if held {
        format!("user{i}@{}", args.etrn)
    } else {
        format!("user{i}@{}", args.relay)
    };
    let msg = NewMessage {
        sender: "bench@source.test".into(),
        recipients: vec![NewRecipient {
            etrn: held.then_some(Etrn::Held),
            ..NewRecipient::new(rcpt.clone())
        }],
        ..NewMessage::local("bench@source.test", &[], "source.test", b"")
    };
    let id = store.new_id().map_err(|e| e.to_string())?;
    let env = store
        .enqueue(id, msg, &body(i, &rcpt, args.size))
        .await
        .map_err(|e| e.to_string())?;
    let now = now_unix();
    store
        .update(&env.id, |e| {
            let r = &mut e.recipients[0];
            if held {
                r.next_attempt = e.arrival + args.lifetime;
            } else {
                r.state = RcptState::Deferred;
                r.attempts = 1;
                r.last_attempt = now;
                r.next_attempt = now + args.defer;
                r.relay = Some("127.0.0.1:9".into());
                r.last_reply = Some(Reply::new(
                    421,
                    "4.4.1",
                    "cannot connect to 127.0.0.1:9: Connection refused",
                ));
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("fill_queue: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fill_queue: cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: Result<(usize, f64), String> = runtime.block_on(async {
        let opening = Instant::now();
        let store = Store::open(&args.dir).map_err(|e| e.to_string())?;
        eprintln!(
            "fill_queue: opened the queue ({} messages) in {:.2} s",
            store.len(),
            opening.elapsed().as_secs_f64()
        );
        let start = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..args.concurrency {
            let (store, args, next) = (store.clone(), args.clone(), next.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= args.messages {
                        return Ok::<(), String>(());
                    }
                    fill_one(&store, &args, i).await?;
                    if (i + 1) % 50_000 == 0 {
                        eprintln!("fill_queue: {} messages", i + 1);
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| e.to_string())??;
        }
        // The recipient states written after each enqueue, on disk too.
        store.sync().await.map_err(|e| e.to_string())?;
        Ok((store.len(), start.elapsed().as_secs_f64()))
    });
    match result {
        Ok((n, secs)) => {
            println!(
                "filled {n} messages in {secs:.1} s ({:.0}/s)",
                n as f64 / secs.max(1e-9)
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fill_queue: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
