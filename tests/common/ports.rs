//! Ports for the servers and peers of a test, never the same as another
//! test's running beside it. A port is picked at random below the
//! kernel's ephemeral range, checked free, and held by a lock file
//! (`flock`) in the temporary directory until this test process ends:
//! between the moment a port is picked and the moment its server binds
//! it (a second for Postfix), no other test process — and no second pick
//! of this one — takes it.

use std::fs::File;
use std::net::{IpAddr, TcpListener};
use std::sync::Mutex;

/// Ports tests listen on: below the kernel's ephemeral range (32768 and
/// up), so that the many client connections of tests running in parallel
/// never take a port between the moment it is picked and the moment the
/// server binds it.
pub const TEST_PORTS: std::ops::Range<u16> = 10_000..32_000;

/// The lock files of the ports this process holds.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Hold `port` for this process; false if a test (this one included)
/// holds it already.
fn reserve(port: u16) -> bool {
    let dir = std::env::temp_dir().join("faxmta-test-ports");
    std::fs::create_dir_all(&dir).expect("the port lock directory");
    let file = File::create(dir.join(format!("{port}.lock"))).expect("a port lock file");
    if file.try_lock().is_err() {
        return false;
    }
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(file);
    true
}

/// A port in `range`, picked at random, for which `free` holds and which
/// no other test holds; held from now on.
pub fn pick_port(range: std::ops::Range<u16>, free: impl Fn(u16) -> bool) -> u16 {
    for _ in 0..1000 {
        let port = range.start + rand::random::<u16>() % (range.end - range.start);
        if free(port) && reserve(port) {
            return port;
        }
    }
    panic!("no free port in {range:?}");
}

/// A free TCP port on 127.0.0.1 in [`TEST_PORTS`].
pub fn free_port() -> u16 {
    free_port_on(&["127.0.0.1"])
}

/// A port in [`TEST_PORTS`] free for TCP on every one of `ips`.
pub fn free_port_on(ips: &[&str]) -> u16 {
    let addrs: Vec<IpAddr> = ips
        .iter()
        .map(|ip| ip.parse().expect("an IP address"))
        .collect();
    pick_port(TEST_PORTS, |port| {
        addrs
            .iter()
            .all(|&addr| TcpListener::bind((addr, port)).is_ok())
    })
}
