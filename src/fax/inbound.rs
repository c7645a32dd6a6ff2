//! Received faxes: the loop that takes each fax the engine received,
//! routes it through the incoming routing table (`[fax.incoming]`), and
//! turns it into mail — from the fax service, the fax attached as PDF or
//! TIFF — that enters the queue like any other message (so a mail server
//! that is down just means the mail waits there). Folder destinations get
//! the file written directly. A failed or partial reception also sends an
//! "Incoming Failed" notice to the number's users (or `failed_to`, or the
//! default recipients).
//!
//! Each received image is recorded with the queue ids of the mails that
//! carry it ([`crate::fax::retention::record`]) for zero retention; its
//! record, usage rows and document go into the queue's store
//! ([`crate::fax::received`]).
//!
//! Hand-over is in two phases: only once every mail of a fax is queued
//! (enqueue returned: synced to disk), and its folder files and its move
//! into the `store` are fsynced with their directories, is the engine
//! told to remove its source ([`FaxEngine::acknowledge`]); what was handed over but not
//! acknowledged comes again after a restart. Failpoints for the tests
//! that kill the daemon there: `FAXMTA_FAILPOINT=fax-handed-over` aborts
//! right after the engine handed a fax over, `fax-queued` right after its
//! mails were queued, before the acknowledgement.

