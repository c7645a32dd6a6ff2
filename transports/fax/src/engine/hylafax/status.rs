//! A HylaFAX job's state, as `JOB id` + `JPARM` lists it (`STATE:`,
//! `STATUS:`, `NPAGES:` … lines of the 217 reply), and how a finished
//! job maps to a [`SendResult`].

use crate::engine::{SendRequest, SendResult};
use crate::live::LiveState;
use std::collections::HashMap;
use std::time::Duration;

/// A job's state (hfaxd's `JPARM STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Suspended,
    Pending,
    Sleeping,
    Blocked,
    Ready,
    Active,
    Done,
    Failed,
}

impl JobState {
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "SUSPENDED" => JobState::Suspended,
            "PENDING" => JobState::Pending,
            "SLEEPING" => JobState::Sleeping,
            "BLOCKED" => JobState::Blocked,
            "READY" => JobState::Ready,
            "ACTIVE" => JobState::Active,
            "DONE" => JobState::Done,
            "FAILED" => JobState::Failed,
            _ => return None,
        })
    }

    /// Done or failed: the job will not change any more.
    pub fn finished(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed)
    }
}

/// What `JPARM` says about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub id: u32,
    pub state: JobState,
    /// The last error or notice (`STATUS:`), empty when none.
    pub status: String,
    /// Pages sent (`NPAGES`) of `TOTPAGES`.
    pub pages_sent: u32,
    pub total_pages: u32,
    /// Dials made (`TOTDIALS`) and attempts to send (`TOTTRIES`).
    pub dials: u32,
    pub tries: u32,
}

impl JobStatus {
    /// Reads the `KEY: value` lines of a `JPARM` (no argument) reply.
    pub fn parse(id: u32, lines: &[String]) -> Result<JobStatus, String> {
        let fields: HashMap<String, String> = lines
            .iter()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim().to_owned()))
            .collect();
        let state = fields
            .get("STATE")
            .ok_or_else(|| format!("job {id}: no STATE in the job's parameters"))?;
        let state =
            JobState::parse(state).ok_or_else(|| format!("job {id}: unknown state {state:?}"))?;
        let number = |k: &str| {
            fields
                .get(k)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        };
        Ok(JobStatus {
            id,
            state,
            status: fields.get("STATUS").cloned().unwrap_or_default(),
            pages_sent: number("NPAGES"),
            total_pages: number("TOTPAGES"),
            dials: number("TOTDIALS"),
            tries: number("TOTTRIES"),
        })
    }

    /// How a finished job ended, `None` while it is not finished.
    /// `elapsed`: the time from submission (HylaFAX does not give the
    /// time on the line). HylaFAX does not give the remote CSID or the
    /// bit rate through the protocol: they are left empty (`""`, 0).
    pub fn outcome(&self, elapsed: Duration) -> Option<SendResult> {
        match self.state {
            JobState::Done => Some(SendResult::Sent {
                pages: self.pages_sent,
                duration: elapsed,
                remote_csid: String::new(),
                bit_rate: 0,
            }),
            JobState::Failed => Some(failure(&self.status, self.pages_sent, elapsed)),
            _ => None,
        }
    }
}

impl JobStatus {
    /// What the job is doing, for the live board (state, pages confirmed,
    /// words): waiting at the server
    /// (for a modem, for its time), dialling (active, no page confirmed
    /// yet), or sending the page after those confirmed; `None` once it
    /// has finished (the transport reports the end). HylaFAX's `NPAGES`
    /// counts from the first page of the job's range, as the request's
    /// `first_page` does.
    pub fn live(&self) -> Option<(LiveState, u32, String)> {
        let waiting = |why: &str| {
            let detail = match self.status.trim() {
                "" => format!("HylaFAX: {why}"),
                s => format!("HylaFAX: {why} ({s})"),
            };
            Some((LiveState::WaitingForLine, 0, detail))
        };
        match self.state {
            JobState::Done | JobState::Failed => None,
            JobState::Active if self.pages_sent == 0 => {
                Some((LiveState::Dialling, 0, String::new()))
            }
            JobState::Active => Some((LiveState::Sending, self.pages_sent, String::new())),
            JobState::Ready => waiting("waiting for a modem"),
            JobState::Blocked => waiting("blocked behind other jobs to the number"),
            JobState::Sleeping | JobState::Pending => waiting("scheduled for later"),
            JobState::Suspended => waiting("suspended"),
        }
    }

    /// Reports [`JobStatus::live`] through the request.
    pub fn report(&self, request: &SendRequest) {
        match self.live() {
            Some((LiveState::Sending, confirmed, _)) => request.report_pages(confirmed),
            Some((state, _, detail)) => request.report_with(state, &detail),
            None => {}
        }
    }
}

