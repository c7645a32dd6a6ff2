//! The POP3 fax gateway: every `[[pop3]]` mailbox is polled for fax
//! requests, for sites whose MX is hosted elsewhere (as NET SatisFAXtion's
//! POP3 mode does).
//!
//! Each fetched mail becomes one queued message: its envelope sender is
//! the mail's From (else Sender, else Return-Path), its recipients the
//! To and Cc addresses that are fax addresses (`NUMBER@` a fax domain,
//! `FAX=…@`, `IMCEAFAX-…@`), each authorised with
//! `crate::policy::fax`; other addresses are ignored. Refused fax
//! recipients, and a mail with no fax recipient at all, get a failure
//! report to the sender — never silence (auto-submitted mail and reports
//! excepted, which are only logged, so that two gateways cannot loop).
//! The job and the report are enqueued and synced before the message is
//! deleted (DELE, QUIT) or its UIDL remembered, so a crash can repeat a
//! request but never lose one. Fax reports then go out like any mail.

use crate::config::policy::DmarcMode;
use crate::config::pop3::{Pop3Config, Pop3Senders, Pop3TlsMode};
use crate::config::Config;
use crate::policy::fax::{may_fax_address, Asker};
use crate::policy::spf::Authenticator;
use crate::reports::{build_report, ReportItem, ReportKind};
use crate::router::{Route, Router};
use faxmta_queue::{BodyType, ClientInfo, NewMessage, NewRecipient, Reply, Store};
use faxmta_smtp::pop3::{Pop3Client, Pop3Error, Pop3Settings, Pop3Tls};
use faxmta_smtp::{Dns, Tls};
use std::collections::HashSet;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// What a fetched mail asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    /// The envelope sender; `None`: the mail names nobody.
    sender: Option<String>,
    /// Authorised fax recipients.
    fax: Vec<String>,
    /// Fax recipients refused, and why.
    refused: Vec<(String, Reply)>,
    /// The To/Cc addresses that are not fax addresses.
    ignored: Vec<String>,
    /// Auto-submitted mail or a report: no report back.
    automatic: bool,
}

/// Read the fax request out of a mail (`raw`, as fetched).
fn read_request(router: &Router, raw: &[u8]) -> Request {
    let Some(msg) = mail_parser::MessageParser::default().parse(raw) else {
        return Request::default();
    };
    let first = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.iter().find_map(|x| x.address().map(str::to_string)))
    };
    let return_path = msg
        .header_raw("Return-Path")
        .map(|p| {
            p.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .to_string()
        })
        .filter(|p| !p.is_empty());
    // An address that is not one by RFC 5321's grammar (a CR LF in it
    // would be a command of its own at the next hop) names nobody.
    let valid = |a: &String| crate::server::path::check_address(a, false).is_ok();
    let sender = first(msg.from())
        .or_else(|| first(msg.sender()))
        .or(return_path)
        .filter(|s| s.contains('@'))
        .filter(valid);
    let auto = msg
        .header_raw("Auto-Submitted")
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"))
        || msg
            .header_raw("Content-Type")
            .is_some_and(|v| v.to_ascii_lowercase().contains("multipart/report"))
        || sender.as_deref().is_some_and(|s| {
            let local = s.split('@').next().unwrap_or("").to_ascii_lowercase();
            local == "mailer-daemon" || local == "postmaster"
        });
    let mut request = Request {
        sender: sender.clone(),
        automatic: auto,
        ..Request::default()
    };
    let mut seen = HashSet::new();
    // Every To and Cc field (a mail may repeat them, against RFC 5322).
    let addresses = msg
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("To") || h.name().eq_ignore_ascii_case("Cc"))
        .filter_map(|h| h.value().as_address())
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address().map(str::to_string));
    for to in addresses {
        if !seen.insert(to.to_ascii_lowercase()) {
            continue;
        }
        if !valid(&to) {
            tracing::warn!("pop3: {to:?} is not a valid address; ignored");
            continue;
        }
        match router.resolve(&to) {
            Ok(Route::Fax(_)) => match may_fax_address(
                router,
                &Asker::trusted(sender.as_deref().unwrap_or(""), None),
                &to,
            ) {
                Ok(_) => request.fax.push(to),
                Err(reply) => request.refused.push((to, reply)),
            },
            Err(reply) if reply.text.starts_with("Bad fax number") => {
                request.refused.push((to, reply))
            }
            _ => request.ignored.push(to),
        }
    }
    request
}