use crate::config::Config;
use crate::fax::received;
use crate::metrics::Metrics;
use faxmta_fax::engine::spool::files;
use faxmta_fax::engine::{FaxEngine, ReceivedFax, Reception};
use faxmta_fax::inbound::{Destination, ImageFormat};
use faxmta_fax::{pdf, tiff};
use faxmta_queue::{NewMessage, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// Take received faxes until the engine stops or shutdown. Each fax is
/// routed by the configuration in force when it is handled (`configs`
/// follows `faxmta reload`): a changed rule or a user's `numbers` holds
/// for the next fax.
pub async fn run(
    engine: Arc<dyn FaxEngine>,
    configs: watch::Receiver<Arc<Config>>,
    store: Store,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let failpoint = std::env::var("FAXMTA_FAILPOINT").unwrap_or_default();
    let abort_at = |point: &str| {
        if failpoint == point {
            tracing::error!("failpoint {point}: aborting");
            std::process::abort();
        }
    };
    // Faxes whose mails could not be queued yet (the queue or the disk
    // in trouble): the engine has handed them over already, so they are
    // kept here and tried again every minute, never dropped.
    let mut pending: Vec<ReceivedFax> = Vec::new();
    let mut retry = tokio::time::interval(RETRY);
    retry.tick().await;
    loop {
        let fax = tokio::select! {
            fax = engine.receive() => fax,
            _ = retry.tick(), if !pending.is_empty() => {
                for mut fax in std::mem::take(&mut pending) {
                    let config = configs.borrow().clone();
                    match handle(&config, &store, &mut fax).await {
                        Ok(()) => {
                            abort_at("fax-queued");
                            engine.acknowledge(&fax).await;
                        }
                        Err(e) => {
                            tracing::error!("received fax {}: {e}; tried again in {RETRY:?}", fax.document.display());
                            pending.push(fax);
                        }
                    }
                }
                continue;
            }
            _ = shutdown.changed() => break,
        };
        let Some(mut fax) = fax else { break };
        abort_at("fax-handed-over");
        let status = match fax.status {
            Reception::Complete => "complete",
            Reception::Partial { .. } => "partial",
            Reception::Failed { .. } => "failed",
        };
        metrics.fax_received.with_label_values(&[status]).inc();
        let config = configs.borrow().clone();
        match handle(&config, &store, &mut fax).await {
            Ok(()) => {
                abort_at("fax-queued");
                engine.acknowledge(&fax).await;
            }
            Err(e) => {
                tracing::error!(
                    "received fax {}: {e}; tried again in {RETRY:?}",
                    fax.document.display()
                );
                pending.push(fax);
            }
        }
    }
    for fax in &pending {
        tracing::error!(
            "received fax {} not routed before shutdown: the engine hands it over again at the next start",
            fax.document.display()
        );
    }
}

/// How often faxes whose mails could not be queued are tried again.
const RETRY: std::time::Duration = if cfg!(test) {
    std::time::Duration::from_millis(200)
} else {
    std::time::Duration::from_secs(60)
};

/// The sender of received-fax mails.
fn sender(config: &Config) -> String {
    config.fax.incoming.sender(&config.hostname)
}

/// Who the fax is from, for subjects: the caller's number, else its
/// station identity, else "unknown".
fn from_label(fax: &ReceivedFax) -> String {
    fax.caller
        .clone()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| Some(fax.remote_tsi.clone()).filter(|t| !t.trim().is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// Route one received fax and queue its mails (and the notice).
pub async fn handle(config: &Config, store: &Store, fax: &mut ReceivedFax) -> Result<(), String> {
    let label = from_label(fax);
    // The disk reserve ([queue] min_free), as for SMTP, before anything
    // is queued: the fax stays with the engine (not acknowledged) and is
    // tried again later. Its mails carry the image base64-encoded, as a
    // TIFF and perhaps a PDF too: room for three times the image.
    let image = std::fs::metadata(&fax.document)
        .map(|m| m.len())
        .unwrap_or(0);
    store
        .check_room(config.queue.min_free.0, image.saturating_mul(3))
        .map_err(|e| format!("not taken from the engine yet: {e}"))?;
    let failure = match &fax.status {
        Reception::Complete => None,
        Reception::Partial { reason } | Reception::Failed { reason } => Some(reason.clone()),
    };
    let mut notified = Vec::new();
    if let Some(reason) = &failure {
        tracing::warn!(
            "incoming fax from {label} to {}: failed after {} page(s): {reason}",
            fax.called.as_deref().unwrap_or("?"),
            fax.pages
        );
        let body = failed_notice(config, fax, reason)?;
        let to = failed_recipients(config, fax);
        if to.is_empty() {
            tracing::warn!(
                "incoming fax failed, and nobody to tell: set [fax.incoming] failed_to or default_to"
            );
        } else {
            let id = enqueue(config, store, &to, body).await?;
            tracing::info!("{id}: Incoming Failed notice to {}", to.join(", "));
            notified = to;
        }
    }
    if fax.pages == 0 {
        // No image: the record says who was told.
        received::remember(config, store, fax, &notified, None, None);
        return Ok(());
    }
    if let Some(dir) = &config.fax.incoming.store {
        fax.document = move_into(&fax.document, dir)?;
    }
    let inc = &config.fax.incoming;
    let directory = config.fax.policy().directory;
    let routed = inc
        .table()
        .route(fax.called.as_deref(), fax.caller.as_deref(), &|n: &str| {
            directory.users_for_number(n)
        });
    if routed.destinations.is_empty() {
        tracing::warn!(
            "incoming fax {} from {label}: no destination (set [fax.incoming] default_to); kept",
            fax.document.display()
        );
        let image = std::fs::read(&fax.document).ok();
        received::remember(config, store, fax, &[], None, image.as_deref());
        return Ok(());
    }
    // The files: read the TIFF once, make the PDF only when wanted.
    let wants_pdf = routed.destinations.iter().any(|d| {
        matches!(
            d,
            Destination::Mail {
                format: ImageFormat::Pdf,
                ..
            } | Destination::Folder {
                format: ImageFormat::Pdf,
                ..
            }
        )
    });
    let document = fax.document.clone();
    let (tiff_bytes, pdf_bytes) = tokio::task::spawn_blocking(move || images(&document, wants_pdf))
        .await
        .map_err(|e| format!("the image task failed: {e}"))??;
    let file_of = |format: ImageFormat| match (format, &pdf_bytes) {
        (ImageFormat::Pdf, Some(p)) => (ImageFormat::Pdf, p.as_slice()),
        _ => (ImageFormat::Tiff, tiff_bytes.as_slice()),
    };
    let stem = received::key(fax);
    let mut by_format: BTreeMap<&'static str, (ImageFormat, Vec<String>)> = BTreeMap::new();
    for d in &routed.destinations {
        match d {
            Destination::Mail { address, format } => {
                let (format, _) = file_of(*format);
                by_format
                    .entry(format.extension())
                    .or_insert_with(|| (format, Vec::new()))
                    .1
                    .push(address.clone());
            }
            Destination::Folder { path, format } => {
                let (format, data) = file_of(*format);
                let target = path.join(format!("{stem}.{}", format.extension()));
                write_file(&target, data)?;
                tracing::info!("incoming fax from {label} written to {}", target.display());
            }
        }
    }
    let mut ids = Vec::new();
    for (format, to) in by_format.values() {
        let (format, data) = file_of(*format);
        let body = fax_mail(config, fax, to, format, &stem, data)?;
        let id = enqueue(config, store, to, body).await?;
        tracing::info!(
            "{id}: incoming fax from {label} to {} ({} page(s), {}) for {} [rules: {}]",
            fax.called.as_deref().unwrap_or("?"),
            fax.pages,
            format.extension(),
            to.join(", "),
            routed.matched.join(", ")
        );
        ids.push(id);
    }
    crate::fax::retention::record(&fax.document, &ids)?;
    let routed_to: Vec<String> = by_format
        .values()
        .flat_map(|(_, to)| to.iter().cloned())
        .collect();
    received::remember(
        config,
        store,
        fax,
        &routed_to,
        ids.first().cloned(),
        Some(&tiff_bytes),
    );
    Ok(())
}

/// The TIFF as received and, when wanted, its PDF (`None` when the TIFF
/// cannot be read as pages: the mail then carries the TIFF).
fn images(document: &Path, pdf: bool) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let data = std::fs::read(document)
        .map_err(|e| format!("cannot read the received fax {}: {e}", document.display()))?;
    if !pdf {
        return Ok((data, None));
    }
    let made = tiff::decode_tiff(&data, &tiff::ReadLimits::default())
        .map_err(|e| e.to_string())
        .and_then(|pages| pdf::pages_to_pdf(&pages).map_err(|e| e.to_string()));
    match made {
        Ok(p) => Ok((data, Some(p))),
        Err(e) => {
            tracing::warn!(
                "cannot make a PDF of {} ({e}); sending the TIFF",
                document.display()
            );
            Ok((data, None))
        }
    }
}

/// Create `dir` (and its parents) if missing, durably: a new
/// directory's name is synced into its parent.
fn make_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    files::sync_parent(dir).map_err(|e| e.to_string())
}

/// Move `file` into `dir` (rename, or copy and delete across file
/// systems), durably: the file and the directories are fsynced before
/// the source goes, and before the engine is told it may remove its own
/// copy; the new path. A file already moved (a fax handed over again
/// after a crash) is found there.
fn move_into(file: &Path, dir: &Path) -> Result<PathBuf, String> {
    make_dir(dir)?;
    let name = file
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", file.display()))?;
    let target = dir.join(name);
    if !file.exists() && target.exists() {
        return Ok(target);
    }
    files::move_file(file, &target).map_err(|e| e.to_string())?;
    Ok(target)
}

/// A folder destination's file, durably: written under a dot name (whoever
/// watches the folder never sees half a file), fsynced, renamed, the
/// folder fsynced — before the fax's source may be removed.
fn write_file(target: &Path, data: &[u8]) -> Result<(), String> {
    if let Some(dir) = target.parent() {
        make_dir(dir)?;
    }
    files::write_atomic(target, data).map_err(|e| e.to_string())
}

/// The lines of the facts about a reception, for both mails.
fn facts(fax: &ReceivedFax) -> String {
    let when = chrono::DateTime::<chrono::Utc>::from(fax.received_at).to_rfc2822();
    let mut s = String::new();
    let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<16}{v}\n"));
    line("From number:", fax.caller.as_deref().unwrap_or("unknown"));
    line(
        "Station ID:",
        Some(fax.remote_tsi.as_str())
            .filter(|t| !t.is_empty())
            .unwrap_or("none"),
    );
    line("To number:", fax.called.as_deref().unwrap_or("unknown"));
    line("Pages:", &fax.pages.to_string());
    line("Received:", &when);
    line("Call time:", &format!("{} s", fax.duration.as_secs()));
    if let Some(bad) = fax.bad_rows {
        line("Bad rows:", &bad.to_string());
    }
    s
}

