//! The open files limit. Every SMTP session is a descriptor, so at start
//! the soft `RLIMIT_NOFILE` is raised to the hard limit (as Postfix's
//! master and nginx do) and logged, with a warning when `[smtp]
//! max_connections` would not fit in it.

use crate::config::Config;

/// Descriptors kept for everything that is not an SMTP session: the
/// queue, listeners, outbound deliveries, the admin listener, logs.
const RESERVE: u64 = 256;

/// Raise the soft open files limit to the hard one; log what it is.
pub fn raise_open_files_limit(config: &Config) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(
            "cannot read the open files limit: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
            tracing::info!("open files limit raised from {before} to {}", lim.rlim_cur);
        } else {
            tracing::warn!(
                "cannot raise the open files limit from {before} to {}: {}",
                lim.rlim_max,
                std::io::Error::last_os_error()
            );
        }
    } else {
        tracing::info!("open files limit {}", lim.rlim_cur);
    }
    let wanted = config.smtp.max_connections as u64 + RESERVE;
    if lim.rlim_cur < wanted {
        tracing::warn!(
            "the open files limit {} is below [smtp] max_connections {} + {RESERVE}: clients may be refused for lack of descriptors (raise ulimit -n / LimitNOFILE)",
            lim.rlim_cur,
            config.smtp.max_connections
        );
    }
}