/// The Received header of a fetched mail.
fn received(mailbox: &Pop3Config, hostname: &str, id: &str, tls: bool) -> String {
    format!(
        "Received: from {} (mailbox {}) by {hostname} (faxmta) with {} id {id};\r\n\t{}\r\n",
        mailbox.host,
        mailbox.user,
        if tls { "POP3S" } else { "POP3" },
        chrono::Local::now().to_rfc2822()
    )
}

/// Whether `raw` carries a DKIM signature that verifies, of `sender`'s
/// domain or a parent of it (relaxed alignment, RFC 7489 §3.1.1, with the
/// parent named exactly); `Err`: why not.
async fn dkim_proves(config: &Config, raw: &[u8], sender: &str) -> Result<(), String> {
    let domain = sender
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default();
    let auth = Authenticator::new(config)?;
    let eval = auth
        .after_data(raw, None, true, DmarcMode::Off, None, &domain)
        .await;
    let signatures = eval.dkim.unwrap_or_default();
    let aligned = |d: &str| domain == d || domain.ends_with(&format!(".{d}"));
    if signatures
        .iter()
        .any(|s| s.result == "pass" && s.domain.as_deref().is_some_and(aligned))
    {
        return Ok(());
    }
    if signatures.is_empty() {
        return Err("the mail has no DKIM signature".into());
    }
    let seen: Vec<String> = signatures
        .iter()
        .map(|s| format!("d={}: {}", s.domain.as_deref().unwrap_or("?"), s.result))
        .collect();
    Err(format!(
        "no DKIM signature of {domain} verifies ({})",
        seen.join(", ")
    ))
}

/// Queue what one fetched mail asks for: the fax job, and the report of
/// what was refused. `Ok` only once everything is synced to disk.
async fn enqueue(
    config: &Config,
    mailbox: &Pop3Config,
    router: &Router,
    store: &Store,
    raw: &[u8],
    tls: bool,
) -> Result<(), String> {
    let mut request = read_request(router, raw);
    let label = mailbox.label();
    let Some(sender) = request.sender.clone() else {
        tracing::warn!(
            "pop3 {label}: a mail without a (valid) From address: nobody to fax for or report to; dropped"
        );
        return Ok(());
    };
    // A From header is no proof: without a DKIM signature of its domain
    // that verifies, nothing is faxed (the sender is told why).
    if mailbox.senders == Pop3Senders::Dkim && !request.fax.is_empty() {
        if let Err(why) = dkim_proves(config, raw, &sender).await {
            let reply = Reply::new(
                550,
                "5.7.1",
                format!("<{sender}> is not proven to have sent this fax request: {why}"),
            );
            let fax = std::mem::take(&mut request.fax);
            request
                .refused
                .extend(fax.into_iter().map(|to| (to, reply.clone())));
        }
    }
    let client = ClientInfo {
        addr: mailbox.host.clone(),
        helo: String::new(),
        auth_user: None,
        protocol: if tls { "POP3S" } else { "POP3" }.into(),
        trusted: false,
    };
    // The mail's queue id: its fax job's, and the one its report names.
    let id = store.new_id().map_err(|e| format!("queue id: {e}"))?;
    if !request.fax.is_empty() {
        let mut body = received(mailbox, &config.hostname, &id, tls).into_bytes();
        body.extend_from_slice(raw);
        let message = NewMessage {
            sender: sender.clone(),
            recipients: request.fax.iter().map(NewRecipient::new).collect(),
            client: client.clone(),
            body_type: if raw.iter().any(|&b| b >= 0x80) {
                BodyType::EightBitMime
            } else {
                BodyType::SevenBit
            },
            ..NewMessage::default()
        };
        store
            .enqueue(id.clone(), message, &body)
            .await
            .map_err(|e| format!("cannot queue the fax request from <{sender}>: {e}"))?;
        tracing::info!(
            "{id}: from=<{sender}>, nrcpt={}, fax request fetched from pop3 {label}",
            request.fax.len()
        );
    }
    let mut refused = request.refused.clone();
    if request.fax.is_empty() && refused.is_empty() {
        let why = Reply::new(
            550,
            "5.1.3",
            "No fax recipient: the POP3 fax gateway faxes to the To and Cc addresses \
             that are fax addresses (NUMBER@ a fax domain, FAX=NUMBER@, IMCEAFAX-NUMBER@); \
             this mail has none",
        );
        let mut to = request.ignored.clone();
        if to.is_empty() {
            to.push(format!("{}@{}", mailbox.user, mailbox.host));
        }
        refused = to.into_iter().map(|a| (a, why.clone())).collect();
    }
    if refused.is_empty() {
        return Ok(());
    }
    for (to, reply) in &refused {
        tracing::info!("pop3 {label}: from=<{sender}>, to=<{to}>: refused: {reply}");
    }
    if request.automatic {
        tracing::info!("pop3 {label}: from=<{sender}>: automatic mail, no report");
        return Ok(());
    }
    let now = faxmta_queue::now_unix();
    let env = NewMessage {
        sender: sender.clone(),
        recipients: refused.iter().map(|(a, _)| NewRecipient::new(a)).collect(),
        client,
        ..NewMessage::default()
    }
    .into_envelope(id, raw.len() as u64, now);
    let items: Vec<ReportItem<'_>> = env
        .recipients
        .iter()
        .zip(&refused)
        .map(|(recipient, (_, reply))| ReportItem {
            recipient,
            reply,
            remote_mta: None,
            will_retry_until: None,
        })
        .collect();
    let Some(report) = build_report(
        ReportKind::Failure,
        &config.hostname,
        &env,
        raw,
        &items,
        now,
    ) else {
        return Ok(());
    };
    let id = store.new_id().map_err(|e| format!("queue id: {e}"))?;
    store
        .enqueue(id.clone(), report.message, &report.body)
        .await
        .map_err(|e| format!("cannot queue the report to <{sender}>: {e}"))?;
    tracing::info!("{id}: from=<>, report to <{sender}> about a refused pop3 fax request");
    Ok(())
}

