//! The SIP user agent under the engine (rsipstack): our transports (UDP,
//! TCP when a trunk uses it), the registration of each trunk that asks
//! for one (digest, refreshed before it expires, backed off when
//! refused), and the loop that sorts incoming requests — new INVITEs to
//! the inbound-call handler, in-dialog requests to their dialog, OPTIONS
//! answered, the rest refused.

use super::settings::{SipSettings, Transport, Trunk};
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogStateReceiver, DialogStateSender};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::dialog::registration::{RefreshOutcome, Registration};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{self as rsip, Method, StatusCode};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::{Transaction, TransactionReceiver};
use rsipstack::transport::udp::{UdpConnection, UdpInner};
use rsipstack::transport::{SipAddr, SipConnection, TcpListenerConnection, TransportLayer};
use rsipstack::EndpointBuilder;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why the user agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum UaError {
    #[error("[fax.sip] listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("[fax.sip] {0}")]
    Sip(String),
}

/// A new call: an INVITE outside any dialog, from an address allowed to
/// call us, with its server dialog and that dialog's state channel.
pub struct NewCall {
    pub dialog: InviteDialog,
    pub states: DialogStateReceiver,
    pub request: rsip::Request,
    /// The trunk it came over (by source address).
    pub trunk: String,
    /// Cancelled when the engine shuts down: hang up.
    pub stop: CancellationToken,
}

/// The running user agent.
pub struct Ua {
    pub endpoint: EndpointInnerRef,
    pub dialogs: Arc<DialogLayer>,
    /// Our SIP address as others reach it (Contact, Via).
    pub contact_addr: SocketAddr,
    /// Whether each registering trunk holds a registration now (by name).
    pub registered: Arc<Vec<(String, AtomicBool)>>,
    /// Cancelled when the engine shuts down: every call hangs up (BYE,
    /// CANCEL) while the endpoint still runs to send it.
    pub calls: CancellationToken,
    cancel: CancellationToken,
    /// The registrations' own token, cancelled first when the agent is
    /// dropped so that each unregisters (`expires=0`, with digest) while
    /// the endpoint still runs; the endpoint stops once they are done.
    registrations: CancellationToken,
    registering: Vec<tokio::task::JoinHandle<()>>,
}

/// How long a dropped agent keeps its endpoint for the unregistrations.
const UNREGISTER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for Ua {
    fn drop(&mut self) {
        self.registrations.cancel();
        let tasks = std::mem::take(&mut self.registering);
        let cancel = self.cancel.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !tasks.is_empty() => {
                runtime.spawn(async move {
                    let unregistered = async {
                        for task in tasks {
                            task.await.ok();
                        }
                    };
                    tokio::time::timeout(UNREGISTER_GRACE, unregistered)
                        .await
                        .ok();
                    cancel.cancel();
                });
            }
            _ => cancel.cancel(),
        }
    }
}

impl Ua {
    /// Binds our transports and starts the endpoint, the registrations
    /// and the incoming-request loop. New calls are sent on `calls`.
    pub async fn start(
        settings: &SipSettings,
        calls: mpsc::Sender<NewCall>,
    ) -> Result<Ua, UaError> {
        let cancel = CancellationToken::new();
        let layer = TransportLayer::new(cancel.child_token());
        let bind = |source| UaError::Bind {
            addr: settings.listen,
            source,
        };
        let std_socket = std::net::UdpSocket::bind(settings.listen).map_err(bind)?;
        std_socket.set_nonblocking(true).map_err(bind)?;
        let local = std_socket.local_addr().map_err(bind)?;
        let socket = tokio::net::UdpSocket::from_std(std_socket).map_err(bind)?;
        let inner = UdpInner {
            conn: Arc::new(socket),
            addr: SipAddr {
                r#type: Some(rsip::Transport::Udp),
                addr: local.into(),
            },
        };
        let udp =
            UdpConnection::attach(inner, settings.public_address, Some(cancel.child_token())).await;
        layer.add_transport(udp.into());
        if settings
            .trunks
            .iter()
            .any(|t| t.transport == Transport::Tcp)
        {
            let tcp = TcpListenerConnection::new(local, settings.public_address)
                .await
                .map_err(|e| UaError::Sip(format!("TCP listener {local}: {e}")))?;
            layer.add_transport(tcp.into());
        }
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(layer)
            .with_user_agent(concat!("faxmta/", env!("CARGO_PKG_VERSION")))
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| UaError::Sip(e.to_string()))?;
        let inner = endpoint.inner.clone();
        tokio::spawn(async move { endpoint.serve().await });
        let dialogs = Arc::new(DialogLayer::new(inner.clone()));
        let contact_addr = settings.public_address.unwrap_or(local);

