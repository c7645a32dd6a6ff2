//! The control socket: how `faxmta queue …` reaches a running server.
//!
//! sled lets one process open the queue, so while the server runs the CLI
//! sends its request over a Unix socket (one JSON line each way) and the
//! server executes it on its own store. When no server runs, the CLI opens
//! the queue itself and calls the same [`execute`].

#[cfg(feature = "fax")]
use faxmta_fax::engine::simulated::{IncomingCall, SimulatedError};
use faxmta_fax::live::{LiveBoard, LiveProgress};
use faxmta_queue::{now_unix, Envelope, FaxRecord, NewMessage, QueueCounts, Store};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::watch;

mod list;
pub use list::list;
use list::stream_list;

/// The simulated fax engine, which takes simulated incoming calls; a
/// mail-only build (without the feature `fax`) has none.
#[cfg(feature = "fax")]
pub type FaxSimulator = faxmta_fax::engine::simulated::SimulatedEngine;
/// The simulated fax engine: a mail-only build has none.
#[cfg(not(feature = "fax"))]
pub enum FaxSimulator {}

/// A queue operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    List,
    /// Every queued envelope, streamed: one [`ListLine`] per line, so
    /// that neither side holds the whole queue (`faxmta queue list`).
    ListStream,
    /// How many messages are due, waiting and held (`faxmta queue summary`).
    Summary,
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
    DeleteAll,
    Hold {
        id: String,
    },
    Release {
        id: String,
    },
    /// Every deferred message when `id` and `domain` are absent; with
    /// `domain`, every active recipient in that domain.
    Flush {
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domain: Option<String>,
    },
    /// Queue a new message (`faxmta fax send`): its envelope and octets.
    Submit {
        message: Box<NewMessage>,
        body: String,
    },
    /// The last `limit` finished faxes.
    FaxHistory {
        limit: usize,
    },
    /// What each fax in flight is doing now (dialling, page N of M), and
    /// how those that ended in the last minutes ended: the live board.
    /// Without a running server, nothing is in flight.
    FaxLive,
    /// A simulated fax machine calls the server's simulated engine and
    /// sends `document` (a TIFF-F file the server can read): tests and
    /// demos of received faxes. Only a running server can do this.
    FaxSimulateIncoming {
        document: std::path::PathBuf,
        tsi: String,
        did: Option<String>,
        ani: Option<String>,
    },
    /// Read the configuration again and put it in force (`faxmta
    /// reload`, like SIGHUP). Only a running server can do this.
    Reload,
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    List(Vec<Envelope>),
    Show {
        envelope: Box<Envelope>,
        message: String,
    },
    Count(usize),
    /// The queue's counts, from the server's in-memory index.
    Summary(QueueCounts),
    /// The queue id of a submitted message.
    Queued(String),
    FaxHistory(Vec<FaxRecord>),
    /// The live board's entries, by job id.
    FaxLive(Vec<LiveProgress>),
    /// A simulated incoming call ended: pages received, and the failure
    /// if it broke off.
    FaxReceived {
        pages: u32,
        failure: Option<String>,
    },
    /// The new configuration is in force; what it could not change
    /// without a restart, one warning each.
    Reloaded {
        warnings: Vec<String>,
    },
    Error(String),
}

/// How the control socket asks the running server to reload: the
/// warnings of a reload that took effect, or why it was refused.
pub type ReloadFn = Arc<
    dyn Fn() -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Vec<String>, String>> + Send>,
        > + Send
        + Sync,
>;

