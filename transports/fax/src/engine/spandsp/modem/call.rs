//! A simulated call: two terminals back to back over a perfect line in
//! memory ([`run_call`]), as fast as the CPU goes or paced to the clock,
//! watched as it goes ([`run_call_watched`]).

use super::{ffi, Terminal, BLOCK, TAIL_SECONDS};
use std::time::{Duration, Instant};

/// Where the far end of a call is.
pub enum FarEnd<'a> {
    /// A fax machine (answering), which may hang up after some pages.
    Machine {
        terminal: &'a mut Terminal,
        hang_up_after: Option<u32>,
    },
    /// Answered, but nothing but silence comes back (a voice line).
    Silence,
}

/// How a simulated call went.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The caller's phase E completion code; `None` if the call hit the
    /// [`Limit`] first.
    pub completion: Option<i32>,
    /// Samples of line audio (8000 per second).
    pub samples: u64,
    /// The far end hung up on purpose (`hang_up_after`).
    pub hung_up: bool,
}

impl CallReport {
    /// Simulated time on the line.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples * 1_000_000 / ffi::SAMPLE_RATE)
    }
}

/// A guard against calls that never end: at most `setup_seconds` plus
/// `page_seconds` for each page of the caller's file (one until the file
/// is open) of simulated line time.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub setup_seconds: u64,
    pub page_seconds: u64,
}

impl Limit {
    fn samples(&self, pages: u32) -> u64 {
        let pages = u64::from(pages.max(1));
        self.setup_seconds
            .saturating_add(self.page_seconds.saturating_mul(pages))
            .saturating_mul(ffi::SAMPLE_RATE)
    }
}

/// Line time between two looks of a [`Watch`] (half a second).
const STEP_BLOCKS: u64 = 25;

/// How a call is watched while it runs: paced to the clock, and shown
/// how it goes.
#[derive(Default)]
pub struct Watch<'a> {
    /// Line seconds per second of the clock: 1 is real time (a typed
    /// page takes about 15 s at V.17), 10 ten times faster; `None`: as
    /// fast as the CPU goes (about 10 ms a page).
    pub pace: Option<f64>,
    /// Shown the calling terminal every half second of line time (and
    /// once at the start): for progress reports.
    pub on_step: Option<&'a mut dyn FnMut(&Terminal)>,
}

/// Runs a call between `caller` and `far` until the caller's T.30 ends,
/// or the `limit` is reached (then both are cut off).
pub fn run_call(caller: &mut Terminal, far: FarEnd<'_>, limit: Limit) -> CallReport {
    run_call_watched(caller, far, limit, Watch::default())
}

/// [`run_call`], paced and watched as `watch` says.
pub fn run_call_watched(
    caller: &mut Terminal,
    mut far: FarEnd<'_>,
    limit: Limit,
    mut watch: Watch<'_>,
) -> CallReport {
    let clock = Instant::now();
    // Pace: wall-clock seconds per sample; nothing below a microsecond a
    // second (a pace so high that it is no pace).
    let pace = watch
        .pace
        .filter(|p| p.is_finite() && *p > 0.0 && *p < 1e6)
        .map(|p| 1.0 / (p * ffi::SAMPLE_RATE as f64));
    let mut max_samples = limit.samples(1);
    let tail_samples = TAIL_SECONDS * ffi::SAMPLE_RATE;
    let mut samples: u64 = 0;
    let mut to_far = [0i16; BLOCK];
    let mut to_caller = [0i16; BLOCK];
    // The far end is off the line (hung up, or its call ended) since …
    let mut far_gone_at: Option<u64> = None;
    let mut hung_up = false;
    // Set once the far machine has taken its last page: it hangs up as
    // soon as the caller has the confirmation, or after 10 s regardless.
    let mut hang_up_from: Option<u64> = None;
    if let Some(on_step) = watch.on_step.as_mut() {
        on_step(caller);
    }

    while caller.completion().is_none() && samples < max_samples {
        let n = caller.tx(&mut to_far);
        to_far[n..].fill(0);
        match &mut far {
            FarEnd::Machine {
                terminal,
                hang_up_after,
            } if far_gone_at.is_none() => {
                let m = terminal.tx(&mut to_caller);
                to_caller[m..].fill(0);
                terminal.rx(&mut to_far);
                if let Some(limit) = *hang_up_after {
                    // Pages arrive with phase D; count pages, not phase D
                    // events (an ECM page may take several exchanges).
                    if hang_up_from.is_none()
                        && terminal.phase_d_count() > 0
                        && terminal.stats().pages_rx >= limit
                    {
                        hang_up_from = Some(samples);
                    }
                    if let Some(from) = hang_up_from {
                        let confirmed = caller.stats().pages_tx >= limit;
                        if confirmed || samples - from > 10 * ffi::SAMPLE_RATE {
                            terminal.terminate();
                            hung_up = true;
                        }
                    }
                }
                if terminal.completion().is_some() {
                    far_gone_at = Some(samples);
                }
            }
            _ => to_caller.fill(0),
        }
        caller.rx(&mut to_caller);
        samples += BLOCK as u64;
        if samples.is_multiple_of(BLOCK as u64 * STEP_BLOCKS) {
            if let Some(on_step) = watch.on_step.as_mut() {
                on_step(caller);
            }
            if let Some(per_sample) = pace {
                let due = clock + Duration::from_secs_f64(samples as f64 * per_sample);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
        if samples.is_multiple_of(BLOCK as u64 * 500) {
            // Every 10 s: the file is open by now, its pages known.
            max_samples = limit.samples(caller.stats().pages_in_file.unwrap_or(1));
        }
        if far_gone_at.is_some_and(|at| samples - at > tail_samples) {
            break;
        }
    }
    let completion = caller.completion();
    if completion.is_none() {
        caller.terminate();
    }
    if let FarEnd::Machine { terminal, .. } = far {
        if terminal.completion().is_none() {
            terminal.terminate();
        }
    }
    CallReport {
        completion,
        samples,
        hung_up,
    }
}
