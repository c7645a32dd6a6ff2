//! The scheduler's second half: what happens after an attempt — each
//! recipient's outcome recorded in the store, the reports (bounce, delay
//! warning, expiry, fax report) enqueued before the failure they report,
//! messages a transport cannot handle quarantined, and the results synced.

use super::*;

impl Scheduler {
    /// The recipients of `env` owed a delay warning at `now`: the message
    /// waited `delay_warning` or longer, and each was attempted, is not
    /// warned yet, has no report pending and wants one (NOTIFY).
    pub(super) fn late(&self, env: &Envelope, now: u64) -> Vec<usize> {
        let after = self.plan().delay_warning;
        if after == 0 || now.saturating_sub(env.arrival) < after {
            return Vec::new();
        }
        env.active()
            .filter(|(_, r)| {
                !r.delay_warned
                    && !r.report_pending
                    && r.attempts > 0
                    && Notify::wants_delay(r.notify)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Hold message `id` (its recipients `indexes` made a transport ask
    /// for it: a fax renderer that keeps crashing on it) so that it stops
    /// being tried, and tell the sender (a delay report with the reason).
    /// `faxmta queue release ID` tries it again.
    pub(super) async fn quarantine(&self, id: &str, body: &[u8], indexes: &[usize]) {
        match self.store.hold(id) {
            Ok(true) => tracing::error!(
                "{id}: quarantined: held after repeated crashes while making its fax \
                 (faxmta queue release {id} tries it again)"
            ),
            Ok(false) => return,
            Err(e) => {
                tracing::error!("{id}: cannot quarantine (hold) the message: {e}");
                return;
            }
        }
        if let Ok(Some(env)) = self.store.get(id) {
            self.send_report(ReportKind::Delay, &env, body, indexes, now_unix())
                .await;
        }
    }

    pub(super) fn expired(&self, env: &Envelope, i: usize) -> Outcome {
        let lifetime = env.lifetime_of(i).unwrap_or(self.plan().retry.lifetime);
        let r = &env.recipients[i];
        let last = match &r.last_reply {
            Some(reply) => format!("; last reply: {reply}"),
            None if r.etrn_held() => {
                let domain = r.address.rsplit_once('@').map_or("", |(_, d)| d);
                format!(", held for ETRN: no ETRN released {domain}")
            }
            None => String::new(),
        };
        Outcome::local(
            i,
            Status::Failed,
            env.recipients[i]
                .relay
                .clone()
                .unwrap_or_else(|| "none".into()),
            Reply::new(
                554,
                "5.4.7",
                format!(
                    "message expired after {} in the queue{last}",
                    format_duration(lifetime)
                ),
            ),
        )
    }

    /// Apply outcomes: reports first, then the new recipient states; and
    /// hold the recipients in `holds` (ETRN domains, not released).
    pub(super) async fn record(
        &self,
        env: Envelope,
        body: &[u8],
        outcomes: Vec<Outcome>,
        holds: &[usize],
        started: u64,
    ) {
        // Retries count from the end of the attempt, not its start.
        let now = started.max(now_unix());
        let mut updated = env.clone();
        for &i in holds {
            // Looked at again only when it expires (or ETRN releases it).
            let expires = env.arrival + env.lifetime_of(i).unwrap_or(self.plan().retry.lifetime);
            let r = &mut updated.recipients[i];
            r.etrn = Some(Etrn::Held);
            r.next_attempt = expires.max(now);
            tracing::info!(
                "{}: to=<{}>, relay=none, delay={}, status=held (waiting for ETRN; expires in {})",
                env.id,
                r.address,
                now.saturating_sub(env.arrival),
                format_duration(expires.saturating_sub(now))
            );
        }
        let mut failed = Vec::new();
        let mut delivered = Vec::new();
        let mut relayed = Vec::new();
        // Fax documents handed back, kept with the records of the faxes
        // that end now.
        let mut documents = std::collections::HashMap::new();
        for mut o in outcomes {
            if let Some(document) = o.document.take() {
                documents.insert(o.index, document);
            }
            let Some(r) = updated.recipients.get_mut(o.index) else {
                continue;
            };
            // A report tried again is not another attempt.
            if !r.report_pending {
                r.attempts += 1;
            }
            r.last_attempt = now;
            r.relay = Some(o.relay.clone());
            if let Some(fax) = o.fax.take() {
                r.fax = Some(fax);
            }
            if o.status == Status::Deferred {
                let lifetime = env.lifetime_of(o.index);
                // A transport's own interval (a busy fax line), within
                // the lifetime; else the queue's schedule.
                let own = o.retry_after.map(|after| now + after).filter(|&next| {
                    next < env.arrival + lifetime.unwrap_or(self.plan().retry.lifetime)
                });
                let next = match o.retry_after {
                    Some(_) => own,
                    None => self
                        .plan()
                        .retry
                        .next_attempt(now, env.arrival, r.attempts, lifetime),
                };
                match next {
                    Some(next) => {
                        r.state = RcptState::Deferred;
                        r.next_attempt = next;
                    }
                    None => {
                        r.last_reply = Some(o.reply.clone());
                        o = self.expired(&updated, o.index);
                    }
                }
            }
            let r = &mut updated.recipients[o.index];
            r.last_reply = Some(o.reply.clone());
            if r.etrn.is_some() {
                // Attempted: no longer waiting for ETRN.
                r.etrn = Some(Etrn::Released);
            }
            match o.status {
                Status::Delivered => {
                    r.state = RcptState::Delivered;
                    if o.relayed {
                        relayed.push(o.index);
                    } else if o.remote_mta.is_none() {
                        delivered.push(o.index);
                    }
                    // Else a remote host that does DSN took it, NOTIFY
                    // and all: any success notice is that host's to send
                    // (RFC 3461 §5.2.1), not ours.
                }
                Status::Failed => {
                    r.state = RcptState::Failed;
                    r.report_pending = false;
                    failed.push(o.index);
                }
                Status::Deferred => {}
            }
            let delay = now.saturating_sub(env.arrival);
            let word = o.status.log_word();
            // The TLS policy last, after Postfix's fields, so log tools
            // that read those still do.
            let tls = o
                .tls_policy
                .as_ref()
                .map(|p| format!(", tls={p}"))
                .unwrap_or_default();
            tracing::info!(
                "{}: to=<{}>, relay={}, delay={delay}, dsn={}, status={word} ({}){tls}",
                env.id,
                r.address,
                o.relay,
                o.reply.status,
                o.reply.text
            );
        }

        // Reports before states: if the report cannot be queued, the
        // recipient stays deferred, marked `report_pending`, and only the
        // report is tried again later (its outcome stays as decided).
        // Fax recipients get fax reports (number, pages, calls).
        let (fax_failed, failed): (Vec<usize>, Vec<usize>) = failed
            .into_iter()
            .partition(|&i| updated.recipients[i].fax.is_some());
        let (fax_sent, delivered): (Vec<usize>, Vec<usize>) = delivered
            .into_iter()
            .partition(|&i| updated.recipients[i].fax.is_some());
        let mut unreported: Vec<usize> = Vec::new();
        if !failed.is_empty()
            && !self
                .send_report(ReportKind::Failure, &updated, body, &failed, now)
                .await
        {
            unreported.extend(&failed);
        }
        if !fax_failed.is_empty()
            && !self
                .send_fax_report(ReportKind::Failure, &updated, body, &fax_failed, now)
                .await
        {
            unreported.extend(&fax_failed);
        }
        if !fax_sent.is_empty() {
            // A lost notice is not worth a second fax.
            self.send_fax_report(ReportKind::Success, &updated, body, &fax_sent, now)
                .await;
        }
        {
            let failed = unreported;
            for &i in &failed {
                let r = &mut updated.recipients[i];
                r.state = RcptState::Deferred;
                r.report_pending = true;
                r.next_attempt = now + self.plan().retry.interval(1);
            }
        }
        // One delay warning per recipient, once the message waited long enough.
        let late = self.late(&updated, now);
        if !late.is_empty()
            && self
                .send_report(ReportKind::Delay, &updated, body, &late, now)
                .await
        {
            for i in late {
                updated.recipients[i].delay_warned = true;
            }
        }
        // Success notices (NOTIFY=SUCCESS): "delivered" when the final
        // hop was ours, "relayed" when the next hop could not take DSN
        // requests on (RFC 3461 §5.2.2); none when it could (above).
        // A lost notice is not worth a redelivery.
        for (kind, list) in [
            (ReportKind::Success, delivered),
            (ReportKind::Relayed, relayed),
        ] {
            let wanted: Vec<usize> = list
                .into_iter()
                .filter(|&i| Notify::wants_success(updated.recipients[i].notify))
                .collect();
            if !wanted.is_empty() {
                self.send_report(kind, &updated, body, &wanted, now).await;
            }
        }

        let saved = self.store.update(&env.id, |current| {
            let before = std::mem::replace(&mut current.recipients, updated.recipients.clone());
            // An ETRN that released a recipient while we decided to hold
            // it wins.
            for &i in holds {
                if before
                    .get(i)
                    .is_some_and(|r| r.etrn == Some(Etrn::Released))
                {
                    current.recipients[i] = before[i].clone();
                }
            }
        });
        self.remember_faxes(&updated, now, &documents);
        match saved {
            Ok(Some(e)) if e.is_done() => tracing::info!("{}: removed", env.id),
            Ok(_) => {}
            Err(e) => {
                // Delivered but not recorded (a full disk): it will be
                // attempted again — a duplicate rather than a loss —, but
                // not at once, or the peer would get it in a loop.
                tracing::error!("{}: cannot record delivery results: {e}", env.id);
                let attempts = env.recipients.iter().map(|r| r.attempts).max().unwrap_or(0);
                let pause = self.plan().retry.interval(attempts + 1);
                self.store
                    .postpone(&env.id, now + pause.max(STORE_TROUBLE_PAUSE));
            }
        }
        // Make the result durable (shared with other syncs), so that a
        // crash right after a delivery rarely repeats it.
        if let Err(e) = self.store.sync().await {
            tracing::error!("{}: cannot sync delivery results: {e}", env.id);
        }
    }
}