/// Carry out a request on the store.
pub fn execute(store: &Store, request: &Request) -> Response {
    let not_found = |id: &str| Response::Error(format!("{id}: no such message in the queue"));
    let result = match request {
        Request::List | Request::ListStream => store.list().map(Response::List),
        Request::Summary => Ok(Response::Summary(store.counts(now_unix()))),
        Request::Show { id } => match (store.get(id), store.body(id)) {
            (Ok(Some(envelope)), Ok(body)) => Ok(Response::Show {
                envelope: Box::new(envelope),
                message: String::from_utf8_lossy(&body.unwrap_or_default()).into_owned(),
            }),
            (Ok(None), _) => return not_found(id),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        Request::Delete { id } => match store.remove(id) {
            Ok(true) => {
                tracing::info!("{id}: removed by the administrator");
                Ok(Response::Count(1))
            }
            Ok(false) => return not_found(id),
            Err(e) => Err(e),
        },
        Request::DeleteAll => store.list().and_then(|all| {
            let mut n = 0;
            for env in all {
                if store.remove(&env.id)? {
                    tracing::info!("{}: removed by the administrator", env.id);
                    n += 1;
                }
            }
            Ok(Response::Count(n))
        }),
        Request::Hold { id } => match store.hold(id) {
            Ok(true) => {
                tracing::info!("{id}: placed on hold by the administrator");
                Ok(Response::Count(1))
            }
            Ok(false) => return not_found(id),
            Err(e) => Err(e),
        },
        Request::Release { id } => match store.release(id) {
            Ok(true) => {
                tracing::info!("{id}: released from hold by the administrator");
                Ok(Response::Count(1))
            }
            Ok(false) => return not_found(id),
            Err(e) => Err(e),
        },
        Request::Flush {
            domain: Some(domain),
            ..
        } if domain.trim().trim_end_matches('.').is_empty() => {
            return Response::Error("flush --domain needs a domain name".into())
        }
        Request::Flush {
            domain: Some(domain),
            ..
        } => store.flush_domain(domain).map(|n| {
            tracing::info!(
                "{n} message(s) with recipients in {domain} flushed by the administrator"
            );
            Response::Count(n)
        }),
        Request::Flush { id, .. } => match id {
            Some(one) if matches!(store.get(one), Ok(None)) => return not_found(one),
            _ => store.flush_now(id.as_deref()).map(Response::Count),
        },
        Request::Submit { message, body } => return submit(store, message, body),
        Request::FaxHistory { limit } => store.fax_history(*limit).map(Response::FaxHistory),
        Request::FaxLive => Ok(Response::FaxLive(Vec::new())),
        Request::FaxSimulateIncoming { .. } => {
            return Response::Error("a simulated incoming fax needs the running server".into())
        }
        Request::Reload => {
            return Response::Error("faxmta is not running: nothing to reload".into())
        }
    };
    // An administrator's change (a hold above all) must survive a crash
    // once it is confirmed: sync before answering.
    let result = match (request, result) {
        (
            Request::List
            | Request::ListStream
            | Request::Summary
            | Request::Show { .. }
            | Request::FaxHistory { .. }
            | Request::FaxLive,
            r,
        ) => r,
        (_, Ok(r)) => store.sync_blocking().map(|_| r),
        (_, Err(e)) => Err(e),
    };
    result.unwrap_or_else(|e| Response::Error(e.to_string()))
}

/// Queue a message made by the command line; synced before the answer.
/// Runs on a blocking thread (or outside any runtime, when the command
/// line opened the queue itself).
fn submit(store: &Store, message: &NewMessage, body: &str) -> Response {
    if let Err(e) = crate::server::path::check_message(message) {
        return Response::Error(format!("cannot queue the message: {e}"));
    }
    let enqueue = async {
        let id = store.new_id()?;
        store
            .enqueue(id.clone(), message.clone(), body.as_bytes())
            .await?;
        Ok::<_, faxmta_queue::QueueError>(id)
    };
    let result = match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(enqueue),
        Err(_) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(enqueue),
            Err(e) => return Response::Error(format!("cannot start a runtime: {e}")),
        },
    };
    match result {
        Ok(id) => {
            tracing::info!(
                "{id}: from=<{}>, queued from the command line",
                message.sender
            );
            Response::Queued(id)
        }
        Err(e) => Response::Error(format!("cannot queue the message: {e}")),
    }
}

/// Who may use the control socket: root, the user the server runs as,
/// and the uids and gids of `[control] allow_uids` / `allow_gids`.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
}

impl Access {
    /// `Err`: why a client with these credentials is refused.
    pub fn check(&self, uid: u32, gid: u32) -> Result<(), String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if uid == 0 || uid == me || self.uids.contains(&uid) || self.gids.contains(&gid) {
            return Ok(());
        }
        Err(format!(
            "permission denied: uid {uid} may not use the control socket (only root, uid {me} \
             that faxmta runs as, and [control] allow_uids / allow_gids)"
        ))
    }
}

/// Make the control socket at `path` (a socket left by a previous run is
/// removed: a running server holds the queue lock, so we would not have
/// got this far), mode 0600. Called before the server says it is ready,
/// so that every command works from the first 220 on.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Between the bind and the chmod the mode is the umask's: the
    // credentials check of `serve` is what keeps others out then.
    let listener =
        UnixListener::bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    }
    Ok(listener)
}