/// Maps a failed job's status text (faxsend's and faxq's wording: "Busy
/// signal detected", "No answer from remote", "No carrier detected",
/// "REJECT: …", "Job aborted by request" …) to an outcome.
pub fn failure(status: &str, pages_sent: u32, elapsed: Duration) -> SendResult {
    let text = status.trim();
    let lower = text.to_ascii_lowercase();
    let reason = if text.is_empty() {
        "HylaFAX failed the job without a reason".to_owned()
    } else {
        format!("HylaFAX: {text}")
    };
    if pages_sent > 0 {
        return SendResult::Partial {
            pages_sent,
            duration: elapsed,
            remote_csid: String::new(),
            reason,
        };
    }
    if lower.contains("busy") {
        SendResult::BUSY
    } else if lower.contains("no answer") || lower.contains("ring timeout") {
        SendResult::NO_ANSWER
    } else if lower.contains("no carrier")
        || lower.contains("voice")
        || lower.contains("no response to")
        || lower.contains("not a fax")
        || lower.contains("data connection")
    {
        SendResult::NoFaxTone
    } else {
        // Rejections (bad number, document, permissions) do not get better.
        let retry = !(lower.starts_with("reject")
            || lower.contains("invalid dialstring")
            || lower.contains("can not convert")
            || lower.contains("no formatter")
            || lower.contains("bad document"));
        SendResult::Error { reason, retry }
    }
}

/// hfaxd's `LASTTIME` (the job's time to live) for a duration: `DDHHMM`,
/// at least a minute, at most 99 days.
pub fn lasttime(d: Duration) -> String {
    let minutes = d
        .as_secs()
        .div_ceil(60)
        .clamp(1, 99 * 24 * 60 + 23 * 60 + 59);
    format!(
        "{:02}{:02}{:02}",
        minutes / (24 * 60),
        minutes / 60 % 24,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_state_follows_the_job() {
        let job = |text: &str| JobStatus::parse(7, &lines(text)).unwrap().live();
        assert_eq!(
            job("STATE: READY\nSTATUS:\nNPAGES: 0\nTOTPAGES: 3"),
            Some((
                LiveState::WaitingForLine,
                0,
                "HylaFAX: waiting for a modem".into()
            ))
        );
        assert_eq!(
            job("STATE: ACTIVE\nNPAGES: 0\nTOTPAGES: 3"),
            Some((LiveState::Dialling, 0, String::new()))
        );
        assert_eq!(
            job("STATE: ACTIVE\nNPAGES: 2\nTOTPAGES: 3"),
            Some((LiveState::Sending, 2, String::new()))
        );
        assert_eq!(
            job("STATE: SLEEPING\nSTATUS: Busy signal detected").map(|l| l.2),
            Some("HylaFAX: scheduled for later (Busy signal detected)".into())
        );
        assert_eq!(job("STATE: DONE\nNPAGES: 3\nTOTPAGES: 3"), None);
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_jparm_listing() {
        let l = lines(
            "Job state: jobid 4 groupid 4\n    STATE: FAILED\n    STATUS: Busy signal detected\n    \
             NPAGES: 0\n    TOTPAGES: 2\n    TOTDIALS: 3\n    TOTTRIES: 1\nEnd of job 4 state.",
        );
        let s = JobStatus::parse(4, &l).unwrap();
        assert_eq!(s.state, JobState::Failed);
        assert_eq!(s.status, "Busy signal detected");
        assert_eq!(
            (s.pages_sent, s.total_pages, s.dials, s.tries),
            (0, 2, 3, 1)
        );
        assert_eq!(s.outcome(Duration::ZERO), Some(SendResult::BUSY));
        assert!(JobStatus::parse(4, &lines("STATUS: x")).is_err());
        assert!(JobStatus::parse(4, &lines("STATE: WEIRD")).is_err());
    }

    #[test]
    fn states_that_are_not_finished_have_no_outcome() {
        for s in [
            "SUSPENDED",
            "PENDING",
            "SLEEPING",
            "BLOCKED",
            "READY",
            "ACTIVE",
        ] {
            let st = JobState::parse(s).unwrap();
            assert!(!st.finished(), "{s}");
            let job = JobStatus {
                id: 1,
                state: st,
                status: String::new(),
                pages_sent: 0,
                total_pages: 1,
                dials: 0,
                tries: 0,
            };
            assert_eq!(job.outcome(Duration::ZERO), None);
        }
        assert!(JobState::parse("done").unwrap().finished());
    }

    #[test]
    fn done_is_sent_with_the_pages() {
        let l = lines("STATE: DONE\nNPAGES: 3\nTOTPAGES: 3");
        let s = JobStatus::parse(9, &l).unwrap();
        match s.outcome(Duration::from_secs(5)) {
            Some(SendResult::Sent { pages, .. }) => assert_eq!(pages, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failures_map_by_their_text() {
        let d = Duration::ZERO;
        assert_eq!(
            failure("No answer from remote", 0, d),
            SendResult::NO_ANSWER
        );
        assert_eq!(failure("No carrier detected", 0, d), SendResult::NoFaxTone);
        assert_eq!(failure("BUSY", 0, d), SendResult::BUSY);
        match failure("REJECT: Invalid dialstring", 0, d) {
            SendResult::Error { retry, reason } => {
                assert!(!retry);
                assert!(reason.contains("Invalid dialstring"));
            }
            other => panic!("{other:?}"),
        }
        match failure("Job aborted by request", 0, d) {
            SendResult::Error { retry, .. } => assert!(retry),
            other => panic!("{other:?}"),
        }
        match failure("Communication failure during Phase D", 2, d) {
            SendResult::Partial {
                pages_sent, reason, ..
            } => {
                assert_eq!(pages_sent, 2);
                assert!(reason.contains("Phase D"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lasttime_is_ddhhmm() {
        assert_eq!(lasttime(Duration::from_secs(600)), "000010");
        assert_eq!(lasttime(Duration::from_secs(1)), "000001");
        assert_eq!(lasttime(Duration::from_secs(26 * 3600 + 61)), "010202");
    }
}
