//! faxmta: a mail transfer agent in which fax is one more transport.
//!
//! This crate is the daemon and its command line; it wires the queue
//! (crate faxmta-queue) and the transports (crates faxmta-local,
//! faxmta-smtp and faxmta-fax, behind faxmta-transport's `Transport`
//! trait: src/transports.rs) together with the SMTP server, the policies,
//! the router and the scheduler. Its cargo feature `fax` (default) brings
//! the fax line (faxmta-fax's feature `line`); without it faxmta is
//! mail-only. The binary (src/main.rs) only calls [`main`]; the library
//! form exists so that the fuzz target `route` (fuzz/, through
//! [`fuzzing`]) reaches the router (the parsers' targets link
//! faxmta-proto alone). docs/architecture.md maps every module.

mod admin;
mod cli;
mod config;
mod etrn;
#[cfg(feature = "fax")]
mod fax;
mod metrics;
mod policy;
mod portal;
mod queue;
mod reload;
mod reports;
mod router;
mod scheduler;
mod serve;
mod server;
mod transports;

pub mod fuzzing;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "faxmta",
    version,
    about = "A mail transfer agent in which fax is one more transport"
)]
struct Cli {
    /// Configuration file [default: $FAXMTA_CONFIG, /etc/faxmta/faxmta.toml if it exists, else conf/demo.toml]
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Make the running server read its configuration again (as SIGHUP
    /// does): the users, fax rules, tokens, certificates and DKIM keys
    /// with it. A configuration with an error is refused and the running
    /// one stays.
    Reload,
    /// Check a configuration file and report errors with file and line.
    CheckConfig {
        /// The file to check [default: the --config file].
        file: Option<PathBuf>,
    },
    /// Print the route an address takes and why.
    Route {
        /// The recipient address.
        address: String,
    },
    /// Ask a server that holds mail for us to deliver it now (ETRN, RFC
    /// 1985); prints its reply, succeeds on 250-253.
    Etrn {
        /// The server: HOST, HOST:PORT or [IPv6]:PORT (port 25 by default).
        #[arg(long)]
        server: String,
        /// The domain: DOMAIN, @DOMAIN (with its subdomains) or #QUEUE.
        domain: String,
        /// STARTTLS towards the server.
        #[arg(long, value_enum, default_value = "opportunistic")]
        tls: EtrnTls,
    },
    /// Inspect and manage the queue (like mailq, postqueue and postsuper).
    Queue {
        #[command(subcommand)]
        action: cli::queue::QueueAction,
    },
    /// Check what a policy says about a client.
    Check {
        #[command(subcommand)]
        what: CheckWhat,
    },
    /// DKIM signing keys.
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
    },
    /// The users of SMTP AUTH ([auth] users_file).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Send faxes and see how they went.
    #[cfg(feature = "fax")]
    Fax {
        #[command(subcommand)]
        action: cli::fax::FaxAction,
    },
    /// The tokens of the HTTP fax API ([admin] tokens_file).
    Token {
        #[command(subcommand)]
        action: cli::token::TokenAction,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user; the password comes from the terminal or standard input.
    Add {
        /// The user name (often the user's address).
        user: String,
        /// An envelope sender the user may use: an address or @domain
        /// (repeatable). Default: any address in the user's own domain.
        #[arg(long = "sender")]
        senders: Vec<String>,
    },
    /// Change a user's password (from the terminal or standard input).
    Passwd { user: String },
    /// Delete a user.
    Del { user: String },
    /// List the users and their senders.
    List,
}

#[derive(Subcommand)]
enum CheckWhat {
    /// The SPF result (RFC 7208) for a client, as the server would find
    /// it, like spfquery. Exit status: neutral 1, pass 2, fail 3,
    /// softfail 4, none 5, temperror 6, permerror 7 (libspf2's spfquery);
    /// 64 for a bad command line, 78 when the configuration or resolver
    /// cannot be set up.
    Spf {
        /// The client's IP address.
        #[arg(long)]
        ip: String,
        /// The name the client gave in HELO/EHLO (`%{h}`; checked itself
        /// when there is no --from).
        #[arg(long)]
        helo: Option<String>,
        /// The MAIL FROM address, or a domain (meaning postmaster@domain);
        /// empty or absent: check the HELO name.
        #[arg(long, visible_alias = "sender", default_value = "")]
        from: String,
        /// Ask this DNS server (IP or IP:PORT; repeatable) instead of the
        /// configured ones; the configuration file is not read then.
        #[arg(long = "nameserver", value_name = "HOST:PORT")]
        nameservers: Vec<String>,
        /// Seconds to wait for each DNS answer [default: the [dns]
        /// timeout, or 5 with --nameserver].
        #[arg(long)]
        timeout: Option<u64>,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DkimAction {
    /// Make a signing key for DOMAIN and print the DNS TXT record.
    Keygen {
        domain: String,
        #[arg(long, default_value = "faxmta")]
        selector: String,
        #[arg(long = "type", value_enum, default_value = "rsa")]
        kind: KeyType,
        /// Directory for the key file (DOMAIN.SELECTOR.key).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `faxmta dkim keygen --type`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyType {
    /// RSA, 2048 bits (rsa-sha256): verified everywhere.
    Rsa,
    /// Ed25519 (RFC 8463): short, not verified everywhere yet.
    Ed25519,
}

/// `faxmta etrn --tls`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum EtrnTls {
    Off,
    Opportunistic,
    Required,
    Verify,
}

impl From<EtrnTls> for config::OutboundTls {
    fn from(t: EtrnTls) -> Self {
        match t {
            EtrnTls::Off => config::OutboundTls::Off,
            EtrnTls::Opportunistic => config::OutboundTls::Opportunistic,
            EtrnTls::Required => config::OutboundTls::Required,
            EtrnTls::Verify => config::OutboundTls::Verify,
        }
    }
}

fn config_path(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("FAXMTA_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let etc = PathBuf::from("/etc/faxmta/faxmta.toml");
            etc.exists().then_some(etc)
        })
        .unwrap_or_else(|| PathBuf::from("conf/demo.toml"))
}

/// The command line is `faxmta [options] check spf …`.
fn is_check_spf() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).any(|w| w[0] == "check" && w[1] == "spf")
}

