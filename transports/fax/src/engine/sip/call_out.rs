//! An outgoing fax call over one trunk: INVITE to the dial template's
//! Request-URI (digest when challenged), CANCEL when it rings too long,
//! the answer's stream, the fax over it — switched to T.38 when the far
//! end re-INVITEs — and BYE at the end; the call's end as a
//! [`SendResult`] (and whether the next trunk is worth trying).

use super::media::{bind_port, Stream};
use super::negotiate::{self, OfferKind};
use super::outcome::{self, Refusal};
use super::session::{FaxJob, MediaCall, Work};
use super::settings::{SipSettings, T38Mode, Trunk};
use super::ua::{self, Ua};
use super::SendRequest;
use super::SendResult;
use crate::live::LiveState;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TransactionHandle};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{self as rsip, Header, StatusCode, StatusCodeKind};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a call over one trunk ended.
pub struct Placed {
    pub result: SendResult,
    /// Another trunk may do better (the trunk refused or failed, not the
    /// number).
    pub failover: bool,
    /// For the log line: the SIP status and reason, or the media's.
    pub detail: String,
}

/// Places the call of `request` over `trunk`.
pub async fn place(
    ua: &Ua,
    settings: &SipSettings,
    trunk: &Trunk,
    request: &SendRequest,
) -> Placed {
    // An extension is dialled as DTMF over audio: such a call starts as
    // audio whatever the T.38 mode.
    let first = if settings.t38 == T38Mode::Offer && request.extension.is_none() {
        OfferKind::T38
    } else {
        OfferKind::Audio
    };
    let placed = attempt(ua, settings, trunk, request, first).await;
    // A T.38 offer refused as not acceptable: the same trunk with audio.
    match &placed {
        Err(refusal) if first == OfferKind::T38 && matches!(refusal.status, 488 | 415 | 606) => {
            tracing::info!(job = %request.job_id, trunk = %trunk.name, "T.38 offer refused ({}); calling again with audio", refusal.describe());
            finish(attempt(ua, settings, trunk, request, OfferKind::Audio).await)
        }
        _ => finish(placed),
    }
}

fn finish(placed: Result<Placed, Refusal>) -> Placed {
    placed.unwrap_or_else(|refusal| {
        let (result, failover) = outcome::refused(&refusal);
        Placed {
            result,
            failover,
            detail: refusal.describe(),
        }
    })
}