        let registered = Arc::new(
            settings
                .trunks
                .iter()
                .filter(|t| t.register)
                .map(|t| (t.name.clone(), AtomicBool::new(false)))
                .collect::<Vec<_>>(),
        );
        let registrations = CancellationToken::new();
        let registering = settings
            .trunks
            .iter()
            .filter(|t| t.register)
            .map(|trunk| {
                tokio::spawn(register(
                    inner.clone(),
                    trunk.clone(),
                    contact_addr,
                    registered.clone(),
                    registrations.child_token(),
                ))
            })
            .collect();
        let allowed = allowed_sources(&settings.trunks).await;
        let stop_calls = CancellationToken::new();
        tokio::spawn(serve_incoming(
            incoming,
            dialogs.clone(),
            allowed,
            contact_addr,
            calls,
            stop_calls.clone(),
        ));
        Ok(Ua {
            endpoint: inner,
            dialogs,
            contact_addr,
            registered,
            calls: stop_calls,
            cancel,
            registrations,
            registering,
        })
    }

    /// A child of the agent's cancel token (for calls).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    /// A fresh state channel for one dialog.
    pub fn state_channel(&self) -> (DialogStateSender, DialogStateReceiver) {
        self.dialogs.new_dialog_state_channel()
    }
}

/// Our Contact for the account `user`. Over TCP it says so
/// (`;transport=tcp`): a Contact without it would have the far end come
/// back over UDP (and rsipstack keeps a Contact with a transport as it
/// is, instead of putting the outgoing connection's ephemeral port in).
pub fn contact(user: &str, addr: SocketAddr, tcp: bool) -> Result<rsip::Uri, String> {
    let transport = if tcp { ";transport=tcp" } else { "" };
    let text = if user.is_empty() {
        format!("sip:{addr}{transport}")
    } else {
        format!("sip:{user}@{addr}{transport}")
    };
    rsip::Uri::try_from(text.as_str()).map_err(|e| format!("contact {text:?}: {e}"))
}

/// Our Contact for calls and the registration over `trunk`: with
/// `;transport=tcp` on a TCP trunk, so that the registrar and the far
/// end reach us over TCP (over the connection we opened, when the
/// registrar saw it come from another address than ours).
pub fn trunk_contact(trunk: &Trunk, addr: SocketAddr) -> Result<rsip::Uri, String> {
    contact(&trunk.user, addr, trunk.transport == Transport::Tcp)
}

/// The digest credential of a trunk, if it has a password.
pub fn credential(trunk: &Trunk) -> Option<Credential> {
    trunk.password.as_ref().map(|password| Credential {
        username: trunk.user.clone(),
        password: password.clone(),
        realm: None,
        auth_username: trunk.auth_user.clone(),
    })
}

/// The proxy's socket address (a host name is looked up once).
pub async fn resolve(proxy: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = proxy.parse() {
        return Ok(addr);
    }
    tokio::net::lookup_host(proxy)
        .await
        .map_err(|e| format!("proxy {proxy}: {e}"))?
        .next()
        .ok_or_else(|| format!("proxy {proxy}: no address"))
}

/// Where requests over `trunk` go.
pub async fn destination(trunk: &Trunk) -> Result<SipAddr, String> {
    let addr = resolve(&trunk.proxy).await?;
    Ok(SipAddr {
        r#type: Some(match trunk.transport {
            Transport::Udp => rsip::Transport::Udp,
            Transport::Tcp => rsip::Transport::Tcp,
        }),
        addr: addr.into(),
    })
}

/// Keeps `trunk`'s registration: REGISTER with digest now, again at 75 %
/// of the lifetime granted, backed off (1 s doubling to 60 s) while
/// refused or unreachable; `expires=0` when stopped.
async fn register(
    endpoint: EndpointInnerRef,
    trunk: Trunk,
    contact_addr: SocketAddr,
    registered: Arc<Vec<(String, AtomicBool)>>,
    cancel: CancellationToken,
) {
    let flag = |ok: bool| {
        if let Some((_, f)) = registered.iter().find(|(n, _)| *n == trunk.name) {
            f.store(ok, Ordering::SeqCst);
        }
    };
    let proxy = match resolve(&trunk.proxy).await {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(trunk = %trunk.name, "cannot register: {e}");
            return;
        }
    };
    let transport = match trunk.transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
    };
    let server = match rsip::Uri::try_from(format!("sip:{}{transport}", trunk.domain).as_str()) {
        Ok(uri) => uri,
        Err(e) => {
            tracing::error!(trunk = %trunk.name, "cannot register: domain {:?}: {e}", trunk.domain);
            return;
        }
    };
    let mut registration = Registration::new(endpoint, credential(&trunk));
    registration.outbound_proxy = Some(proxy);
    if let Ok(uri) = trunk_contact(&trunk, contact_addr) {
        registration.contact = Some(rsip::typed::Contact {
            display_name: None,
            uri,
            params: vec![],
        });
    }
    let expires = u32::try_from(trunk.expires.as_secs()).unwrap_or(3600);
    let name = trunk.name.clone();
    registration
        .keep_alive(server.clone(), expires, cancel.clone(), |outcome| match outcome {
            RefreshOutcome::Registered(resp) => {
                flag(true);
                tracing::info!(trunk = %name, "registered at {} ({})", trunk.proxy, resp.status_code);
            }
            RefreshOutcome::Rejected(resp) => {
                flag(false);
                tracing::warn!(trunk = %name, "registration refused by {}: {}", trunk.proxy, resp.status_code);
            }
            RefreshOutcome::Failed(e) => {
                flag(false);
                tracing::warn!(trunk = %name, "registration at {} failed: {e}", trunk.proxy);
            }
        })
        .await;
    flag(false);
    if let Err(e) = registration.register(server, Some(0)).await {
        tracing::debug!(trunk = %trunk.name, "unregister: {e}");
    }
}

