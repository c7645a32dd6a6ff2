//! Usage per user or per group over a period, the billing view of fax
//! servers: faxes, pages and minutes on the line, sent and received, from
//! the usage rows the scheduler and the inbound path write (one per fax
//! and user). As a table, or as CSV (the totals, or every row with
//! `detail=1`). A domain administrator sees the users of their domains.

use super::Admin;
use crate::portal::page::{error, html, Nav};
use crate::portal::scope::{day_start, escape};
use crate::portal::Viewer;
use askama::Template;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use faxmta_queue::{UsageRecord, USAGE_RECEIVED};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize, Default, Clone)]
pub struct Period {
    /// First day (`YYYY-MM-DD`, UTC), included; default: the first of
    /// this month.
    #[serde(default)]
    from: String,
    /// Last day, included; default: today.
    #[serde(default)]
    to: String,
    /// `user` (default) or `group`.
    #[serde(default)]
    by: String,
    /// CSV: every row instead of the totals.
    #[serde(default)]
    detail: String,
}

impl Period {
    fn bounds(&self) -> (String, String, u64, u64) {
        let today = chrono::Utc::now().date_naive();
        let from = match self.from.trim() {
            "" => today.format("%Y-%m-01").to_string(),
            f => f.to_string(),
        };
        let to = match self.to.trim() {
            "" => today.format("%Y-%m-%d").to_string(),
            t => t.to_string(),
        };
        let since = day_start(&from).unwrap_or(0);
        let until = day_start(&to).map(|t| t + 86_400).unwrap_or(u64::MAX);
        (from, to, since, until)
    }

    fn by_group(&self) -> bool {
        self.by == "group"
    }
}

/// The totals of one user or group.
#[derive(Default, Clone)]
pub struct Total {
    pub name: String,
    pub sent: u64,
    pub sent_pages: u64,
    pub sent_ms: u64,
    pub failed: u64,
    pub received: u64,
    pub received_pages: u64,
    pub received_ms: u64,
}

impl Total {
    fn add(&mut self, row: &UsageRecord) {
        if row.direction == USAGE_RECEIVED {
            self.received += 1;
            self.received_pages += u64::from(row.pages);
            self.received_ms += row.line_ms;
        } else {
            if row.outcome == "sent" {
                self.sent += 1;
            } else {
                self.failed += 1;
            }
            self.sent_pages += u64::from(row.pages);
            self.sent_ms += row.line_ms;
        }
    }

    pub fn sent_minutes(&self) -> String {
        format!("{:.1}", self.sent_ms as f64 / 60_000.0)
    }

    pub fn received_minutes(&self) -> String {
        format!("{:.1}", self.received_ms as f64 / 60_000.0)
    }
}

/// The rows of the period the viewer may see.
async fn rows(viewer: &Viewer, since: u64, until: u64) -> Result<Vec<UsageRecord>, String> {
    let store = viewer.ctx.store.clone();
    let rows = tokio::task::spawn_blocking(move || store.usage(since, until))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .filter(|r| viewer.is_global_admin() || viewer.administers(&r.user))
        .collect())
}

/// Totals by user or by group (a row counts for each group of its
/// user; a user in none counts under "(no group)").
fn totals(rows: &[UsageRecord], by_group: bool) -> Vec<Total> {
    let mut map: BTreeMap<String, Total> = BTreeMap::new();
    for row in rows {
        let names: Vec<String> = match by_group {
            false => vec![match row.user.as_str() {
                "" => "(nobody)".to_string(),
                u => u.to_lowercase(),
            }],
            true if row.groups.is_empty() => vec!["(no group)".to_string()],
            true => row.groups.clone(),
        };
        for name in names {
            let t = map.entry(name.clone()).or_insert_with(|| Total {
                name,
                ..Default::default()
            });
            t.add(row);
        }
    }
    map.into_values().collect()
}

#[derive(Template)]
#[template(path = "admin/usage.html")]
struct UsagePage {
    nav: Nav,
    from: String,
    to: String,
    by_group: bool,
    totals: Vec<Total>,
    all: Total,
    csv: String,
    detail_csv: String,
}

