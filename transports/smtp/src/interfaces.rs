//! The addresses of this machine's network interfaces: how a listener on
//! the unspecified address (`0.0.0.0`, `::`) recognises itself in an MX
//! set. A backup MX whose MX record names one of these addresses is us,
//! even when our `hostname` is not the MX record's name.
//!
//! The list comes from getifaddrs(3) and is cached for a minute, so
//! addresses added later (DHCP, a new alias) are seen without a reload.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a looked-up list is used before it is looked up again.
const FRESH_FOR: Duration = Duration::from_secs(60);

static CACHE: Mutex<Option<(Instant, Vec<IpAddr>)>> = Mutex::new(None);

/// Whether `ip` is an address of one of this machine's interfaces (every
/// loopback address counts: 127.0.0.0/8 is all local).
pub fn is_local(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return true;
    }
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let fresh = cache
        .as_ref()
        .is_some_and(|(at, _)| at.elapsed() < FRESH_FOR);
    if !fresh {
        match addresses() {
            Ok(list) => *cache = Some((Instant::now(), list)),
            Err(e) => {
                tracing::warn!("cannot list this host's interface addresses: {e}");
                if cache.is_none() {
                    return false;
                }
            }
        }
    }
    cache.as_ref().is_some_and(|(_, list)| list.contains(&ip))
}

/// Every address of every interface, as getifaddrs(3) lists them.
pub fn addresses() -> std::io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive
        // until freeifaddrs; ifa_addr is null or points to a sockaddr of
        // the family it names.
        unsafe {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list agrees with the kernel's own view in /proc/net/if_inet6
    /// (IPv6) and has the loopback address.
    #[test]
    fn lists_loopback_and_the_kernels_ipv6_addresses() {
        let list = addresses().unwrap();
        assert!(list.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{list:?}");
        if let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") {
            for line in text.lines() {
                let hex = line.split_whitespace().next().unwrap();
                let bytes: Vec<u8> = (0..16)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                    .collect();
                let ip = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap()));
                assert!(list.contains(&ip), "{ip} missing from {list:?}");
                assert!(is_local(ip));
            }
        }
        assert!(is_local("127.0.0.9".parse().unwrap()));
        assert!(is_local("::ffff:127.0.0.9".parse().unwrap()));
        assert!(!is_local("198.51.100.77".parse().unwrap()));
    }
}
