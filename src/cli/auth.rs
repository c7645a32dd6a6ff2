//! `faxmta check spf` (the SPF result for a client, like libspf2's
//! spfquery, with its exit statuses) and
//! `faxmta dkim keygen` (a signing key and the DNS record to publish).

use crate::config::dkim::DkimKeyKind;
use crate::config::Config;
use crate::policy::dkim;
use crate::policy::spf::{word, Authenticator};
use mail_auth::SpfResult;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// What `faxmta check spf` is asked.
pub struct SpfQuery {
    pub ip: String,
    pub helo: Option<String>,
    pub from: String,
    /// `--nameserver` (repeatable): ask these instead of `[dns]`; no
    /// configuration file is read then.
    pub nameservers: Vec<String>,
    pub timeout: Option<u64>,
    pub json: bool,
}

/// Exit status for a usage error (EX_USAGE), kept apart from the results.
pub const EXIT_USAGE: u8 = 64;
/// Exit status when the configuration cannot be read or the resolver
/// cannot be set up (EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// The exit status for a result, as libspf2's spfquery has it: neutral 1,
/// pass 2, fail 3, softfail 4, none 5, temperror 6, permerror 7.
pub fn exit_status(r: SpfResult) -> u8 {
    match r {
        SpfResult::Neutral => 1,
        SpfResult::Pass => 2,
        SpfResult::Fail => 3,
        SpfResult::SoftFail => 4,
        SpfResult::None => 5,
        SpfResult::TempError => 6,
        SpfResult::PermError => 7,
    }
}

/// `faxmta check spf --ip IP [--helo NAME] [--from ADDRESS|DOMAIN]
/// [--nameserver HOST:PORT] [--json]`: check as the server would at MAIL
/// FROM (no `--from`, or an empty one, checks the HELO name; a bare
/// domain is `postmaster@` it), and print the result, its explanation
/// and the Received-SPF header field the server would add. `config`:
/// the loaded configuration, `None` when `--nameserver` replaces it.
/// The exit status tells the result ([`exit_status`]).
pub fn check_spf(config: Option<&Config>, q: &SpfQuery) -> ExitCode {
    let Ok(ip) = q.ip.trim_matches(['[', ']']).parse::<IpAddr>() else {
        eprintln!("faxmta: --ip {:?} is not an IP address", q.ip);
        return ExitCode::from(EXIT_USAGE);
    };
    let from = q.from.trim_start_matches('<').trim_end_matches('>');
    let helo = q.helo.as_deref().unwrap_or("");
    if from.is_empty() && helo.is_empty() {
        eprintln!("faxmta: give --from (an address or a domain), --helo, or both");
        return ExitCode::from(EXIT_USAGE);
    }
    let mut nameservers = Vec::new();
    for ns in &q.nameservers {
        match parse_nameserver(ns) {
            Some(addr) => nameservers.push(addr),
            None => {
                eprintln!("faxmta: --nameserver {ns:?} is not IP or IP:PORT");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let hostname = config.map_or_else(crate::config::default_hostname, |c| c.hostname.clone());
    let timeout = match (q.timeout, config) {
        (Some(secs), _) => Duration::from_secs(secs.max(1)),
        (None, Some(c)) => c.dns.timeout.std(),
        (None, None) => Duration::from_secs(5),
    };
    if nameservers.is_empty() {
        nameservers = config
            .map(|c| c.dns.nameservers.clone())
            .unwrap_or_default();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("faxmta: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // hickory's resolver is built inside the runtime.
    let v = match runtime.block_on(async {
        let auth = Authenticator::over(&nameservers, timeout, &hostname)?;
        Ok::<_, String>(auth.check_spf(ip, helo, from).await)
    }) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("faxmta: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let identity = if v.helo_identity { "helo" } else { "mailfrom" };
    let header = v.received_spf(&hostname).replace("\r\n", "\n");
    if q.json {
        let out = serde_json::json!({
            "result": word(v.result),
            "identity": identity,
            "sender": v.identity,
            "domain": v.domain,
            "ip": v.ip.to_string(),
            "helo": v.helo,
            "comment": v.comment(),
            "explanation": v.explanation,
            "reason": v.reason,
            "mechanism": v.mechanism,
            "dns_lookups": v.lookups.0,
            "void_lookups": v.lookups.1,
            "received_spf": header.trim_end(),
            "exit_status": exit_status(v.result),
        });
        println!("{out}");
    } else {
        println!("result:      {}", word(v.result));
        println!(
            "identity:    {identity} {} (domain {})",
            v.identity, v.domain
        );
        if let Some(m) = &v.mechanism {
            println!("mechanism:   {m}");
        }
        println!("comment:     {}", v.comment());
        if let Some(exp) = &v.explanation {
            println!("explanation: {exp}");
        }
        print!("{header}");
    }
    ExitCode::from(exit_status(v.result))
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT` (port 53 when none is given).
fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// `faxmta dkim keygen DOMAIN [--selector S] [--type rsa|ed25519] --out
/// DIR`: write `DIR/DOMAIN.SELECTOR.key` (PEM, mode 0600; an existing file
/// is not overwritten) and print the TXT record to publish and the
/// `[[dkim]]` table to configure.
pub fn keygen(domain: &str, selector: &str, kind: DkimKeyKind, out: &Path) -> ExitCode {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let valid = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            })
    };
    if !valid(&domain) || !valid(selector) {
        eprintln!("faxmta: expected a domain name and a selector (letters, digits, - and _)");
        return ExitCode::from(2);
    }
    let (pem, record) = match dkim::generate(kind) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("faxmta: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = out.join(format!("{domain}.{selector}.key"));
    if let Err(e) = std::fs::create_dir_all(out).and_then(|()| write_private(&path, &pem)) {
        eprintln!("faxmta: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    let kind = match kind {
        DkimKeyKind::Rsa => "rsa-sha256, 2048 bits",
        DkimKeyKind::Ed25519 => "ed25519-sha256",
    };
    println!("wrote {} ({kind})", path.display());
    println!();
    println!("publish this TXT record:");
    println!(
        "{selector}._domainkey.{domain}. IN TXT {}",
        dkim::zone_strings(&record)
    );
    println!();
    println!("and configure:");
    println!("[[dkim]]");
    println!("domain = \"{domain}\"");
    println!("selector = \"{selector}\"");
    println!("key = \"{}\"", path.display());
    ExitCode::SUCCESS
}

/// Create `path` readable by its owner only; never overwrite.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
