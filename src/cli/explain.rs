//! `faxmta route ADDRESS`: which way an address goes and why — the rule
//! that matched, the next hops in the order they will be tried, and the
//! TLS and AUTH policy (the user, never the password) — using the same
//! router and DNS settings as the server. A fax address shows its number
//! in E.164, the dial string and the outbound rules that match it.

use crate::config::Config;
use crate::router::{BackupRoute, EtrnRoute, Route, Router};
use faxmta_fax::dialplan::Action;
use faxmta_fax::directory::FaxTarget;
use faxmta_queue::format_duration;
use faxmta_smtp::{Asked, BackupPlan, Dns, Planner, TlsPolicy};
use faxmta_transport::{BackupMxHop, LmtpTarget, NextHop, RelayHop};
use std::fmt::Write;
use std::net::IpAddr;
use std::process::ExitCode;

fn tls_words(policy: TlsPolicy) -> &'static str {
    match policy {
        TlsPolicy::Off => "off (never STARTTLS)",
        TlsPolicy::Opportunistic => "opportunistic (STARTTLS when offered, any certificate)",
        TlsPolicy::Required => "required (STARTTLS must succeed, any certificate)",
        TlsPolicy::Verify => "verify (STARTTLS with a certificate valid for the host)",
        TlsPolicy::Dane => {
            "dane (signed TLSA records of the host, and a certificate that matches them)"
        }
    }
}

/// Who may send to a domain that is not ours.
fn relay_permission(config: &Config) -> String {
    let nets: Vec<String> = config.relay.allow.iter().map(|n| n.to_string()).collect();
    let auth = config.auth.users_file.is_some()
        || config.accounts.backend == crate::config::AccountsBackend::Database;
    match (nets.is_empty(), auth) {
        (true, false) => {
            "no client may send here: [relay] allow is empty; only our own reports go there"
                .to_string()
        }
        (true, true) => "accepted only from users logged in with SMTP AUTH".to_string(),
        (false, false) => format!(
            "accepted only from clients in [relay] allow: {}",
            nets.join(", ")
        ),
        (false, true) => format!(
            "accepted only from users logged in with SMTP AUTH and clients in [relay] allow: {}",
            nets.join(", ")
        ),
    }
}

/// The hosts of a relay or smart host hop in order, its TLS and AUTH.
fn hop_lines(out: &mut String, hop: &RelayHop) {
    let _ = writeln!(out, "route:   SMTP to these hosts, in order:");
    for (n, h) in hop.hosts.iter().enumerate() {
        let how = if hop.implicit_tls_for(h) {
            " (implicit TLS from the first byte)"
        } else {
            ""
        };
        let host = if h.name.contains(':') {
            format!("[{}]", h.name)
        } else {
            h.name.clone()
        };
        let _ = writeln!(out, "  {}. {host}:{}{how}", n + 1, h.port);
    }
    let _ = writeln!(out, "tls:     {}", tls_words(hop.tls));
    let auth = match &hop.auth {
        None => "none".to_string(),
        Some(c) if hop.tls == TlsPolicy::Off => format!(
            "AUTH as {} (PLAIN, else LOGIN; tls = \"off\": the password may travel in plaintext)",
            c.user
        ),
        Some(c) => format!(
            "AUTH as {} (PLAIN, else LOGIN; only over TLS, never in plaintext)",
            c.user
        ),
    };
    let _ = writeln!(out, "auth:    {auth}");
}

/// A host's addresses, or why there are none.
fn address_list(addrs: &Result<Vec<IpAddr>, faxmta_smtp::DnsError>) -> String {
    match addrs {
        Ok(ips) => ips
            .iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("({e})"),
    }
}

