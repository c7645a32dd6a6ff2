//! One call of the simulated engine, run on a blocking thread: our
//! machine calls a simulated remote ([`place_call`]) or a remote calls us
//! ([`answer_call`]), and how the T.30 outcome becomes a result.

use super::{IncomingCall, SimulatedError};
use crate::engine::spandsp::dtmf;
use crate::engine::spandsp::modem::{
    self, FarEnd, Job, Limit, Setup, Terminal, Watch, T30_ERR_OK, T30_ERR_T0_EXPIRED,
    T30_ERR_T1_EXPIRED,
};
use crate::engine::{ReceivedFax, Reception, SendRequest, SendResult};
use crate::live::LiveState;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Line time allowed for call set-up, and for each page, before a call
/// that does not end is cut (a guard; T.30's own timers end calls first).
const LIMIT: Limit = Limit {
    setup_seconds: 120,
    page_seconds: 600,
};

/// What is at the other end of a number.
pub(super) enum Remote {
    Busy,
    NoAnswer,
    Voice,
    Fax {
        csid: String,
        file: PathBuf,
        hang_up_after: Option<u32>,
    },
}

/// Runs one outgoing call (blocking): our machine calls `remote`, the
/// line paced as `pace` says ([`modem::Watch::pace`]); the progress is
/// reported through the request.
pub(super) fn place_call(request: &SendRequest, remote: Remote, pace: Option<f64>) -> SendResult {
    let started = Instant::now();
    let setup = Setup {
        calling: true,
        ident: &request.tsi,
        tag: c"faxmta",
        job: Job::Send {
            file: &request.document,
            first: request.first_page,
            last: Some(request.pages),
            header: request.header.as_deref().filter(|h| !h.is_empty()),
        },
    };
    let mut caller = match Terminal::new(&setup) {
        Ok(t) => t,
        Err(e) => {
            return SendResult::Error {
                reason: e.to_string(),
                retry: false,
            }
        }
    };
    let mut on_step = |caller: &Terminal| {
        if caller.negotiated() {
            request.report_pages(caller.stats().pages_tx);
        }
    };
    let watch = Watch {
        pace,
        on_step: Some(&mut on_step),
    };
    if matches!(remote, Remote::Voice | Remote::Fax { .. }) {
        request.report(LiveState::Answered);
    }
    let report = match remote {
        Remote::Voice => modem::run_call_watched(&mut caller, FarEnd::Silence, LIMIT, watch),
        Remote::Fax {
            csid,
            file,
            hang_up_after,
        } => {
            // An extension: dialled as DTMF once the far end answered,
            // before fax starts; the remote writes what it heard beside
            // what it receives (`NAME.dtmf`).
            if let Some(ext) = request.extension.as_deref() {
                let heard = match dtmf::over_the_line(ext) {
                    Ok(heard) => heard,
                    Err(reason) => {
                        return SendResult::Error {
                            reason,
                            retry: true,
                        }
                    }
                };
                tracing::info!(extension = %ext, heard = %heard, "DTMF after answer");
                if let Err(e) = std::fs::write(file.with_extension("dtmf"), &heard) {
                    return SendResult::Error {
                        reason: format!("the simulated remote machine: {e}"),
                        retry: true,
                    };
                }
            }
            let remote = Terminal::new(&Setup {
                calling: false,
                ident: &csid,
                tag: c"remote",
                job: Job::Receive { file: &file },
            });
            let mut remote = match remote {
                Ok(t) => t,
                Err(e) => {
                    return SendResult::Error {
                        reason: format!("the simulated remote machine: {e}"),
                        retry: true,
                    }
                }
            };
            let far = FarEnd::Machine {
                terminal: &mut remote,
                hang_up_after,
            };
            modem::run_call_watched(&mut caller, far, LIMIT, watch)
            // `remote` is freed here: its TIFF file is complete on return.
        }
        Remote::Busy => return SendResult::BUSY,
        Remote::NoAnswer => return SendResult::NO_ANSWER,
    };
    let stats = caller.stats();
    let result = classify(
        report.completion,
        &stats,
        caller.remote_ident(),
        report.duration(),
    );
    tracing::info!(
        result = ?result,
        line_seconds = report.duration().as_secs_f64(),
        wall_ms = started.elapsed().as_millis() as u64,
        "fax call ended"
    );
    result
}

/// Runs one incoming call (blocking): a remote machine calls us. Returns
/// what came (a failed reception has no pages and no file).
pub(super) fn answer_call(
    call: &IncomingCall,
    csid: &str,
    file: PathBuf,
) -> Result<ReceivedFax, SimulatedError> {
    let mut remote = Terminal::new(&Setup {
        calling: true,
        ident: &call.tsi,
        tag: c"remote",
        job: Job::Send {
            file: &call.document,
            first: 1,
            last: None,
            header: None,
        },
    })?;
    let mut ours = Terminal::new(&Setup {
        calling: false,
        ident: csid,
        tag: c"faxmta",
        job: Job::Receive { file: &file },
    })?;
    let report = modem::run_call(
        &mut remote,
        FarEnd::Machine {
            terminal: &mut ours,
            hang_up_after: None,
        },
        LIMIT,
    );
    let (stats, tsi, completion) = (ours.stats(), ours.remote_ident(), ours.completion());
    drop(ours); // closes the received file
    drop(remote);
    let failure = match completion {
        Some(T30_ERR_OK) => None,
        Some(code) => Some(modem::completion_text(code)),
        None => Some("the call did not end".to_owned()),
    };
    tracing::info!(pages = stats.pages_rx, tsi = %tsi, failure = ?failure, "fax received");
    let status = match failure {
        None if stats.pages_rx > 0 => Reception::Complete,
        None => Reception::Failed {
            reason: "no page was received".into(),
        },
        Some(reason) if stats.pages_rx > 0 => Reception::Partial { reason },
        Some(reason) => Reception::Failed { reason },
    };
    if stats.pages_rx == 0 {
        let _ = std::fs::remove_file(&file);
    }
    Ok(ReceivedFax {
        document: file,
        pages: stats.pages_rx,
        remote_tsi: tsi,
        caller: call.caller.clone(),
        called: call.called.clone(),
        duration: report.duration(),
        status,
        received_at: std::time::SystemTime::now(),
        bad_rows: Some(stats.bad_rows),
        source: None,
    })
}

/// Turns the caller's phase E code and statistics into a [`SendResult`].
pub(super) fn classify(
    completion: Option<i32>,
    stats: &modem::Stats,
    remote_csid: String,
    duration: Duration,
) -> SendResult {
    let Some(code) = completion else {
        return SendResult::Error {
            reason: format!(
                "the call did not end after {} s of line time and was cut off",
                duration.as_secs()
            ),
            retry: true,
        };
    };
    match code {
        T30_ERR_OK => SendResult::Sent {
            pages: stats.pages_tx,
            duration,
            remote_csid,
            bit_rate: stats.bit_rate,
        },
        T30_ERR_T0_EXPIRED | T30_ERR_T1_EXPIRED if stats.pages_tx == 0 => SendResult::NoFaxTone,
        _ if stats.pages_tx > 0 => SendResult::Partial {
            pages_sent: stats.pages_tx,
            duration,
            remote_csid,
            reason: modem::completion_text(code),
        },
        _ => SendResult::Error {
            reason: format!("{} (T.30 code {code})", modem::completion_text(code)),
            retry: modem::completion_retryable(code),
        },
    }
}
