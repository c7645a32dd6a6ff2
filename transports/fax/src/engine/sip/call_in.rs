//! An incoming fax call: the DID (Request-URI for a trunk peer by IP; To
//! when we are registered, because the registrar rewrote the Request-URI
//! to our Contact) and the caller (P-Asserted-Identity, else From);
//! answered with the far end's T.38 offer or audio (our audio offer in
//! the 200 when the INVITE has none, the answer then in the ACK),
//! switched to T.38 by our re-INVITE (T.38 Annex D) when the settings
//! ask, the pages received into `received/NAME.tif`; the fax handed out
//! with its record written first ([`crate::engine::handover`]).

use super::call_out::{describe, reinvited};
use super::media::{bind_port, Stream};
use super::negotiate::{self, OfferKind};
use super::session::{FaxJob, MediaCall, Work};
use super::settings::{SipSettings, T38Mode};
use super::ua::NewCall;
use crate::engine::handover;
use crate::engine::{ReceivedFax, Reception};
use rsipstack::dialog::dialog::DialogState;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{self as rsip, Header, StatusCode, StatusCodeKind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The number called, from the INVITE: To's user when `registered`
/// (the Request-URI is our Contact then), else the Request-URI's user.
pub fn called(request: &rsip::Request, registered: bool) -> Option<String> {
    let to = || {
        request
            .to_header()
            .ok()
            .and_then(|h| h.uri().ok())
            .and_then(|u| u.user().map(str::to_owned))
    };
    let ruri = request.uri.user().map(str::to_owned);
    let number = if registered {
        to().or(ruri)
    } else {
        ruri.or_else(to)
    };
    number.map(|n| phone_part(&n)).filter(|n| !n.is_empty())
}

/// The caller: P-Asserted-Identity's user, else From's.
pub fn caller(request: &rsip::Request) -> Option<String> {
    let pai = request.headers.iter().find_map(|h| match h {
        Header::PAssertedIdentity(value) => {
            let v = value.value().to_string();
            let inner = v
                .split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map_or(v.as_str(), |(uri, _)| uri)
                .trim()
                .to_owned();
            rsip::Uri::try_from(inner.as_str())
                .ok()
                .and_then(|u| u.user().map(str::to_owned))
        }
        _ => None,
    });
    let from = || {
        request
            .from_header()
            .ok()
            .and_then(|h| h.uri().ok())
            .and_then(|u| u.user().map(str::to_owned))
    };
    pai.or_else(from)
        .map(|n| phone_part(&n))
        .filter(|n| !n.is_empty())
}

/// A user part as a number: the part before `;` (user parameters such as
/// `;phone-context=`), trimmed.
fn phone_part(user: &str) -> String {
    user.split(';').next().unwrap_or("").trim().to_owned()
}

/// A fresh name for a received fax.
fn fresh_name() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "sip-{}-{:06}-{}-{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Answers `call` and receives its fax; the fax (or a failed reception)
/// goes to `out` once its record is written. The pages received.
pub async fn take(
    settings: &SipSettings,
    registered: bool,
    call: NewCall,
    out: mpsc::Sender<ReceivedFax>,
) -> u32 {
    let NewCall {
        dialog,
        mut states,
        request,
        trunk,
        stop,
    } = call;
    let did = called(&request, registered);
    let ani = caller(&request);
    tracing::info!(trunk = %trunk, called = ?did, caller = ?ani, "incoming call");
    let socket = match bind_port(settings.media_ip, &settings.media_ports) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("incoming call refused (503): no media port: {e}");
            dialog
                .reject(Some(StatusCode::ServiceUnavailable), None)
                .ok();
            return 0;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&settings.received) {
        tracing::error!("incoming call refused (503): {:?}: {e}", settings.received);
        dialog
            .reject(Some(StatusCode::ServiceUnavailable), None)
            .ok();
        return 0;
    }
    let document: PathBuf = settings.received.join(format!("{}.tif", fresh_name()));
    let job = FaxJob {
        calling: false,
        ident: settings.csid.clone(),
        work: Work::Receive {
            file: document.clone(),
        },
        dtmf: None,
    };
    let mut media = MediaCall::new(socket, job);
    let port = media.port();
    // A delayed offer (RFC 3261 §13.2.1, sent by some PBXs): no SDP in
    // the INVITE; our offer (audio) goes in the 200, the answer in the ACK.
    let delayed = request.body.iter().all(u8::is_ascii_whitespace);
    let (sdp, answered) = if delayed {
        let offer = negotiate::offer(settings, OfferKind::Audio, port, &mut media.version);
        (offer, None)
    } else {
        match negotiate::answer(settings, &request.body, port, &mut media.version) {
            Ok((sdp, stream)) => (sdp, Some(stream)),
            Err(e) => {
                tracing::info!("incoming call refused (488): {e}");
                dialog
                    .reject(Some(StatusCode::NotAcceptableHere), None)
                    .ok();
                return 0;
            }
        }
    };
    let headers = vec![Header::ContentType("application/sdp".into())];
    if let Err(e) = dialog.accept(Some(headers), Some(sdp.into_bytes())) {
        tracing::warn!("incoming call: cannot answer: {e}");
        return 0;
    }
    let started = Instant::now();
    // The ACK confirms the call; a CANCEL or BYE before it ends it.
    loop {
        let state = tokio::select! {
            state = states.recv() => state,
            _ = stop.cancelled() => {
                dialog.bye().await.ok();
                return 0;
            }
        };
        match state {
            Some(DialogState::Confirmed(..)) => break,
            Some(DialogState::Terminated(_, reason)) => {
                tracing::info!("incoming call ended before it was confirmed: {reason:?}");
                return 0;
            }
            None => return 0,
            Some(_) => {}
        }
    }
    let stream = match answered {
        Some(stream) => stream,
        None => {
            let ack = dialog.last_remote_ack().map(|a| a.body).unwrap_or_default();
            match negotiate::read_answer(settings, &ack, OfferKind::Audio) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(
                        "incoming call: no usable SDP answer in the ACK ({e}); hanging up"
                    );
                    dialog.bye().await.ok();
                    return 0;
                }
            }
        }
    };
    tracing::info!("incoming call answered: {}", describe(&stream));
    let audio = matches!(stream, Stream::Audio(_));
    if let Err(e) = media.start(stream).await {
        tracing::warn!("{e}");
        dialog.bye().await.ok();
        return 0;
    }
    // Annex D: the answering side asks for T.38 once the call is up.
    let mut asking = if audio && settings.t38 != T38Mode::Off {
        let offer = negotiate::offer(settings, OfferKind::T38, port, &mut media.version);
        let dialog = dialog.clone();
        Some(tokio::spawn(async move {
            let headers = vec![Header::ContentType("application/sdp".into())];
            dialog
                .reinvite_with_glare_retry(Some(headers), Some(offer.into_bytes()), 3)
                .await
        }))
    } else {
        None
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ended = "the call ended before the fax did";
    let (end, hung_up) = loop {
        tokio::select! {
            end = media.finished() => break (end.ok(), false),
            _ = stop.cancelled() => {
                tracing::info!(called = ?did, "shutting down: hanging up after {} page(s)", media.pages());
                ended = "faxmta stopped during the call and hung up";
                break (media.stop().await, false);
            }
            _ = tick.tick() => {
                if let Some(pages) = media.progress() {
                    tracing::info!(called = ?did, "fax progress: page {pages} received");
                }
            }
            answer = async {
                match asking.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            }, if asking.is_some() => {
                asking = None;
                match answer {
                    Ok(Ok(Some(resp))) if resp.status_code.kind() == StatusCodeKind::Successful => {
                        match negotiate::read_answer(settings, &resp.body, OfferKind::T38) {
                            Ok(t38) => {
                                tracing::info!("re-INVITE accepted: media now {}", describe(&t38));
                                if let Err(e) = media.start(t38).await {
                                    tracing::warn!("{e}");
                                }
                            }
                            Err(e) => tracing::info!("re-INVITE answer unusable, staying on audio: {e}"),
                        }
                    }
                    Ok(Ok(Some(resp))) => tracing::info!("T.38 refused ({}): staying on audio", resp.status_code),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::info!("T.38 re-INVITE failed, staying on audio: {e}"),
                    Err(e) => tracing::warn!("re-INVITE task: {e}"),
                }
            }
            state = states.recv() => match state {
                Some(DialogState::Updated(_, req, handle)) => {
                    if asking.is_some() {
                        // Glare (RFC 3261 §14.2): ours is pending.
                        handle.reply(StatusCode::RequestPending).await.ok();
                    } else {
                        reinvited(settings, &mut media, &req.body, handle).await;
                    }
                }
                Some(DialogState::Terminated(..)) | None => {
                    ended = "the far end hung up (SIP BYE) during the fax";
                    break (media.hung_up().await, true);
                }
                Some(_) => {}
            },
        }
    };
    if let Some(task) = asking {
        task.abort();
    }
    if !hung_up {
        dialog.bye().await.ok();
    }
    let fax = received(document, end.as_ref(), ended, started.elapsed(), did, ani);
    let pages = fax.pages;
    deliver(fax, &out).await;
    pages
}