fn fax_mail(
    config: &Config,
    fax: &ReceivedFax,
    to: &[String],
    format: ImageFormat,
    stem: &str,
    data: &[u8],
) -> Result<String, String> {
    let pages = match fax.pages {
        1 => "1 page".to_owned(),
        n => format!("{n} pages"),
    };
    let text = format!(
        "You have received a fax ({pages}); it is attached as {}.\n\n{}",
        format.extension().to_uppercase(),
        facts(fax)
    );
    mail_builder::MessageBuilder::new()
        .from(("Fax service", sender(config).as_str()))
        .to(to.iter().map(String::as_str).collect::<Vec<&str>>())
        .subject(format!("Fax from {} ({pages})", from_label(fax)))
        .header(
            "X-Mailer",
            mail_builder::headers::raw::Raw::new("faxmta fax receive"),
        )
        .text_body(text)
        .attachment(
            format.media_type(),
            format!("{stem}.{}", format.extension()),
            data.to_vec(),
        )
        .write_to_string()
        .map_err(|e| format!("cannot build the fax mail: {e}"))
}

/// Who hears of a failed reception: the number's users, else
/// `failed_to`, else the default recipients.
fn failed_recipients(config: &Config, fax: &ReceivedFax) -> Vec<String> {
    let inc = &config.fax.incoming;
    let users: Vec<String> = fax
        .called
        .as_deref()
        .map(|n| config.fax.policy().directory.users_for_number(n))
        .unwrap_or_default()
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    if !users.is_empty() {
        return users;
    }
    if !inc.failed_to.is_empty() {
        return inc.failed_to.clone();
    }
    inc.default_to.clone()
}