/// Who may call us: each trunk's proxy address and peers.
async fn allowed_sources(trunks: &[Trunk]) -> Vec<(IpAddr, String)> {
    let mut allowed = Vec::new();
    for trunk in trunks {
        match resolve(&trunk.proxy).await {
            Ok(addr) => allowed.push((addr.ip(), trunk.name.clone())),
            Err(e) => tracing::warn!(trunk = %trunk.name, "{e}: calls from it are refused"),
        }
        allowed.extend(trunk.peers.iter().map(|ip| (*ip, trunk.name.clone())));
    }
    allowed
}

/// The address a request came from: the top Via's `received` (set by
/// the transport when it differs from the Via host), else its host.
pub fn source_ip(request: &rsip::Request) -> Option<IpAddr> {
    let via = request.via_header().ok()?;
    let (_, host) = SipConnection::parse_target_from_via(via).ok()?;
    host.host.to_string().trim_matches(['[', ']']).parse().ok()
}

/// Sorts incoming transactions until the endpoint stops.
async fn serve_incoming(
    mut incoming: TransactionReceiver,
    dialogs: Arc<DialogLayer>,
    allowed: Vec<(IpAddr, String)>,
    contact_addr: SocketAddr,
    calls: mpsc::Sender<NewCall>,
    stop: CancellationToken,
) {
    while let Some(mut tx) = incoming.recv().await {
        let in_dialog = tx
            .original
            .to_header()
            .ok()
            .and_then(|to| to.tag().ok().flatten())
            .is_some();
        if in_dialog {
            match dialogs.match_dialog(&tx) {
                Some(mut dialog) => {
                    tokio::spawn(async move {
                        if let Err(e) = dialog.handle(&mut tx).await {
                            tracing::debug!("in-dialog {}: {e}", tx.original.method);
                        }
                    });
                }
                None if tx.original.method == Method::Ack => {}
                None => reply(&mut tx, StatusCode::CallTransactionDoesNotExist).await,
            }
            continue;
        }
        match tx.original.method {
            Method::Invite => {
                let source = source_ip(&tx.original);
                let trunk = source.and_then(|ip| {
                    allowed
                        .iter()
                        .find(|(a, _)| *a == ip)
                        .map(|(_, name)| name.clone())
                });
                let Some(trunk) = trunk else {
                    tracing::warn!(
                        "INVITE from {}: not a trunk's address; refused (403)",
                        source.map_or("an unknown address".into(), |ip| ip.to_string())
                    );
                    reply(&mut tx, StatusCode::Forbidden).await;
                    continue;
                };
                let user = tx
                    .original
                    .uri
                    .user()
                    .map(str::to_owned)
                    .unwrap_or_default();
                let tcp = tx
                    .connection
                    .as_ref()
                    .is_some_and(|c| c.transport() != rsip::Transport::Udp);
                let contact = contact(&user, contact_addr, tcp).ok();
                let (sender, states) = dialogs.new_dialog_state_channel();
                let dialog = match dialogs.get_or_create_server_invite(&tx, sender, None, contact) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!("INVITE: cannot make a dialog: {e}");
                        reply(&mut tx, StatusCode::ServerInternalError).await;
                        continue;
                    }
                };
                let call = NewCall {
                    dialog: dialog.clone(),
                    states,
                    request: tx.original.clone(),
                    trunk,
                    stop: stop.child_token(),
                };
                if calls.try_send(call).is_err() {
                    // More new calls at once than the engine takes in:
                    // overloaded (the caller may try elsewhere), not busy.
                    tracing::warn!("INVITE refused (503): too many new calls at once");
                    dialogs.remove_dialog(&dialog.id());
                    reply(&mut tx, StatusCode::ServiceUnavailable).await;
                    continue;
                }
                let mut dialog = dialog;
                tokio::spawn(async move {
                    if let Err(e) = dialog.handle(&mut tx).await {
                        tracing::debug!("INVITE transaction: {e}");
                    }
                });
            }
            Method::Options => reply(&mut tx, StatusCode::OK).await,
            Method::Ack => {}
            Method::Bye | Method::Cancel => {
                reply(&mut tx, StatusCode::CallTransactionDoesNotExist).await
            }
            _ => reply(&mut tx, StatusCode::MethodNotAllowed).await,
        }
    }
}

async fn reply(tx: &mut Transaction, status: StatusCode) {
    if let Err(e) = tx.reply(status).await {
        tracing::debug!("reply to {}: {e}", tx.original.method);
    }
}