/// `GET /portal/admin/usage`.
pub async fn show(Admin(viewer): Admin, Query(p): Query<Period>) -> Response {
    let (from, to, since, until) = p.bounds();
    let rows = match rows(&viewer, since, until).await {
        Ok(r) => r,
        Err(e) => {
            return error(
                Some(&viewer),
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The usage cannot be read now: {e}"),
            )
        }
    };
    let mut all = Total {
        name: "all".into(),
        ..Default::default()
    };
    for r in &rows {
        all.add(r);
    }
    let by = if p.by_group() { "group" } else { "user" };
    let query = format!("from={}&to={}&by={by}", escape(&from), escape(&to));
    html(&UsagePage {
        nav: Nav::new(&viewer, "Usage"),
        totals: totals(&rows, p.by_group()),
        by_group: p.by_group(),
        csv: format!("/portal/admin/usage.csv?{query}"),
        detail_csv: format!("/portal/admin/usage.csv?{query}&detail=1"),
        from,
        to,
        all,
    })
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line
/// break; a leading `=`, `+`, `-` or `@` is prefixed with `'` so that a
/// spreadsheet does not take it for a formula.
fn field(text: &str) -> String {
    let text = match text.chars().next() {
        Some('=' | '+' | '-' | '@') if !text.chars().all(|c| c.is_ascii_digit() || c == '+') => {
            format!("'{text}")
        }
        _ => text.to_string(),
    };
    match text.contains([',', '"', '\n', '\r']) {
        true => format!("\"{}\"", text.replace('"', "\"\"")),
        false => text,
    }
}

/// `GET /portal/admin/usage.csv`.
pub async fn csv(Admin(viewer): Admin, Query(p): Query<Period>) -> Response {
    let (from, to, since, until) = p.bounds();
    let rows = match rows(&viewer, since, until).await {
        Ok(r) => r,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    };
    let mut out = String::new();
    if p.detail == "1" {
        out.push_str("time,direction,user,groups,number,pages,line_seconds,outcome,fax\r\n");
        for r in &rows {
            let time = crate::portal::scope::when(r.at);
            let line = [
                field(&time),
                field(&r.direction),
                field(&r.user),
                field(&r.groups.join(" ")),
                field(&r.number),
                r.pages.to_string(),
                format!("{:.1}", r.line_ms as f64 / 1000.0),
                field(&r.outcome),
                field(&r.fax),
            ]
            .join(",");
            out.push_str(&line);
            out.push_str("\r\n");
        }
    } else {
        let what = if p.by_group() { "group" } else { "user" };
        out.push_str(&format!(
            "{what},faxes_sent,faxes_failed,pages_sent,minutes_sent,faxes_received,pages_received,minutes_received\r\n"
        ));
        for t in totals(&rows, p.by_group()) {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\r\n",
                field(&t.name),
                t.sent,
                t.failed,
                t.sent_pages,
                t.sent_minutes(),
                t.received,
                t.received_pages,
                t.received_minutes()
            ));
        }
    }
    let name = format!("fax-usage-{from}-{to}.csv")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect::<String>();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, groups: &[&str], direction: &str, pages: u32, outcome: &str) -> UsageRecord {
        UsageRecord {
            at: 1,
            direction: direction.into(),
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            number: "+15551234567".into(),
            pages,
            line_ms: 30_000,
            outcome: outcome.into(),
            fax: "Q".into(),
        }
    }

    #[test]
    fn totals_by_user_and_by_group() {
        let rows = [
            row("alice@x", &["sales", "all"], "sent", 3, "sent"),
            row("Alice@x", &["sales", "all"], "sent", 1, "failed"),
            row("bob@x", &[], "received", 2, "received"),
        ];
        let users = totals(&rows, false);
        assert_eq!(users.len(), 2);
        let alice = &users[0];
        assert_eq!(
            (
                alice.name.as_str(),
                alice.sent,
                alice.failed,
                alice.sent_pages
            ),
            ("alice@x", 1, 1, 4)
        );
        assert_eq!(alice.sent_minutes(), "1.0");
        assert_eq!((users[1].received, users[1].received_pages), (1, 2));
        let groups = totals(&rows, true);
        let names: Vec<_> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["(no group)", "all", "sales"]);
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=cmd()"), "'=cmd()");
        assert_eq!(field("+15551234567"), "+15551234567");
    }
}