/// One INVITE. `Err`: refused with a final response.
async fn attempt(
    ua: &Ua,
    settings: &SipSettings,
    trunk: &Trunk,
    request: &SendRequest,
    kind: OfferKind,
) -> Result<Placed, Refusal> {
    let trouble = |detail: String| Placed {
        result: SendResult::Error {
            reason: detail.clone(),
            retry: true,
        },
        failover: true,
        detail,
    };
    let socket = match bind_port(settings.media_ip, &settings.media_ports) {
        Ok(s) => s,
        Err(e) => return Ok(trouble(format!("no media port free: {e}"))),
    };
    let job = FaxJob {
        calling: true,
        ident: request.tsi.clone(),
        work: Work::Send {
            file: request.document.clone(),
            first: request.first_page,
            header: request.header.clone(),
        },
        dtmf: request.extension.clone(),
    };
    let mut media = MediaCall::new(socket, job);
    let offer = negotiate::offer(settings, kind, media.port(), &mut media.version);
    let number = request.dial.trim();
    let uri =
        |text: String| rsip::Uri::try_from(text.as_str()).map_err(|e| format!("{text:?}: {e}"));
    let parts = (|| {
        let callee = uri(trunk.request_uri(request.number.trim(), number))?;
        let caller = uri(format!(
            "sip:{}@{}",
            trunk.caller(&request.tsi),
            trunk.domain
        ))?;
        let contact = ua::trunk_contact(trunk, ua.contact_addr)?;
        Ok::<_, String>((callee, caller, contact))
    })();
    let (callee, caller, contact) = match parts {
        Ok(p) => p,
        Err(e) => {
            return Ok(Placed {
                result: SendResult::Error {
                    reason: format!("cannot dial {number} over {}: {e}", trunk.name),
                    retry: false,
                },
                failover: false,
                detail: e,
            })
        }
    };
    let destination = match ua::destination(trunk).await {
        Ok(d) => d,
        Err(e) => return Ok(trouble(e)),
    };
    let option = InviteOption {
        caller,
        callee,
        destination: Some(destination),
        content_type: Some("application/sdp".into()),
        offer: Some(offer.into_bytes()),
        contact,
        credential: ua::credential(trunk),
        ..Default::default()
    };
    let (sender, mut states) = ua.state_channel();
    request.report(LiveState::Dialling);
    let started = Instant::now();
    let (dialog, handle) = match ua.dialogs.do_invite_async(option, sender) {
        Ok(d) => d,
        Err(e) => return Ok(trouble(format!("INVITE: {e}"))),
    };
    let mut handle = handle;
    let ring_timeout = tokio::time::sleep(settings.ring_timeout);
    tokio::pin!(ring_timeout);
    // Provisional responses while it rings: 180/183 shown as ringing. The
    // dialog's states are read here only until one that is not
    // provisional (it is kept for later).
    let mut heard = false;
    let mut early = true;
    let mut kept = None;
    let response = loop {
        tokio::select! {
            r = &mut handle => break r,
            state = states.recv(), if early => match state {
                Some(DialogState::Early(_, resp)) => {
                    heard = true;
                    let phrase = resp
                        .wire_reason
                        .clone()
                        .unwrap_or_else(|| resp.status_code.text().to_string());
                    let code = resp.status_code.code();
                    request.report_with(LiveState::Ringing, &format!("SIP {code} {phrase}"));
                }
                Some(DialogState::Trying(_)) => heard = true,
                Some(DialogState::Calling(_)) => {}
                other => {
                    early = false;
                    kept = other;
                }
            },
            _ = ua.calls.cancelled() => {
                tracing::info!(job = %request.job_id, trunk = %trunk.name, "shutting down: CANCEL");
                if let Err(e) = dialog.cancel().await {
                    tracing::debug!("CANCEL: {e}");
                }
                // Whatever the answer, the call is not made now.
                let _ = handle.await;
                ua.dialogs.remove_dialog(&dialog.id());
                return Ok(Placed {
                    result: SendResult::Error {
                        reason: "faxmta stopped before the call was answered".into(),
                        retry: true,
                    },
                    failover: false,
                    detail: "stopped while ringing".into(),
                });
            }
            _ = &mut ring_timeout => {
                tracing::info!(job = %request.job_id, trunk = %trunk.name, "no answer in {}s: CANCEL", settings.ring_timeout.as_secs());
                if let Err(e) = dialog.cancel().await {
                    tracing::debug!("CANCEL: {e}");
                }
                break handle.await
            }
        }
    };
    if let Some(state) = &kept {
        tracing::debug!(job = %request.job_id, "dialog state before the final response: {state:?}");
    }
    let response = match response {
        Ok(Ok((_, Some(resp)))) => resp,
        Ok(Ok((_, None))) => {
            return Err(Refusal {
                status: 408,
                phrase: "no final response".into(),
                cause: None,
            })
        }
        Ok(Err(e)) => return Ok(trouble(format!("INVITE to {}: {e}", trunk.proxy))),
        Err(e) => return Ok(trouble(format!("INVITE task: {e}"))),
    };
    if response.status_code.kind() != StatusCodeKind::Successful {
        ua.dialogs.remove_dialog(&dialog.id());
        // Our transaction's own 408 (Timer B) when the trunk sent nothing
        // at all, not even 100 Trying: the trunk is down or unreachable,
        // which another trunk may not be (a 408 after ringing is the
        // number's no answer).
        if response.status_code == StatusCode::RequestTimeout
            && !heard
            && kept.is_none()
            && !heard_from(&mut states)
        {
            return Ok(trouble(format!(
                "no response from {} ({}s without even 100 Trying)",
                trunk.proxy,
                started.elapsed().as_secs()
            )));
        }
        return Err(refusal_of(&response));
    }
    let stream = match negotiate::read_answer(settings, &response.body, kind) {
        Ok(s) => s,
        Err(e) => {
            hang_up(ua, &dialog, "unusable SDP answer").await;
            return Ok(trouble(format!("the answer's SDP: {e}")));
        }
    };
    request.report(LiveState::Answered);
    let call = Answered {
        dialog: &dialog,
        states: &mut states,
        started,
        stop: &ua.calls,
    };
    let placed = converse(request, settings, call, &mut media, stream).await;
    ua.dialogs.remove_dialog(&dialog.id());
    Ok(placed)
}

/// An answered call's dialog, its state channel, when the INVITE went
/// out, and the engine's shutdown.
struct Answered<'a> {
    dialog: &'a InviteDialog,
    states: &'a mut DialogStateReceiver,
    started: Instant,
    stop: &'a CancellationToken,
}

