//! Wires the fax transport from `[fax]`: the engine and its lines, the
//! document maker (rendering options, cover page) and its render workers
//! (limits), the transport's retry
//! settings, and what the scheduler needs for fax reports.

pub mod inbound;
pub mod pop3_gateway;
pub mod preview;
pub mod received;
pub mod retention;
mod sip;

use crate::config::fax::{EngineKind, Partial, Unsupported};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::scheduler::FaxReports;
use faxmta_fax::document::DocumentMaker;
use faxmta_fax::engine::hylafax::{HylafaxEngine, HylafaxSettings};
use faxmta_fax::engine::shared::SharedLines;
use faxmta_fax::engine::simulated::{SimulatedEngine, SimulatedNetwork, SimulatedSettings};
use faxmta_fax::engine::spool::{SpoolEngine, SpoolSettings};
use faxmta_fax::engine::FaxEngine;
use faxmta_fax::live::LiveBoard;
use faxmta_fax::render::{self, CoverInfo, RenderOptions};
use faxmta_fax::transport::{FaxSettings, FaxTransport, Resend};
use faxmta_fax::worker::{Limits, RenderWorker, WorkerRenderer};
use faxmta_queue::Store;
use std::sync::Arc;

/// The parts of the fax transport the server keeps.
pub struct Fax {
    pub transport: Arc<FaxTransport>,
    pub reports: FaxReports,
    /// The engine, for the receive loop.
    pub engine: Arc<dyn FaxEngine>,
    /// The same engine when it is the simulated one (simulated incoming
    /// calls through the control socket).
    pub simulated: Option<Arc<SimulatedEngine>>,
    /// The portal's preview (the same maker and workers).
    pub preview: Arc<preview::Previewer>,
    /// What each fax in flight is doing now (the transport and the
    /// engine report into it).
    pub live: LiveBoard,
}

/// The rendering options of `[fax]`.
pub fn render_options(config: &Config) -> RenderOptions {
    let fax = &config.fax;
    RenderOptions {
        resolution: fax.resolution,
        paper: fax.paper,
        cover: fax.cover_page.then(CoverInfo::default),
        unsupported: match fax.unsupported {
            Unsupported::Fail => render::Unsupported::Fail,
            Unsupported::Skip => render::Unsupported::Skip,
        },
        threads: fax.render_threads,
        ..Default::default()
    }
}

/// The render workers of `[fax] render_*`: this program again, with the
/// hidden `fax render-worker` subcommand.
pub fn render_worker(config: &Config) -> Result<Arc<RenderWorker>, String> {
    let fax = &config.fax;
    let program = std::env::current_exe()
        .map_err(|e| format!("[fax] cannot find this program for the render workers: {e}"))?;
    let limits = Limits {
        // Below ~64 MB the worker could not even start.
        memory: fax.render_memory.0.max(64 << 20),
        cpu: fax.render_cpu.std(),
        wall: fax.render_timeout.std(),
        concurrency: fax.render_concurrency.max(1),
    };
    Ok(RenderWorker::new(
        program,
        vec!["fax".into(), "render-worker".into()],
        limits,
    ))
}

/// The engine named by `[fax] engine`.
pub fn engine(config: &Config) -> Result<Arc<dyn FaxEngine>, String> {
    let fax = &config.fax;
    match fax.engine {
        EngineKind::Simulated => Ok(Arc::new(simulated(config)?)),
        EngineKind::Spool => {
            let dirs = &fax.spool_engine;
            let settings = SpoolSettings {
                lines: fax.lines,
                outgoing: dirs.outgoing.clone(),
                status: dirs.status.clone(),
                incoming: dirs.incoming.clone(),
                received: dirs.received.clone(),
                poll_interval: dirs.poll_interval.std(),
                job_timeout: dirs.job_timeout.std(),
            };
            let engine =
                SpoolEngine::new(settings).map_err(|e| format!("[fax] spool engine: {e}"))?;
            Ok(Arc::new(engine))
        }
        EngineKind::Hylafax => Ok(Arc::new(hylafax(config)?)),
        EngineKind::Sip => Ok(Arc::new(sip::engine(config)?)),
    }
}

