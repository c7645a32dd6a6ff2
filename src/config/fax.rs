//! `[fax]`: the fax transport — the engine and its lines, how pages are
//! rendered, fax retries and reports to the sender; and (the addressing
//! half) the dial plan, outbound rules, and the fax users and groups.
//! Domains of `kind = "fax"` are `[[domain]]` entries.

use super::values::{Duration, Size};
use faxmta_fax::dialplan::{DialPlan, Rule};
use faxmta_fax::directory::{Directory, FaxGroup, FaxPolicy, FaxUser};
use faxmta_fax::page::{Compression, Paper, Resolution};
use serde::Deserialize;
use std::path::PathBuf;

mod addressing;
pub mod incoming;
pub mod sip;
pub use incoming::IncomingConfig;
pub use sip::SipConfig;

/// Check and complete `[fax]` once parsed: addressing, then
/// `[fax.incoming]`.
pub(super) fn load(
    config: &mut super::Config,
    src: &super::error::Source<'_>,
) -> Result<(), super::error::ConfigError> {
    addressing::load(config, src)?;
    incoming::check(config, src)?;
    if config.fax.history_days == 0 {
        return Err(src.fail(
            &["history_days", "[fax]"],
            "fax: history_days = 0: at least 1 day (the usage rows are read by period)".into(),
        ));
    }
    if config.fax.engine == EngineKind::Sip {
        config
            .fax
            .sip
            .check()
            .map_err(|e| src.fail(&["[fax.sip]", "engine"], e))?;
    }
    Ok(())
}

/// `[fax]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaxConfig {
    /// Which engine carries the calls.
    pub engine: EngineKind,
    /// Calls at once.
    pub lines: usize,
    /// Our station identity (TSI/CSID), at most 20 characters.
    pub tsi: String,
    /// The header line the engine prints on each page (our name); empty:
    /// none.
    pub header: String,
    pub resolution: Resolution,
    pub paper: Paper,
    pub compression: Compression,
    /// A cover page (from, to, subject, page count, date, note) first.
    pub cover_page: bool,
    /// Attachments that cannot be rendered: fail the fax with a report
    /// naming them, or leave them out.
    pub unsupported: Unsupported,
    /// Busy / no answer / no fax tone: how many more tries after the first.
    pub retries: u32,
    /// Time between those tries.
    pub retry_interval: Duration,
    /// After a call broke off with some pages confirmed: send only the
    /// missing pages, or the whole fax again.
    pub partial: Partial,
    /// A report to the sender when a fax went through.
    pub success_report: bool,
    /// The first page, as a PNG picture, in the reports.
    pub report_first_page: bool,
    /// Where rendered documents wait for the line (`var/fax/spool`).
    pub spool: PathBuf,
    /// Keep the document of each fax sent here (`QUEUEID-N.tif`); unset:
    /// deleted once sent.
    pub archive: Option<PathBuf>,
    /// Documents rendered at once, in all (each in a worker process).
    pub render_concurrency: usize,
    /// Memory (address space) of one render worker; a document that needs
    /// more fails its fax with a report naming it.
    pub render_memory: Size,
    /// CPU time of one render worker.
    pub render_cpu: Duration,
    /// Wall-clock time of one render worker before it is killed.
    pub render_timeout: Duration,
    /// Threads one render uses for its pages (PDF and TIFF pages side by
    /// side, the coding of every page); 0: one per core (at most 8).
    pub render_threads: usize,
    /// Render workers that crash on one message (a signal that is not
    /// one of the limits) before it is quarantined: held, reported.
    pub render_crash_limit: u32,
    /// Days the records of faxes sent and received, and the usage rows
    /// (billing), are kept in the queue's store.
    pub history_days: u32,
    /// Days the documents (TIFF-F) of faxes sent and received are kept in
    /// the queue's store (the portal's download and resend); 0: none is
    /// kept.
    pub documents_days: u32,
    /// The simulated engine: the phone network and the remote machines.
    pub simulated: SimulatedConfig,
    /// `[fax.incoming]`: received faxes — routing, mails, retention.
    pub incoming: IncomingConfig,
    /// `[fax.spool_engine]`: the directories of a board or gateway that
    /// takes jobs as files (`engine = "spool"`).
    pub spool_engine: SpoolEngineConfig,
    /// `[fax.hylafax]`: the HylaFAX server that carries the calls
    /// (`engine = "hylafax"`).
    pub hylafax: HylafaxConfig,
    /// `[fax.sip]`: faxmta as a SIP user agent over trunks and PBXs
    /// (`engine = "sip"`).
    pub sip: SipConfig,
    /// `[fax.dialplan]`: how numbers are normalised to E.164 and dialled.
    pub dialplan: DialPlan,
    /// `[[fax.rule]]`: outbound rules, tried in order.
    #[serde(rename = "rule")]
    pub rules: Vec<Rule>,
    /// A file of fax users and groups (`[[user]]`, `[[group]]`), instead
    /// of `[[fax.user]]` and `[[fax.group]]` here.
    pub users: Option<PathBuf>,
    /// `[[fax.user]]`: who may send faxes.
    #[serde(rename = "user")]
    pub inline_users: Vec<FaxUser>,
    /// `[[fax.group]]`
    #[serde(rename = "group")]
    pub inline_groups: Vec<FaxGroup>,
    /// Who may hand us fax recipients over SMTP (default: clients that
    /// may relay only).
    pub senders: Option<FaxSenders>,
    /// The older switch: `true` is `senders = "trusted"`, `false` is
    /// `senders = "any"`.
    pub trusted_only: Option<bool>,
    /// The directory in use (from `users` or inline), filled when the
    /// configuration is loaded.
    #[serde(skip)]
    directory: Directory,
}

