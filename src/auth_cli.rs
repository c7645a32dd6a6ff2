//! `faxmta check spf` (the SPF result for a client, like spfquery) and
//! `faxmta dkim keygen` (a signing key and the DNS record to publish).

use crate::config::policy::DkimKeyKind;
use crate::config::Config;
use crate::policy::dkim;
use crate::policy::spf::{word, Authenticator};
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

/// `faxmta check spf --ip IP --helo NAME --from ADDRESS`: check as the
/// server would at MAIL FROM (an empty `--from` checks the HELO name), over
/// the configured resolver, and print the result, its explanation and the
/// Received-SPF header field the server would add. Exit 0 when a result
/// was found (whatever it is), 2 for bad arguments.
pub fn check_spf(config: &Config, ip: &str, helo: &str, from: &str) -> ExitCode {
    let Ok(ip) = ip.trim_matches(['[', ']']).parse::<IpAddr>() else {
        eprintln!("faxmta: --ip {ip:?} is not an IP address");
        return ExitCode::from(2);
    };
    let from = from.trim_start_matches('<').trim_end_matches('>');
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("faxmta: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let auth = match Authenticator::new(config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("faxmta: {e}");
            return ExitCode::FAILURE;
        }
    };
    let v = runtime.block_on(auth.check_spf(ip, helo, from));
    let identity = if v.helo_identity { "helo" } else { "mailfrom" };
    println!("result:      {}", word(v.result));
    println!(
        "identity:    {identity} {} (domain {})",
        v.identity, v.domain
    );
    println!("comment:     {}", v.comment());
    if let Some(exp) = &v.explanation {
        println!("explanation: {exp}");
    }
    print!("{}", v.received_spf(&config.hostname).replace("\r\n", "\n"));
    ExitCode::SUCCESS
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