fn failed_notice(config: &Config, fax: &ReceivedFax, reason: &str) -> Result<String, String> {
    let what = match fax.pages {
        0 => "No page arrived.".to_owned(),
        n => format!("{n} page(s) arrived and are delivered as usual."),
    };
    let text = format!(
        "A fax call to us failed: {reason}.\n{what}\n\n{}",
        facts(fax)
    );
    let to = failed_recipients(config, fax);
    mail_builder::MessageBuilder::new()
        .from(("Fax service", sender(config).as_str()))
        .to(to.iter().map(String::as_str).collect::<Vec<&str>>())
        .subject(format!(
            "Incoming Failed: fax from {} ({} page(s) received)",
            from_label(fax),
            fax.pages
        ))
        .header(
            "X-Mailer",
            mail_builder::headers::raw::Raw::new("faxmta fax receive"),
        )
        .text_body(text)
        .write_to_string()
        .map_err(|e| format!("cannot build the notice: {e}"))
}

/// Queue a mail from the fax service; its queue id.
async fn enqueue(
    config: &Config,
    store: &Store,
    to: &[String],
    body: String,
) -> Result<String, String> {
    let mut message = NewMessage::local(&sender(config), to, &config.hostname, body.as_bytes());
    // Marked, so that a failure of it is remembered (zero retention).
    message.client.protocol = crate::fax::retention::PROTOCOL.into();
    crate::server::path::check_message(&message)
        .map_err(|e| format!("cannot queue the received fax mail: {e}"))?;
    let id = store.new_id().map_err(|e| format!("cannot queue: {e}"))?;
    store
        .enqueue(id.clone(), message, body.as_bytes())
        .await
        .map_err(|e| format!("cannot queue the received fax mail: {e}"))?;
    Ok(id)
}

#[cfg(test)]
mod tests;
