//! Wall-clock helpers: the queue keeps times as Unix seconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A short human form of a duration in seconds, as `mailq` tools print it:
/// `45s`, `12m`, `3h20m`, `2d4h`.
pub fn format_duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h{m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_mailq() {
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(720), "12m");
        assert_eq!(format_duration(3 * 3600 + 20 * 60), "3h20m");
        assert_eq!(format_duration(2 * 86_400 + 4 * 3600 + 5), "2d4h");
    }
}
