//! The ETRN client: `faxmta etrn --server HOST:PORT DOMAIN`, and the
//! daemon's `[[etrn_client]]`s, which do the same every `every` — for a
//! faxmta that is a customer's in-house server behind an ISP that holds
//! its mail. The mail itself then arrives on our own listener.

use crate::config::{parse_host, valid_node, Config, EtrnClientConfig, HostSpec, OutboundTls};
use faxmta_smtp::{etrn, Dns, EtrnAnswer};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

/// Ask `server` to release `node`: each of its addresses in turn until
/// one answers. `Err`: none did, and why.
pub async fn ask(
    config: &Config,
    server: &HostSpec,
    node: &str,
    tls: OutboundTls,
) -> Result<EtrnAnswer, String> {
    let settings = crate::transports::client_settings(config, false)?;
    let ips = match server.name.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => Dns::new(&config.dns.nameservers, config.dns.timeout.std())?
            .addresses(&server.name)
            .await
            .map_err(|e| format!("{}: {e}", server.name))?,
    };
    let mut why = format!("{}: no address", server.name);
    for ip in ips {
        let addr = SocketAddr::new(ip, server.port);
        match etrn(addr, &server.name, &settings, tls.policy(), node).await {
            Ok(answer) => return Ok(answer),
            Err(reply) => why = reply.text,
        }
    }
    Err(why)
}

/// `faxmta etrn`: print the server's reply; success on 250–253.
pub fn run(config: &Config, server: &str, node: &str, tls: OutboundTls) -> ExitCode {
    let server = match parse_host(server) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("faxmta: --server: {e}");
            return ExitCode::from(2);
        }
    };
    if !valid_node(node) {
        eprintln!("faxmta: {node:?}: expected a domain name, @domain or #queue");
        return ExitCode::from(2);
    }
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
    match runtime.block_on(ask(config, &server, node, tls)) {
        Ok(answer) => {
            if !answer.announced {
                eprintln!(
                    "faxmta: note: {} did not announce ETRN in its EHLO reply",
                    server.name
                );
            }
            println!("{}", answer.raw);
            if answer.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!(
                "faxmta: ETRN {node} to {}:{}: {e}",
                server.name, server.port
            );
            ExitCode::FAILURE
        }
    }
}

/// One `[[etrn_client]]` run, logged.
async fn once(config: &Config, client: &EtrnClientConfig) {
    let server = format!("{}:{}", client.server.name, client.server.port);
    match ask(config, &client.server, &client.domain, client.tls).await {
        Ok(answer) if answer.ok() => tracing::info!(
            "etrn client: {server}: ETRN {}: {}",
            client.domain,
            answer.reply
        ),
        Ok(answer) => tracing::warn!(
            "etrn client: {server}: ETRN {} refused: {}",
            client.domain,
            answer.reply
        ),
        Err(e) => tracing::warn!("etrn client: {server}: ETRN {} failed: {e}", client.domain),
    }
}

/// Run every `[[etrn_client]]` until shutdown: each at once, then every
/// `every`.
pub async fn scheduled(config: Arc<Config>, shutdown: watch::Receiver<bool>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (n, client) in config.etrn_clients.iter().enumerate() {
        let config = config.clone();
        let mut shutdown = shutdown.clone();
        let every = client.every.std();
        tracing::info!(
            "etrn client: ETRN {} to {}:{} every {}",
            client.domain,
            client.server.name,
            client.server.port,
            faxmta_queue::format_duration(client.every.0)
        );
        tasks.spawn(async move {
            let client = &config.etrn_clients[n];
            loop {
                if *shutdown.borrow() {
                    return;
                }
                tokio::select! {
                    _ = once(&config, client) => {}
                    _ = shutdown.changed() => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