/// Serve the socket until shutdown. The socket is made only readable and
/// writable by the owner (whoever can use it can delete mail), and each
/// client's credentials (SO_PEERCRED) are checked with `access`, so that
/// a socket reachable by others (a looser mode, a copy of the path) still
/// serves nobody else.
pub async fn serve(
    listener: UnixListener,
    access: Access,
    store: Store,
    fax: Option<Arc<FaxSimulator>>,
    live: LiveBoard,
    reload: Option<ReloadFn>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    // Removed at shutdown.
    let path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let allowed = match stream.peer_cred() {
                    Ok(cred) => access.check(cred.uid(), cred.gid()),
                    Err(e) => Err(format!("permission denied: the client's credentials: {e}")),
                };
                if let Err(why) = allowed {
                    tracing::warn!("control socket: {why}");
                    tokio::spawn(refuse(stream, why));
                    continue;
                }
                let store = store.clone();
                let fax = fax.clone();
                let reload = reload.clone();
                let live = live.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut line = String::new();
                    let mut reader = tokio::io::BufReader::new(read);
                    if reader.read_line(&mut line).await.is_err() {
                        return;
                    }
                    let response = match serde_json::from_str::<Request>(&line) {
                        Ok(Request::ListStream) => {
                            let stream = match reader.into_inner().reunite(write) {
                                Ok(stream) => stream,
                                Err(_) => return,
                            };
                            let store = store.clone();
                            let _ = tokio::task::spawn_blocking(move || {
                                stream_list(&store, stream)
                            })
                            .await;
                            return;
                        }
                        Ok(Request::FaxSimulateIncoming { document, tsi, did, ani }) => {
                            simulate_incoming(fax.as_deref(), document, tsi, did, ani).await
                        }
                        Ok(Request::FaxLive) => Response::FaxLive(live.list()),
                        Ok(Request::Reload) => match &reload {
                            Some(reload) => match reload().await {
                                Ok(warnings) => Response::Reloaded { warnings },
                                Err(e) => Response::Error(e),
                            },
                            None => Response::Error("this server cannot reload".into()),
                        },
                        Ok(request) => {
                            let store = store.clone();
                            tokio::task::spawn_blocking(move || execute(&store, &request))
                                .await
                                .unwrap_or_else(|e| Response::Error(e.to_string()))
                        }
                        Err(e) => Response::Error(format!("bad request: {e}")),
                    };
                    let mut out = serde_json::to_vec(&response).unwrap_or_default();
                    out.push(b'\n');
                    let _ = write.write_all(&out).await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Answer a client that may not use the socket: its request line is
/// read first (briefly, bounded), so that the answer reaches it.
async fn refuse(stream: tokio::net::UnixStream, why: String) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let (read, mut write) = stream.into_split();
        let mut reader = tokio::io::AsyncReadExt::take(read, 64 * 1024);
        let mut line = Vec::new();
        let _ = tokio::io::BufReader::new(&mut reader)
            .read_until(b'\n', &mut line)
            .await;
        let mut out = serde_json::to_vec(&Response::Error(why)).unwrap_or_default();
        out.push(b'\n');
        let _ = write.write_all(&out).await;
    })
    .await;
}

/// A simulated machine calls us ([`Request::FaxSimulateIncoming`]).
async fn simulate_incoming(
    fax: Option<&FaxSimulator>,
    document: std::path::PathBuf,
    tsi: String,
    did: Option<String>,
    ani: Option<String>,
) -> Response {
    let Some(engine) = fax else {
        return Response::Error("the fax engine is not the simulated one".into());
    };
    #[cfg(not(feature = "fax"))]
    {
        let _ = (document, tsi, did, ani);
        match *engine {}
    }
    #[cfg(feature = "fax")]
    let call = IncomingCall {
        document,
        tsi,
        caller: ani,
        called: did,
    };
    #[cfg(feature = "fax")]
    match engine.call_in(call).await {
        Ok(fax) => Response::FaxReceived {
            pages: fax.pages,
            failure: None,
        },
        Err(SimulatedError::CallFailed {
            reason,
            pages_received,
        }) => Response::FaxReceived {
            pages: pages_received,
            failure: Some(reason),
        },
        Err(e) => Response::Error(format!("simulated incoming fax: {e}")),
    }
}

/// Send a request to a running server. `Ok(None)` when no server listens
/// on the socket (the caller may then open the queue itself).
pub fn call(path: &Path, request: &Request) -> Result<Option<Response>, String> {
    let Some(stream) = send(path, request)? else {
        return Ok(None);
    };
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| format!("control socket {}: bad answer: {e}", path.display()))
}

/// Connect to a running server and send it `request` (one JSON line);
/// the stream its answer comes on. `Ok(None)` when no server listens.
fn send(path: &Path, request: &Request) -> Result<Option<std::os::unix::net::UnixStream>, String> {
    let stream = match std::os::unix::net::UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(format!("control socket {}: {e}", path.display())),
    };
    let mut out = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    out.push(b'\n');
    (&stream)
        .write_all(&out)
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    Ok(Some(stream))
}