/// The received fax as the engine hands it out.
/// `ended`: why, when T.30 did not end by itself.
fn received(
    document: PathBuf,
    end: Option<&super::media::MediaEnd>,
    ended: &str,
    duration: Duration,
    called: Option<String>,
    caller: Option<String>,
) -> ReceivedFax {
    let pages = end.map_or(0, |e| e.stats.pages_rx);
    let status = match end.and_then(|e| e.completion) {
        Some(crate::engine::spandsp::modem::T30_ERR_OK) if pages > 0 => Reception::Complete,
        code => {
            let reason = code.map_or_else(
                || ended.to_string(),
                crate::engine::spandsp::modem::completion_text,
            );
            if pages > 0 {
                Reception::Partial { reason }
            } else {
                Reception::Failed { reason }
            }
        }
    };
    ReceivedFax {
        document,
        pages,
        remote_tsi: end.map(|e| e.remote_ident.clone()).unwrap_or_default(),
        caller,
        called,
        duration,
        status,
        received_at: SystemTime::now(),
        bad_rows: end.map(|e| e.stats.bad_rows),
        source: None,
    }
}

/// Writes the fax's record (synced) and hands it out; a fax whose record
/// cannot be written is logged and kept on disk.
async fn deliver(mut fax: ReceivedFax, out: &mpsc::Sender<ReceivedFax>) {
    let record = {
        let fax = fax.clone();
        tokio::task::spawn_blocking(move || handover::write(&fax)).await
    };
    match record {
        Ok(Ok(source)) => fax.source = Some(source),
        Ok(Err(e)) => tracing::error!("received fax {:?}: its record: {e}", fax.document),
        Err(e) => tracing::error!("received fax {:?}: {e}", fax.document),
    }
    if out.send(fax).await.is_err() {
        tracing::warn!("received fax: the engine has stopped; it is handed out at the next start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(ruri: &str, to: &str, from: &str, extra: &str) -> rsip::Request {
        let text = format!(
            "INVITE {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-1\r\n\
             From: <{from}>;tag=a\r\n\
             To: <{to}>\r\n\
             Call-ID: c1@127.0.0.3\r\n\
             CSeq: 1 INVITE\r\n\
             {extra}\
             Content-Length: 0\r\n\r\n"
        );
        match rsip::SipMessage::try_from(text.as_str()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn the_did_comes_from_the_request_uri_for_a_peer_and_from_to_when_registered() {
        // Registered: the registrar's lookup put our Contact in the
        // Request-URI; the number dialled is in To.
        let r = invite(
            "sip:fax@127.0.0.6:5070",
            "sip:+4930123456@trunk.test",
            "sip:4930999@trunk.test",
            "",
        );
        assert_eq!(called(&r, true).as_deref(), Some("+4930123456"));
        assert_eq!(called(&r, false).as_deref(), Some("fax"));
        // A trunk peer by IP: the Request-URI names the DID.
        let r = invite(
            "sip:4930555@127.0.0.6",
            "sip:other@trunk.test",
            "sip:x@trunk.test",
            "",
        );
        assert_eq!(called(&r, false).as_deref(), Some("4930555"));
    }

    #[test]
    fn the_caller_is_the_asserted_identity_else_from() {
        let r = invite(
            "sip:1@h",
            "sip:1@h",
            "sip:anonymous@trunk.test",
            "P-Asserted-Identity: \"Sales\" <sip:+4940111222@trunk.test;user=phone>\r\n",
        );
        assert_eq!(caller(&r).as_deref(), Some("+4940111222"));
        let r = invite("sip:1@h", "sip:1@h", "sip:4930999@trunk.test", "");
        assert_eq!(caller(&r).as_deref(), Some("4930999"));
    }
}