/// The UIDLs already fetched from a mailbox kept with `delete = false`.
struct Seen {
    file: PathBuf,
    uids: HashSet<String>,
}

impl Seen {
    fn load(config: &Config, mailbox: &Pop3Config) -> Seen {
        let file = mailbox.uidl_file.clone().unwrap_or_else(|| {
            let mut name = config.queue.path.clone().into_os_string();
            name.push(format!(".pop3-{}@{}.uidl", mailbox.user, mailbox.host));
            PathBuf::from(name)
        });
        let uids = match std::fs::read_to_string(&file) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => {
                // Every mail left on the server will be fetched again.
                tracing::error!("pop3 {}: {}: {e}", mailbox.label(), file.display());
                HashSet::new()
            }
        };
        Seen { file, uids }
    }

    /// Remember `uid`, synced.
    fn add(&mut self, uid: &str) -> Result<(), String> {
        let context = |e: std::io::Error| format!("{}: {e}", self.file.display());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .map_err(context)?;
        f.write_all(format!("{uid}\n").as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(context)?;
        self.uids.insert(uid.to_string());
        Ok(())
    }
}

/// One poll of one mailbox: the number of mails taken.
async fn poll(
    config: &Config,
    mailbox: &Pop3Config,
    router: &Router,
    store: &Store,
    seen: &mut Seen,
    shutdown: &watch::Receiver<bool>,
) -> Result<usize, String> {
    let password = std::fs::read_to_string(&mailbox.password_file)
        .map_err(|e| format!("password_file {}: {e}", mailbox.password_file.display()))?;
    let password = password.lines().next().unwrap_or("").to_string();
    let port = mailbox.port();
    let ips = match mailbox.host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => Dns::new(&config.dns.nameservers, config.dns.timeout.std())?
            .addresses(&mailbox.host)
            .await
            .map_err(|e| format!("{}: {e}", mailbox.host))?,
    };
    let settings = Pop3Settings {
        tls: match mailbox.tls {
            Pop3TlsMode::None => Pop3Tls::None,
            Pop3TlsMode::Starttls => Pop3Tls::Starttls,
            Pop3TlsMode::Implicit => Pop3Tls::Implicit,
        },
        verify_certificate: mailbox.tls_verify,
        connect_timeout: config.outbound.connect_timeout.std(),
        command_timeout: mailbox.timeout.std(),
        max_message: mailbox.max_message.0 as usize,
        ..Pop3Settings::default()
    };
    let tls = Tls::new()?;
    let mut last = format!("{}: no address", mailbox.host);
    let mut client = None;
    for ip in ips {
        match Pop3Client::connect(&mailbox.host, SocketAddr::new(ip, port), &settings, &tls).await {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let mut client = client.ok_or(last)?;
    let e = |e: Pop3Error| e.to_string();
    client.login(&mailbox.user, &password).await.map_err(e)?;
    let sizes = client.list().await.map_err(e)?;
    let uids = match mailbox.delete {
        true => Vec::new(),
        false => client.uidl().await.map_err(e)?,
    };
    let mut taken = 0;
    let mut failed = None;
    for (n, size) in sizes {
        if *shutdown.borrow() {
            break;
        }
        let uid = uids.iter().find(|(m, _)| *m == n).map(|(_, u)| u.clone());
        if uid.as_ref().is_some_and(|u| seen.uids.contains(u)) {
            continue;
        }
        // The disk reserve ([queue] min_free), as for SMTP: a mail the
        // queue has no room for stays on the server until a later poll.
        if let Err(e) = store.check_room(config.queue.min_free.0, size) {
            failed = Some(format!(
                "message {n} and the rest left on the server, fetched at a later poll: {e}"
            ));
            break;
        }
        if size > mailbox.max_message.0 {
            tracing::warn!(
                "pop3 {}: message {n} ({size} octets) is larger than max_message; left on the server",
                mailbox.label()
            );
            continue;
        }
        let raw = match client.retr(n).await {
            Ok(raw) => raw,
            // Larger than LIST said: read and dropped, the session goes
            // on (what was deleted so far is deleted at QUIT).
            Err(e @ Pop3Error::TooBig(..)) if client.is_open() => {
                tracing::warn!(
                    "pop3 {}: message {n} (listed as {size} octets): {e}; left on the server",
                    mailbox.label()
                );
                continue;
            }
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        };
        match take(
            config,
            mailbox,
            router,
            store,
            seen,
            &mut client,
            n,
            uid,
            &raw,
        )
        .await
        {
            Ok(()) => taken += 1,
            Err(why) => {
                failed = Some(why);
                break;
            }
        }
    }
    // QUIT even after a failure: the deletions so far take effect, so
    // their mails are not fetched (and queued) again.
    let quit = client.quit().await.map_err(e);
    match (failed, quit) {
        (Some(why), _) => Err(why),
        (None, Err(why)) => Err(why),
        (None, Ok(())) => Ok(taken),
    }
}

/// Queue what message `n` (fetched: `raw`) asks for, then delete it (or
/// remember its UIDL).
#[allow(clippy::too_many_arguments)]
async fn take(
    config: &Config,
    mailbox: &Pop3Config,
    router: &Router,
    store: &Store,
    seen: &mut Seen,
    client: &mut Pop3Client,
    n: u32,
    uid: Option<String>,
    raw: &[u8],
) -> Result<(), String> {
    let e = |e: Pop3Error| e.to_string();
    enqueue(config, mailbox, router, store, raw, client.tls_active).await?;
    match (mailbox.delete, uid) {
        (true, _) => client.dele(n).await.map_err(e),
        (false, Some(uid)) => seen.add(&uid),
        (false, None) => Err(format!(
            "message {n} has no UIDL: it would be fetched again"
        )),
    }
}

/// Poll every `[[pop3]]` mailbox until shutdown: each at once, then every
/// `poll`.
pub async fn run(
    config: Arc<Config>,
    router: Arc<Router>,
    store: Store,
    shutdown: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (n, mailbox) in config.pop3.iter().enumerate() {
        let (config, router, store) = (config.clone(), router.clone(), store.clone());
        let mut shutdown = shutdown.clone();
        tracing::info!(
            "pop3 gateway: polling {} every {}",
            mailbox.label(),
            faxmta_queue::format_duration(mailbox.poll.0)
        );
        tasks.spawn(async move {
            let mailbox = &config.pop3[n];
            let mut seen = Seen::load(&config, mailbox);
            loop {
                match poll(&config, mailbox, &router, &store, &mut seen, &shutdown).await {
                    Ok(0) => {}
                    Ok(k) => tracing::info!("pop3 {}: {k} mail(s) fetched", mailbox.label()),
                    Err(e) => tracing::warn!("pop3 {}: {e}", mailbox.label()),
                }
                tokio::select! {
                    _ = tokio::time::sleep(mailbox.poll.std()) => {}
                    _ = shutdown.changed() => break,
                }
                if *shutdown.borrow() {
                    break;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests;