/// Who may give faxmta fax recipients over SMTP. The envelope sender is
/// authorised by the fax user directory in every case; this says which
/// clients are believed about that sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaxSenders {
    /// Clients that may relay: SMTP AUTH users and `[relay] allow`.
    #[default]
    Trusted,
    /// Those, and any client whose MAIL FROM domain's SPF passes for it.
    SpfPass,
    /// Any client: the envelope sender alone decides (it can be forged).
    Any,
}

impl FaxConfig {
    /// Who may give us fax recipients (`senders`, else the older
    /// `trusted_only`, else trusted clients only).
    pub fn senders(&self) -> FaxSenders {
        self.senders.unwrap_or(match self.trusted_only {
            Some(false) => FaxSenders::Any,
            _ => FaxSenders::Trusted,
        })
    }

    /// The dial plan, the outbound rules and the user directory.
    pub fn policy(&self) -> FaxPolicy {
        FaxPolicy {
            plan: self.dialplan.clone(),
            rules: self.rules.clone(),
            directory: self.directory.clone(),
        }
    }
}

impl Default for FaxConfig {
    fn default() -> Self {
        FaxConfig {
            engine: EngineKind::Simulated,
            lines: 2,
            tsi: String::new(),
            header: String::new(),
            resolution: Resolution::Fine,
            paper: Paper::A4,
            compression: Compression::Mh,
            cover_page: true,
            unsupported: Unsupported::Fail,
            retries: 3,
            retry_interval: Duration(300),
            partial: Partial::Missing,
            success_report: false,
            report_first_page: false,
            spool: PathBuf::from("var/fax/spool"),
            archive: None,
            render_concurrency: 2,
            render_memory: Size(1 << 30),
            render_cpu: Duration(60),
            render_timeout: Duration(120),
            render_threads: 0,
            render_crash_limit: 3,
            history_days: 400,
            documents_days: 90,
            simulated: SimulatedConfig::default(),
            incoming: IncomingConfig::default(),
            spool_engine: SpoolEngineConfig::default(),
            hylafax: HylafaxConfig::default(),
            sip: SipConfig::default(),
            dialplan: DialPlan::default(),
            rules: Vec::new(),
            users: None,
            inline_users: Vec::new(),
            inline_groups: Vec::new(),
            senders: None,
            trusted_only: None,
            directory: Directory::default(),
        }
    }
}

/// `[fax] engine`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EngineKind {
    /// spandsp's software modem over a simulated line (no hardware).
    #[default]
    Simulated,
    /// A fax board or gateway that takes jobs as files in a spool
    /// directory (`[fax.spool_engine]`).
    Spool,
    /// A HylaFAX server, through hfaxd's client protocol (`[fax.hylafax]`).
    Hylafax,
    /// faxmta's own SIP user agent: T.38 or G.711 over SIP trunks and
    /// PBXs (`[fax.sip]`).
    Sip,
}

