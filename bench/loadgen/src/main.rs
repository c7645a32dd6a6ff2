//! `loadgen`: an open-loop SMTP load generator for `bench/peers.sh`.
//!
//! Offers messages at a fixed rate (message i is due at t0 + i/rate, however
//! slow the server is) over a pool of persistent SMTP sessions (EHLO once,
//! then MAIL/RCPT/DATA per message), and measures per message the time from
//! writing the final `\r\n.\r\n` to reading the server's reply: the
//! DATA-end-to-250 latency a client waits for a durable acknowledgement.
//! When every session is busy at a message's due time the message starts
//! late; that schedule lag is recorded separately, so an overloaded server
//! shows up as lag (coordinated omission made visible) instead of hiding in
//! fewer, faster samples.
//!
//! Loopback only (the server address must be in 127.0.0.0/8 or ::1) and
//! bounded: no message starts after `--deadline` seconds, and every reply is
//! awaited at most until the deadline plus a grace period.
//!
//! Prints one line of `key=value` figures on stdout (see `report`), exits
//! 0 when it measured, 1 when it could not connect at all, 2 on bad usage.

mod args;
mod session;
mod stats;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::args::Args;
use crate::session::{Outcome, Session};
use crate::stats::Stats;

/// How long after the deadline a reply is still waited for.
const GRACE: Duration = Duration::from_secs(5);

/// What every session task shares.
struct Shared {
    args: Args,
    /// The next message number to take.
    next: AtomicU64,
    /// When message 0 is due.
    t0: Instant,
    /// No message starts after this.
    deadline: Instant,
    body: Vec<u8>,
    stats: Mutex<Stats>,
}

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    // The sessions connect and say EHLO first; message 0 is due after that.
    let start = Instant::now();
    let t0 = start + args.warmup;
    let shared = Arc::new(Shared {
        deadline: start + args.deadline,
        t0,
        next: AtomicU64::new(0),
        body: session::body(args.size),
        stats: Mutex::new(Stats::default()),
        args,
    });
    let mut tasks = Vec::with_capacity(shared.args.sessions);
    for _ in 0..shared.args.sessions {
        let shared = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move { one_session(&shared).await }));
    }
    let hard_end = shared.deadline + GRACE + Duration::from_secs(1);
    for t in tasks {
        // A task still running at the hard end is abandoned (the runtime
        // drops it when this function returns); what it measured so far is
        // already in the shared stats.
        if tokio::time::timeout_at(hard_end, t).await.is_err() {
            lock(&shared.stats).abandoned += 1;
        }
    }
    let elapsed = Instant::now().saturating_duration_since(shared.t0);
    let stats = lock(&shared.stats).clone();
    println!("{}", stats.report(&shared.args, shared.t0, elapsed));
    if let Some(r) = &stats.first_refusal {
        eprintln!("loadgen: {} refused; the first: {r}", stats.non2xx);
    }
    if stats.connected == 0 {
        eprintln!(
            "loadgen: could not open any session to {}",
            shared.args.server
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn lock(m: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    // A panicking session cannot leave the counters half-updated in a way
    // that matters for a report: take them as they are.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One persistent session: connect, EHLO, then take due messages until
/// none is left or the deadline has passed.
async fn one_session(shared: &Shared) {
    let a = &shared.args;
    let reply_by = shared.deadline + GRACE;
    let mut s = match Session::open(a.server, &a.helo, reply_by).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: session to {} not opened: {e}", a.server);
            lock(&shared.stats).errors += 1;
            return;
        }
    };
    lock(&shared.stats).connected += 1;
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= a.messages {
            break;
        }
        let due = shared.t0 + Duration::from_secs_f64(i as f64 / a.rate);
        if due >= shared.deadline {
            lock(&shared.stats).unsent += 1;
            continue;
        }
        tokio::time::sleep_until(due).await;
        let lag = Instant::now().saturating_duration_since(due);
        match s.send(&a.from, &a.to, &shared.body).await {
            Ok(outcome) => {
                let mut st = lock(&shared.stats);
                if matches!(outcome, Outcome::Accepted(_)) {
                    st.last_accepted = Some(Instant::now());
                }
                st.record(outcome, lag, a.late);
            }
            Err(e) => {
                eprintln!("loadgen: session ended: {e}");
                let mut st = lock(&shared.stats);
                st.errors += 1;
                // This message is not measured; the other sessions take the rest.
                st.unsent += 1;
                return;
            }
        }
    }
    s.quit().await;
}