/// The `faxmta` command line.
pub fn main() -> ExitCode {
    // Files are faxmta's user's alone, for every command (`serve` then
    // applies the configured `umask`).
    serve::set_umask(0o077);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `check spf` tells its result by its exit status, 2 among them
        // (pass): a bad command line is 64 there, not clap's 2.
        Err(e) if e.use_stderr() && is_check_spf() => {
            let _ = e.print();
            return ExitCode::from(cli::auth::EXIT_USAGE);
        }
        Err(e) => e.exit(),
    };
    let path = config_path(cli.config);
    if !matches!(cli.command, Command::Serve) {
        // A command whose output goes into `| head` ends quietly when the
        // pipe closes, as Unix tools do, instead of a panic in println!
        // (Rust ignores SIGPIPE; the server keeps it ignored: its sockets
        // report EPIPE as an error).
        // SAFETY: restoring a signal's default disposition, before any
        // thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // The render worker reads no configuration: everything comes with
    // its request. Limits first, before anything is read.
    #[cfg(feature = "fax")]
    if let Command::Fax {
        action: cli::fax::FaxAction::RenderWorker { memory, cpu },
    } = &cli.command
    {
        return cli::fax::render_worker(*memory, *cpu);
    }
    match cli.command {
        Command::CheckConfig { file } => {
            let file = file.unwrap_or(path);
            // The smart hosts' passwords too: a missing or empty file is
            // an error, one this user may not read a warning (the server
            // may run as a user who can), as `postfix check` warns.
            match config::Config::load(&file).and_then(|mut c| {
                let warnings = c.check_passwords(&file)?;
                Ok((c, warnings))
            }) {
                Ok((c, warnings)) => {
                    for w in warnings {
                        eprintln!("warning: {w}");
                    }
                    println!(
                        "{}: ok ({} listener(s), {} domain(s))",
                        file.display(),
                        c.listeners.len(),
                        c.domains.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        // Only the server reads the smart hosts' passwords.
        Command::Serve => match config::Config::load(&path).and_then(|mut c| {
            c.read_passwords(&path)?;
            Ok(c)
        }) {
            Ok(c) => serve::run(path, c),
            Err(e) => {
                eprintln!("faxmta: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Reload => reload::request(&path),
        Command::Route { address } => match config::Config::load(&path) {
            Ok(c) => cli::explain::run(&c, &address),
            Err(e) => {
                eprintln!("faxmta: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Etrn {
            server,
            domain,
            tls,
        } => match config::Config::load(&path) {
            Ok(c) => etrn::client::run(&c, &server, &domain, tls.into()),
            Err(e) => {
                eprintln!("faxmta: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Queue { action } => match config::Config::load(&path) {
            Ok(c) => cli::queue::queue(&c, action),
            Err(e) => {
                eprintln!("faxmta: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Check {
            what:
                CheckWhat::Spf {
                    ip,
                    helo,
                    from,
                    nameservers,
                    timeout,
                    json,
                },
        } => {
            let query = cli::auth::SpfQuery {
                ip,
                helo,
                from,
                nameservers,
                timeout,
                json,
            };
            if !query.nameservers.is_empty() {
                return cli::auth::check_spf(None, &query);
            }
            match config::Config::load(&path) {
                Ok(c) => cli::auth::check_spf(Some(&c), &query),
                Err(e) => {
                    eprintln!("faxmta: {e}");
                    ExitCode::from(cli::auth::EXIT_CONFIG)
                }
            }
        }
        Command::User { action } => {
            let action = match action {
                UserAction::Add { user, senders } => cli::user::Action::Add { user, senders },
                UserAction::Passwd { user } => cli::user::Action::Passwd { user },
                UserAction::Del { user } => cli::user::Action::Del { user },
                UserAction::List => cli::user::Action::List,
            };
            match config::Config::load(&path) {
                Ok(c) => cli::user::user(&c, action),
                Err(e) => {
                    eprintln!("faxmta: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token { action } => match config::Config::load(&path) {
            Ok(c) => cli::token::token(&c, action),
            Err(e) => {
                eprintln!("faxmta: {e}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "fax")]
        Command::Fax { action } => match config::Config::load(&path) {
            Ok(c) => cli::fax::run(&c, action),
            Err(e) => {
                eprintln!("faxmta: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Dkim {
            action:
                DkimAction::Keygen {
                    domain,
                    selector,
                    kind,
                    out,
                },
        } => {
            let kind = match kind {
                KeyType::Rsa => config::dkim::DkimKeyKind::Rsa,
                KeyType::Ed25519 => config::dkim::DkimKeyKind::Ed25519,
            };
            cli::auth::keygen(&domain, &selector, kind, &out)
        }
    }
}