/// A backup MX domain: who is accepted, for how long, the MX set with our
/// own entry, and the hosts that may be tried.
async fn backup_lines(
    out: &mut String,
    config: &Config,
    route: &BackupRoute,
) -> Result<(), String> {
    let domain = &route.hop.domain;
    let _ = writeln!(
        out,
        "rule:    backup MX for {domain} (ours to relay: accepted from any client)"
    );
    let users = match route.callout {
        Some(limit) => format!(
            "verified at RCPT by a callout to the primary MX (MAIL FROM:<>, RCPT TO; within \
             {}s): refused only when it refuses; a primary that cannot be asked: accepted",
            limit.as_secs()
        ),
        None if route.listed => "faxmta's list (users = […]) at RCPT".to_string(),
        None => "every local part is accepted".to_string(),
    };
    let _ = writeln!(out, "users:   {users}");
    let _ = writeln!(
        out,
        "queue:   kept up to {} (then a failure report to the sender)",
        format_duration(route.lifetime)
    );
    mx_plan_lines(out, config, &route.hop, "route:  ").await
}

/// The MX set of a backup MX (or ETRN) hop with our own entry marked,
/// and the hosts that may be tried; `label` starts the first line.
async fn mx_plan_lines(
    out: &mut String,
    config: &Config,
    hop: &BackupMxHop,
    label: &str,
) -> Result<(), String> {
    let domain = &hop.domain;
    let _ = writeln!(
        out,
        "{label} SMTP only to MX hosts of {domain} more preferred than this host (port {}):",
        config.outbound.port
    );
    let mut us = vec![format!("hostname {}", config.hostname)];
    if let Some(name) = &hop.our_mx {
        us.push(format!("our_mx {name}"));
    }
    us.push("listener addresses".into());
    let dns = Dns::new(&config.dns.nameservers, config.dns.timeout.std())?;
    let myself = config.myself();
    let plan = match BackupPlan::make(&dns, &myself, config.outbound.port, hop).await {
        Ok(plan) => plan,
        Err(e) => {
            let _ = writeln!(out, "  none: {e} — delivery is deferred (the mail is held)");
            let _ = writeln!(out, "tls:     {}", tls_words(hop.tls));
            return Ok(());
        }
    };
    let ours = plan.our_preference();
    for (n, h) in plan.hosts.iter().enumerate() {
        let role = match ours {
            _ if h.ours => "this host (our entry)",
            Some(p) if h.mx.preference < p => "more preferred: may be tried",
            Some(_) => "not more preferred than us: never tried",
            None => "never tried (we are not in the set)",
        };
        let _ = writeln!(
            out,
            "  {}. {} preference {}: {} — {role}",
            n + 1,
            h.mx.name,
            h.mx.preference,
            address_list(&h.addrs)
        );
    }
    let ours = match ours {
        Some(p) => format!("preference {p}"),
        None => "not in the MX set".to_string(),
    };
    let _ = writeln!(out, "us:      {ours} (recognised by {})", us.join(", "));
    let tries = match plan.primaries() {
        Ok(hosts) => hosts
            .iter()
            .map(|h| h.mx.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        Err(reply) => format!("none — delivery is deferred: {}", reply.text),
    };
    let _ = writeln!(out, "tries:   {tries}");
    let _ = writeln!(out, "tls:     {}", tls_words(hop.tls));
    Ok(())
}

/// An ETRN domain: held until whom releases it, for how long, and where
/// its mail goes then.
async fn etrn_lines(out: &mut String, config: &Config, route: &EtrnRoute) -> Result<(), String> {
    let domain = &route.domain;
    let _ = writeln!(
        out,
        "rule:    ETRN domain {domain} (ours to relay: accepted from any client), held: not \
         attempted until an ETRN releases it"
    );
    let nets: Vec<String> = route.release_from.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(
        out,
        "release: ETRN {domain}, ETRN #{domain} or ETRN @{domain} (or @ a parent domain) from \
         clients in release_from: {}",
        nets.join(", ")
    );
    let users = if route.listed {
        "faxmta's list (users = […]) at RCPT"
    } else {
        "every local part is accepted"
    };
    let _ = writeln!(out, "users:   {users}");
    let lifetime = route.lifetime.unwrap_or(config.queue.lifetime.0);
    let _ = writeln!(
        out,
        "queue:   held up to {} (then a failure report to the sender); released mail is \
         delivered and retried as usual, mail arriving later waits for the next ETRN",
        format_duration(lifetime)
    );
    match &route.hop {
        NextHop::Relay(hop) => {
            let _ = writeln!(out, "after:   ETRN: no MX lookup");
            hop_lines(out, hop);
        }
        NextHop::BackupMx(hop) => mx_plan_lines(out, config, hop, "after:   ETRN:").await?,
        other => {
            let _ = writeln!(out, "after:   ETRN: {other:?}");
        }
    }
    Ok(())
}

/// A fax recipient: the number, how it is dialled, and the outbound rules
/// that match it in order.
fn fax_lines(out: &mut String, router: &Router, target: &FaxTarget) {
    let policy = router.fax_policy();
    let _ = writeln!(
        out,
        "rule:    fax recipient ({}): accepted from any client, for senders in the fax user \
         directory",
        target.form.describe()
    );
    let _ = writeln!(out, "number:  {}", target.number);
    let plan = &policy.plan;
    let how = if plan.is_national(&target.number) {
        "national: national prefix and national number"
    } else {
        "international: international prefix and all digits"
    };
    let _ = writeln!(out, "dial:    {} ({how})", target.dial);
    if let Some(sub) = &target.subaddress {
        let _ = writeln!(out, "sub:     {sub} (T.33 sub-address)");
    }
    if let Some(ext) = &target.extension {
        let _ = writeln!(out, "ext:     {ext} (DTMF once the call is answered)");
    }
    if let Some(name) = &target.name {
        let _ = writeln!(out, "name:    {name}");
    }
    let matching: Vec<_> = policy
        .rules
        .iter()
        .filter(|r| r.matches(&target.number, plan))
        .collect();
    if matching.is_empty() {
        let _ = writeln!(
            out,
            "rules:   none matches {}: every sender in the directory may fax it",
            target.number
        );
    } else {
        let _ = writeln!(
            out,
            "rules:   matching {}, in order (the first that applies to the sender decides; \
             none: allowed):",
            target.number
        );
        for (n, r) in matching.iter().enumerate() {
            let action = match r.action {
                Action::Allow => "allow",
                Action::Deny => "deny",
            };
            let _ = writeln!(out, "  {}. {}: {action} for {}", n + 1, r.name, r.scope());
        }
    }
    let d = &policy.directory;
    let count = |n: usize, word: &str| match n {
        1 => format!("1 {word}"),
        n => format!("{n} {word}s"),
    };
    let _ = writeln!(
        out,
        "senders: {} and {} in the fax user directory; others get 550 5.7.1",
        count(d.users.len(), "user"),
        count(d.groups.len(), "group")
    );
}

/// The explanation, as printed.
pub async fn explain(config: &Config, address: &str) -> Result<String, String> {
    let router = Router::new(config);
    let mut out = String::new();
    let _ = writeln!(out, "address: {address}");
    // As relay control sees it for a client that may relay: address
    // literals and routing in our domains are refused for everyone.
    match crate::policy::relay::check(&router, true, address) {
        Err(reply) => {
            let _ = writeln!(out, "refused at RCPT: {reply}");
        }
        Ok(Route::Maildir { mailbox }) => {
            let _ = writeln!(out, "rule:    local domain (accepted from any client)");
            let _ = writeln!(out, "route:   Maildir delivery into {}", mailbox.display());
        }
        Ok(Route::Lmtp { target }) => {
            let _ = writeln!(out, "rule:    local domain (accepted from any client)");
            let _ = writeln!(
                out,
                "route:   LMTP delivery to {target} (RCPT TO with the full address; \
                 the server answers for each recipient)"
            );
            if let LmtpTarget::Tcp(host) = &target {
                if host.name.parse::<IpAddr>().is_err() && host.name != "localhost" {
                    let dns = Dns::new(&config.dns.nameservers, config.dns.timeout.std())?;
                    let addrs = match dns.addresses(&host.name).await {
                        Ok(ips) => ips
                            .iter()
                            .map(|ip| ip.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        Err(e) => format!("({e}) — delivery is deferred"),
                    };
                    let _ = writeln!(out, "  {}: {addrs}", host.name);
                }
            }
            let domain = address
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase());
            let listed = config
                .domains
                .iter()
                .any(|d| Some(&d.name.0) == domain.as_ref() && d.users.is_some());
            let users = if listed {
                "faxmta's list (users = […]) at RCPT, then the LMTP server's"
            } else {
                "the LMTP server's: an unknown user fails with its reply, reported to the sender"
            };
            let _ = writeln!(out, "users:   {users}");
        }
        Ok(Route::BackupMx(route)) => backup_lines(&mut out, config, &route).await?,
        Ok(Route::Etrn(route)) => etrn_lines(&mut out, config, &route).await?,
        Ok(Route::Fax(target)) => fax_lines(&mut out, &router, &target),
        Ok(Route::Relay { hop }) => {
            let _ = writeln!(
                out,
                "rule:    relay domain (ours: accepted from any client), no MX lookup"
            );
            hop_lines(&mut out, &hop);
        }
        Ok(Route::Smarthost {
            domain,
            hop,
            global,
        }) => {
            let who = relay_permission(config);
            let rule = if global {
                format!("not our domain ({who}); every such domain goes to [smarthost]")
            } else {
                format!("smarthost domain {domain} (not ours: {who})")
            };
            let _ = writeln!(out, "rule:    {rule}");
            let _ = writeln!(out, "         smart host, no MX lookup for {domain}");
            hop_lines(&mut out, &hop);
        }
        Ok(Route::Remote { domain }) => {
            let who = relay_permission(config);
            let _ = writeln!(out, "rule:    not our domain ({who})");
            let _ = writeln!(
                out,
                "route:   SMTP to the MX hosts of {domain} (port {}):",
                config.outbound.port
            );
            remote_lines(&mut out, config, &domain).await?;
        }
    }
    Ok(out)
}

/// The MX hosts of a remote domain in order, each with the TLS policy
/// delivery would use and why (DANE, MTA-STS, the configured one) — the
/// transport's own planner, so what is printed is what happens.
async fn remote_lines(out: &mut String, config: &Config, domain: &str) -> Result<(), String> {
    let dns = crate::transports::outbound_dns(config)?;
    let planner = Planner {
        sts: crate::transports::mta_sts(config, &dns, false)?,
        dns,
        settings: config.outbound.security(),
        port: config.outbound.port,
    };
    let plan = match planner.domain(domain, Asked::default()).await {
        Ok(plan) => plan,
        Err((permanent, reply)) => {
            let what = if permanent { "fails" } else { "is deferred" };
            let _ = writeln!(out, "  none: {} — delivery {what}", reply.text);
            return Ok(());
        }
    };
    let mut policies = Vec::new();
    for (n, h) in plan.hosts.iter().enumerate() {
        let implicit = if h.implicit {
            " (no MX: the domain itself)"
        } else {
            ""
        };
        let head = format!(
            "  {}. {} preference {}{implicit}",
            n + 1,
            h.name,
            h.preference
        );
        match planner.host(&plan, h).await {
            Ok(host) => {
                let addrs: Vec<String> = host.addrs.iter().map(|ip| ip.to_string()).collect();
                let _ = writeln!(out, "{head}: {}", addrs.join(", "));
                policies.push(format!("  {}: {}", h.name, host.describe()));
            }
            Err(e) => {
                let _ = writeln!(out, "{head}: not used: {}", e.error.reply);
                policies.push(format!("  {}: not used: {}", h.name, e.error.reply));
            }
        }
    }
    let _ = writeln!(
        out,
        "  (hosts of equal preference are tried in random order)"
    );
    let mx = if plan.mx_secure {
        "DNSSEC-signed".to_string()
    } else {
        plan.no_dane
            .clone()
            .unwrap_or_else(|| "not DNSSEC-signed".into())
    };
    let _ = writeln!(out, "mx:      {mx}");
    let (policy, per_domain) = plan.configured;
    let from = if per_domain {
        format!("[outbound.tls_policy] for {domain}")
    } else {
        "[outbound] tls".to_string()
    };
    let _ = writeln!(
        out,
        "tls:     {} ({from}, where no DANE or MTA-STS policy applies); per host:",
        tls_words(policy)
    );
    for line in policies {
        let _ = writeln!(out, "{line}");
    }
    Ok(())
}

/// Run the command.
pub fn run(config: &Config, address: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("faxmta: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(explain(config, address)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faxmta: {e}");
            ExitCode::FAILURE
        }
    }
}