/// The answered call: the fax runs until T.30 ends (then BYE) or the far
/// end hangs up; a re-INVITE to T.38 switches the media; the engine's
/// shutdown hangs up (what was confirmed counts).
async fn converse(
    request: &SendRequest,
    settings: &SipSettings,
    call: Answered<'_>,
    media: &mut MediaCall,
    stream: Stream,
) -> Placed {
    let Answered {
        dialog,
        states,
        started,
        stop,
    } = call;
    if let Err(e) = media.start(stream).await {
        dialog.bye().await.ok();
        return Placed {
            result: SendResult::Error {
                reason: e.clone(),
                retry: true,
            },
            failover: false,
            detail: e,
        };
    }
    let job = &request.job_id;
    let expected = (request.pages + 1).saturating_sub(request.first_page);
    // Progress is looked at four times a second.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let (end, hung_up) = loop {
        tokio::select! {
            end = media.finished() => break (end, false),
            _ = stop.cancelled() => {
                tracing::info!(job = %job, "shutting down: hanging up after {} page(s)", media.pages());
                break (media.stop().await.ok_or_else(|| "stopped".to_string()), false);
            }
            _ = tick.tick() => {
                if let Some(pages) = media.progress() {
                    tracing::info!(job = %job, "fax progress: page {pages} confirmed");
                }
                if media.negotiated() {
                    request.report_pages(media.pages());
                }
            }
            state = states.recv() => match state {
                Some(DialogState::Updated(_, req, handle)) => {
                    reinvited(settings, media, &req.body, handle).await;
                }
                Some(DialogState::Terminated(_, reason)) => {
                    tracing::debug!("call ended by the far end: {reason:?}");
                    break (media.hung_up().await.ok_or_else(|| "stopped".to_string()), true);
                }
                None => break (media.hung_up().await.ok_or_else(|| "stopped".to_string()), true),
                Some(_) => {}
            },
        }
    };
    if !hung_up {
        if let Err(e) = dialog.bye().await {
            tracing::debug!("BYE: {e}");
        }
    }
    let duration = started.elapsed();
    match end {
        Ok(end) => {
            let result = outcome::answered(&end, duration, hung_up, expected);
            let detail = match &result {
                SendResult::Sent { .. } => "T.30 complete".to_string(),
                other => format!("{other:?}"),
            };
            Placed {
                result,
                failover: false,
                detail,
            }
        }
        Err(e) => Placed {
            result: if media.pages() > 0 {
                SendResult::Partial {
                    pages_sent: media.pages(),
                    duration,
                    remote_csid: String::new(),
                    reason: e.clone(),
                }
            } else {
                SendResult::Error {
                    reason: e.clone(),
                    retry: true,
                }
            },
            failover: false,
            detail: e,
        },
    }
}

/// A re-INVITE from the far end during the call: answered from its offer
/// (T.38 when allowed), and the media switched to what was agreed; 488
/// when nothing in it is acceptable.
pub async fn reinvited(
    settings: &SipSettings,
    media: &mut MediaCall,
    offer: &[u8],
    handle: TransactionHandle,
) {
    let port = media.port();
    match negotiate::answer(settings, offer, port, &mut media.version) {
        Ok((sdp, stream)) => {
            let headers = vec![Header::ContentType("application/sdp".into())];
            if let Err(e) = handle
                .respond(StatusCode::OK, Some(headers), Some(sdp.into_bytes()))
                .await
            {
                tracing::warn!("re-INVITE: cannot answer: {e}");
                return;
            }
            if media.stream.as_ref() != Some(&stream) {
                tracing::info!("re-INVITE: media now {}", describe(&stream));
                if let Err(e) = media.start(stream).await {
                    tracing::warn!("{e}");
                }
            }
        }
        Err(e) => {
            tracing::info!("re-INVITE refused (488): {e}");
            handle.reply(StatusCode::NotAcceptableHere).await.ok();
        }
    }
}

/// `T.38` or `G.711 µ-law` …, for logs.
pub fn describe(stream: &Stream) -> &'static str {
    match stream {
        Stream::T38(_) => "T.38",
        Stream::Audio(a) => match a.law {
            super::media::G711::Ulaw => "G.711 µ-law",
            super::media::G711::Alaw => "G.711 A-law",
        },
    }
}

async fn hang_up(ua: &Ua, dialog: &InviteDialog, why: &str) {
    tracing::info!("hanging up: {why}");
    dialog.bye().await.ok();
    ua.dialogs.remove_dialog(&dialog.id());
}

/// Whether the far end answered our INVITE at all before its final
/// response: a 100 Trying or a provisional response moved the dialog on.
fn heard_from(states: &mut DialogStateReceiver) -> bool {
    while let Ok(state) = states.try_recv() {
        if matches!(state, DialogState::Trying(_) | DialogState::Early(..)) {
            return true;
        }
    }
    false
}

/// The refusal a final response states: status, phrase, Q.850 cause.
fn refusal_of(response: &rsip::Response) -> Refusal {
    let cause = response.headers.iter().find_map(|h| match h {
        Header::Reason(r) => outcome::q850_cause(r.value()),
        _ => None,
    });
    Refusal {
        status: response.status_code.code(),
        phrase: response
            .wire_reason
            .clone()
            .unwrap_or_else(|| response.status_code.text().to_string()),
        cause,
    }
}
