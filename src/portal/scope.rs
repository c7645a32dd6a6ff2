//! What a list page shares: whose faxes the viewer sees (as query
//! filters), the search form's period, dates in words, and escaping for
//! links.

use super::{Role, Viewer};
use axum::http::StatusCode;
use axum::response::Response;
use faxmta_queue::{QueueError, Store};
use serde::Deserialize;

/// Run a read of the store on a blocking thread; when it fails, the
/// error page saying `what` cannot be read now (503).
pub async fn read<T: Send + 'static>(
    viewer: &Viewer,
    what: &str,
    f: impl FnOnce(&Store) -> Result<T, QueueError> + Send + 'static,
) -> Result<T, Box<Response>> {
    let store = viewer.ctx.store.clone();
    let failed = |why: String| {
        Box::new(super::page::error(
            Some(viewer),
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} cannot be read now: {why}"),
        ))
    };
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// The filters of the viewer's faxes: their own address, and the domains
/// they administer; both `None` for an administrator (everything).
pub fn whose(viewer: &Viewer) -> (Option<Vec<String>>, Option<Vec<String>>) {
    match &viewer.role {
        Role::Admin => (None, None),
        Role::DomainAdmin(domains) => (Some(vec![viewer.name.clone()]), Some(domains.clone())),
        Role::User => (Some(vec![viewer.name.clone()]), None),
    }
}

/// Percent-encoding for a query value.
pub fn escape(text: &str) -> String {
    super::viewer::url_escape(text).replace('/', "%2F")
}

/// A time in words: `2026-12-06 13:40 UTC`.
pub fn when(unix: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(unix).unwrap_or(0), 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Unix seconds at the start of day `text` (`YYYY-MM-DD`, UTC).
pub fn day_start(text: &str) -> Option<u64> {
    let date = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let t = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    u64::try_from(t).ok()
}

/// The search form of a list: words, and a period of whole days.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Period {
    /// Words to look for (a number, a name, a station id).
    #[serde(default)]
    pub q: String,
    /// The first day (`YYYY-MM-DD`), included.
    #[serde(default)]
    pub from: String,
    /// The last day, included.
    #[serde(default)]
    pub to: String,
}

impl Period {
    pub fn since(&self) -> Option<u64> {
        day_start(&self.from)
    }

    /// The end: the start of the day after `to`.
    pub fn until(&self) -> Option<u64> {
        day_start(&self.to).map(|t| t + 86_400)
    }

    /// The form's fields as a query string (ending with `&` when not
    /// empty), for the next page's link.
    pub fn query(&self) -> String {
        let mut out = String::new();
        for (k, v) in [("q", &self.q), ("from", &self.from), ("to", &self.to)] {
            if !v.trim().is_empty() {
                out.push_str(&format!("{k}={}&", escape(v.trim())));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_whole_days() {
        let p = Period {
            q: "+1 555".into(),
            from: "2026-12-01".into(),
            to: "2026-12-01".into(),
        };
        assert_eq!(p.since(), Some(1_796_083_200));
        assert_eq!(p.until(), Some(1_796_083_200 + 86_400));
        assert_eq!(p.query(), "q=%2B1%20555&from=2026-12-01&to=2026-12-01&");
        assert_eq!(Period::default().since(), None);
        assert_eq!(day_start("yesterday"), None);
        assert_eq!(when(1_796_083_200), "2026-12-01 00:00 UTC");
        assert_eq!(escape("a/b@c"), "a%2Fb%40c");
    }
}