/// `[fax] unsupported`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unsupported {
    #[default]
    Fail,
    Skip,
}

/// `[fax] partial`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Partial {
    /// Resend from the first page the remote did not confirm.
    #[default]
    Missing,
    /// Resend every page.
    All,
}

/// `[fax.simulated]`: how the simulated phone network answers. Every
/// number not listed answers with a fax machine that stores what it
/// receives under `received`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedConfig {
    /// Where the simulated remote machines store what they receive, one
    /// directory per dialled number.
    pub received: PathBuf,
    /// Where faxes that come in to us are written.
    pub inbound: PathBuf,
    /// The CSID the remote machines give (`{number}`: the number dialled).
    pub csid: String,
    /// Numbers (as dialled) that are busy.
    pub busy: Vec<String>,
    /// Numbers that ring without answer.
    pub no_answer: Vec<String>,
    /// Numbers answered by a voice, not a fax machine.
    pub no_fax_tone: Vec<String>,
    /// Numbers whose machine hangs up after this many pages.
    pub hang_up_after: std::collections::BTreeMap<String, u32>,
    /// Line seconds per second of the clock (1: real time); unset: as
    /// fast as the CPU goes.
    pub pace: Option<f64>,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        SimulatedConfig {
            received: PathBuf::from("var/fax/remote"),
            inbound: PathBuf::from("var/fax/inbound"),
            csid: "{number}".into(),
            busy: Vec::new(),
            no_answer: Vec::new(),
            no_fax_tone: Vec::new(),
            hang_up_after: Default::default(),
            pace: None,
        }
    }
}

/// `[fax.spool_engine]`: the directories shared with a fax board or
/// gateway (`engine = "spool"`; the file formats are in
/// docs/configuration.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolEngineConfig {
    /// Where jobs are written for the board (`JOBID.tif`, `JOBID.job`).
    pub outgoing: PathBuf,
    /// Where the board writes `JOBID.status`.
    pub status: PathBuf,
    /// Where the board writes received faxes (`NAME.tif`, `NAME.rx`).
    pub incoming: PathBuf,
    /// Where received faxes are moved when taken.
    pub received: PathBuf,
    /// How often `status` and `incoming` are looked at.
    pub poll_interval: Duration,
    /// How long a job may take, from writing it to its status.
    pub job_timeout: Duration,
}

impl Default for SpoolEngineConfig {
    fn default() -> Self {
        SpoolEngineConfig {
            outgoing: PathBuf::from("var/fax/board/outgoing"),
            status: PathBuf::from("var/fax/board/status"),
            incoming: PathBuf::from("var/fax/board/incoming"),
            received: PathBuf::from("var/fax/inbound"),
            poll_interval: Duration(1),
            job_timeout: Duration(600),
        }
    }
}

/// `[fax.hylafax]`: the HylaFAX server (`engine = "hylafax"`; details in
/// docs/configuration.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HylafaxConfig {
    /// hfaxd's host and port.
    pub host: String,
    pub port: u16,
    /// The user we log in as (`USER`).
    pub user: String,
    /// A file whose first line is the password, when hfaxd asks for one.
    pub password_file: Option<PathBuf>,
    /// A file whose first line is the `ADMIN` password (needed to delete
    /// received faxes from the server's receive queue).
    pub admin_password_file: Option<PathBuf>,
    /// How often jobs and the receive queue are looked at.
    pub poll_interval: Duration,
    /// How long a job may take at the server before it is killed.
    pub job_timeout: Duration,
    /// Each network read, write or connect.
    pub timeout: Duration,
    /// Where received faxes are written.
    pub received: PathBuf,
}

impl Default for HylafaxConfig {
    fn default() -> Self {
        HylafaxConfig {
            host: "127.0.0.1".into(),
            port: 4559,
            user: "faxmta".into(),
            password_file: None,
            admin_password_file: None,
            poll_interval: Duration(5),
            job_timeout: Duration(3600),
            timeout: Duration(30),
            received: PathBuf::from("var/fax/inbound"),
        }
    }
}
