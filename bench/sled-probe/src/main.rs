//! Resident memory of a sled 0.34 tree written as faxmta's queue writes
//! its trees, to tell what a pattern costs (docs/reliability.md, the long
//! soak):
//!
//!   sled-probe failed N [CACHE]   N inserts of increasing 13-hex-digit
//!                                 keys with 8-byte values, never removed
//!                                 (the old `failed_messages` tree)
//!   sled-probe fifo N [CACHE]     N inserts of 1 KiB values, each removed
//!                                 500 inserts later (envelopes: first in,
//!                                 first out)
//!
//! CACHE is sled's `cache_capacity` in bytes (default 64 MiB, the
//! queue's). Prints VmRSS ten times along the way. The database lives in
//! a temporary directory, removed at the end.

use std::time::Instant;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: sled-probe failed|fifo N [CACHE_BYTES]";
    let mode = args.get(1).ok_or(usage)?.clone();
    let n: u64 = args.get(2).ok_or(usage)?.parse()?;
    let cache: u64 = match args.get(3) {
        Some(c) => c.parse()?,
        None => 64 << 20,
    };
    if !matches!(mode.as_str(), "failed" | "fifo") || n < 10 {
        return Err(usage.into());
    }
    let dir = std::env::temp_dir().join(format!("sled-probe-{}", std::process::id()));
    let db = sled::Config::new()
        .path(&dir)
        .flush_every_ms(Some(500))
        .cache_capacity(cache)
        .open()?;
    let tree = db.open_tree(if mode == "failed" {
        "failed_messages"
    } else {
        "envelopes"
    })?;
    let start = rss_kib();
    let t0 = Instant::now();
    let value = vec![b'x'; 1024];
    let key = |i: u64| format!("{:013X}", 0x19A0000000000u64 + i * 7);
    for i in 0..n {
        if mode == "failed" {
            tree.insert(key(i).as_bytes(), &i.to_be_bytes())?;
        } else {
            tree.insert(key(i).as_bytes(), value.as_slice())?;
            if i >= 500 {
                tree.remove(key(i - 500).as_bytes())?;
            }
        }
        if (i + 1) % (n / 10) == 0 {
            let now = rss_kib();
            let grown = now.saturating_sub(start);
            println!(
                "{mode} {:>8} entries: RSS {now:>7} KiB (+{grown:>6} KiB, {:>4.0} B an entry) {:.1} s",
                i + 1,
                grown as f64 * 1024.0 / (i + 1) as f64,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    db.flush()?;
    drop((tree, db));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