/// The HylaFAX engine of `[fax.hylafax]`; the password files are read
/// here (their first line).
fn hylafax(config: &Config) -> Result<HylafaxEngine, String> {
    let fax = &config.fax;
    let h = &fax.hylafax;
    let read = |name: &str, file: &Option<std::path::PathBuf>| -> Result<Option<String>, String> {
        file.as_deref()
            .map(|file| crate::config::secret_from_file(&format!("[fax.hylafax] {name}"), file))
            .transpose()
    };
    let settings = HylafaxSettings {
        lines: fax.lines,
        host: h.host.clone(),
        port: h.port,
        user: h.user.clone(),
        password: read("password_file", &h.password_file)?,
        admin_password: read("admin_password_file", &h.admin_password_file)?,
        poll_interval: h.poll_interval.std(),
        job_timeout: h.job_timeout.std(),
        io_timeout: h.timeout.std(),
        received: h.received.clone(),
    };
    HylafaxEngine::new(settings).map_err(|e| format!("[fax] hylafax engine: {e}"))
}

/// The simulated engine of `[fax.simulated]`.
fn simulated(config: &Config) -> Result<SimulatedEngine, String> {
    let fax = &config.fax;
    let sim = &fax.simulated;
    let settings = SimulatedSettings {
        lines: fax.lines,
        tsi: fax.tsi.clone(),
        inbound: sim.inbound.clone(),
        network: SimulatedNetwork {
            received: sim.received.clone(),
            csid: sim.csid.clone(),
            busy: sim.busy.clone(),
            no_answer: sim.no_answer.clone(),
            no_fax_tone: sim.no_fax_tone.clone(),
            hang_up_after: sim.hang_up_after.clone(),
            pace: sim.pace,
        },
    };
    SimulatedEngine::new(settings).map_err(|e| format!("[fax] simulated engine: {e}"))
}

/// Everything the server needs of the fax transport. When nodes share
/// the queue (`store` has a line pool), `[fax] lines` are the site's and
/// every call leases one of them ([`SharedLines`]).
pub fn build(config: &Config, metrics: &Arc<Metrics>, store: &Store) -> Result<Fax, String> {
    let fax = &config.fax;
    let simulated = match fax.engine {
        EngineKind::Simulated => Some(Arc::new(simulated(config)?)),
        _ => None,
    };
    let engine: Arc<dyn FaxEngine> = match &simulated {
        Some(s) => s.clone(),
        None => engine(config)?,
    };
    let engine: Arc<dyn FaxEngine> = match store.line_pool() {
        Some(pool) => Arc::new(SharedLines::new(
            engine,
            pool,
            fax.lines,
            std::time::Duration::from_secs(config.queue.lease_time.0),
        )),
        None => engine,
    };
    let _ = metrics.fax_engine.set(engine.clone());
    let maker = DocumentMaker {
        options: render_options(config),
        compression: fax.compression,
    };
    let worker = render_worker(config)?;
    let settings = FaxSettings {
        tsi: fax.tsi.clone(),
        header: Some(fax.header.clone()).filter(|h| !h.trim().is_empty()),
        retries: fax.retries,
        retry_interval: fax.retry_interval.std(),
        resend: match fax.partial {
            Partial::Missing => Resend::Missing,
            Partial::All => Resend::All,
        },
        spool: fax.spool.clone(),
        archive: fax.archive.clone(),
        render_crash_limit: fax.render_crash_limit.max(1),
    };
    let observer: Arc<Metrics> = metrics.clone();
    let spool = fax.spool.clone();
    let first_page = fax.report_first_page.then(|| {
        let (worker, maker) = (worker.clone(), maker.clone());
        let f: Arc<crate::scheduler::FirstPage> = Arc::new(move |message: &[u8]| {
            std::fs::create_dir_all(&spool).ok()?;
            worker.first_page_png(&maker, message, &spool)
        });
        f
    });
    let preview = Arc::new(preview::Previewer {
        maker: maker.clone(),
        worker: worker.clone(),
        spool: fax.spool.clone(),
    });
    let renderer = Arc::new(WorkerRenderer { maker, worker });
    let live = LiveBoard::default();
    let transport = Arc::new(
        FaxTransport::new(engine.clone(), renderer, Some(observer), settings)
            .with_live(live.clone()),
    );
    Ok(Fax {
        engine: engine.clone(),
        simulated,
        live,
        transport,
        preview,
        reports: FaxReports {
            success: fax.success_report,
            first_page,
        },
    })
}
