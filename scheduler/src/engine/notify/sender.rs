//! The sender: a task of its own that delivers the outbox, on the leader only.
//!
//! It reads due rows from the database (woken when new ones commit, and every
//! `poll`), and gives each delivery its own task: at most `concurrency` at once, at most
//! [`PER_WEBHOOK`] per webhook and [`PER_SMTP`] to the mail server, each attempt cut off
//! after `attempt_timeout`. So a webhook that never answers holds one or two slots for
//! one timeout per retry, and every other delivery goes on beside it. Each attempt's
//! outcome is recorded through the group commit; a failure is retried with exponential
//! backoff until `max_attempts`. A row is marked sent only after the receiver accepted
//! it, and a crash between the two sends it again: at least once.

use super::smtp::{self, Server};
use super::{Event, webhook};
use crate::engine::{Engine, now};
use crate::store::{Channel, DeliveryOutcome, DeliveryState, Mutation, NotificationRow};
use berth_i18n::Lang;
use berth_i18n::api::Msg;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Deliveries to one webhook at once.
pub const PER_WEBHOOK: usize = 2;
/// Mails being sent at once.
pub const PER_SMTP: usize = 4;
/// Due rows read per round.
const BATCH: u32 = 256;

/// Where mail goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// The relay (`smtp://host:port` or `smtps://host:port`).
    pub server: Server,
    /// The sender address (`From` and `MAIL FROM`).
    pub from: String,
}

impl SmtpConfig {
    /// From `--smtp-url` and `--smtp-from`; `Err` says what is wrong.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let server = Server::parse(url.trim())?;
        let from = super::check_email(from)
            .map_err(|_| format!("--smtp-from {from:?} is not an email address"))?;
        Ok(SmtpConfig { server, from })
    }
}

/// How the sender delivers.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The mail relay; `None`: mail deliveries fail at once, saying so.
    pub smtp: Option<SmtpConfig>,
    /// Longest one attempt may take.
    pub attempt_timeout: Duration,
    /// Wait after the first failure; doubled after each further one.
    pub backoff_base: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// Attempts before a delivery is given up as failed.
    pub max_attempts: i32,
    /// How often the outbox is read when nothing wakes the sender.
    pub poll: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            smtp: None,
            attempt_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            max_attempts: 10,
            poll: Duration::from_secs(5),
            concurrency: 16,
        }
    }
}

impl NotifyConfig {
    /// The wait before attempt `attempts + 1`, after `attempts` failed ones.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.backoff_base
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Delivered,
    /// Try again later.
    Retry(String),
    /// Trying again cannot help (no mail server configured, a payload not understood).
    GiveUp(String),
}

/// The outcome to record for `row` after `attempt` at `t`.
fn outcome(
    config: &NotifyConfig,
    row: &NotificationRow,
    attempt: Attempt,
    t: i64,
) -> DeliveryOutcome {
    let attempts = row.attempts.saturating_add(1);
    let (state, next_ms, last_error, sent_ms) = match attempt {
        Attempt::Delivered => (DeliveryState::Sent, t, String::new(), Some(t)),
        Attempt::GiveUp(e) => (DeliveryState::Failed, t, e, None),
        Attempt::Retry(e) if attempts >= config.max_attempts => (DeliveryState::Failed, t, e, None),
        Attempt::Retry(e) => {
            let wait = i64::try_from(config.backoff(attempts).as_millis()).unwrap_or(i64::MAX);
            (DeliveryState::Pending, t.saturating_add(wait), e, None)
        }
    };
    DeliveryOutcome {
        id: row.id.clone(),
        state,
        attempts,
        next_ms,
        last_error,
        updated_ms: t,
        sent_ms,
    }
}

/// Deliveries in flight: by id, and how many per target; and the deliveries finished
/// lately, with the round they finished in.
#[derive(Default)]
struct Flight {
    ids: HashSet<String>,
    per_target: HashMap<String, usize>,
    /// Counts the outbox reads.
    round: u64,
    /// A row read in round `r` is stale for an id that finished in round `r` or later:
    /// its outcome may have committed after the read began, and sending it again from
    /// that read would be a duplicate.
    finished: HashMap<String, u64>,
}

/// The target a delivery counts against, and how many it may have at once.
fn target(row: &NotificationRow) -> (String, usize) {
    match row.channel {
        Channel::Email => ("smtp".to_owned(), PER_SMTP),
        Channel::Webhook => (format!("webhook:{}", row.webhook_id), PER_WEBHOOK),
    }
}

/// TLS for `https://` webhooks and `smtps://`: the system's CAs.
fn client_tls() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("no system CA certificates found: https webhooks and smtps will fail");
    }
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Runs the sender until `stop`; it delivers only while this scheduler leads.
pub async fn run(engine: Arc<Engine>, config: NotifyConfig, stop: CancellationToken) {
    let config = Arc::new(config);
    let tls = client_tls();
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let flight = Arc::new(Mutex::new(Flight::default()));
    loop {
        if engine.leads() {
            let round = {
                let mut f = flight.lock().unwrap_or_else(|e| e.into_inner());
                f.round += 1;
                let keep_from = f.round.saturating_sub(2);
                f.finished.retain(|_, r| *r >= keep_from);
                f.round
            };
            match engine.store.due_notifications(now(), BATCH).await {
                Ok(rows) => {
                    for row in rows {
                        let (key, limit) = target(&row);
                        let permit = {
                            let mut f = flight.lock().unwrap_or_else(|e| e.into_inner());
                            if f.ids.contains(&row.id)
                                || f.finished.get(&row.id).is_some_and(|r| *r >= round)
                                || f.per_target.get(&key).copied().unwrap_or(0) >= limit
                            {
                                continue;
                            }
                            let Ok(permit) = slots.clone().try_acquire_owned() else {
                                break;
                            };
                            f.ids.insert(row.id.clone());
                            *f.per_target.entry(key.clone()).or_default() += 1;
                            permit
                        };
                        let (engine, config, tls, flight) =
                            (engine.clone(), config.clone(), tls.clone(), flight.clone());
                        tokio::spawn(async move {
                            let attempt = match tokio::time::timeout(
                                config.attempt_timeout,
                                deliver(&engine, &config, &tls, &row),
                            )
                            .await
                            {
                                Ok(a) => a,
                                Err(_) => Attempt::Retry(format!(
                                    "no answer within {} ms",
                                    config.attempt_timeout.as_millis()
                                )),
                            };
                            let out = outcome(&config, &row, attempt, now());
                            if out.state != DeliveryState::Sent {
                                tracing::info!(
                                    notification = %row.id, event = %row.event,
                                    channel = row.channel.as_str(), attempts = out.attempts,
                                    state = out.state.as_str(), error = %out.last_error,
                                    "notification not delivered"
                                );
                            }
                            let recorded = engine
                                .commit(|tx| {
                                    tx.push(Mutation::UpdateNotification(out));
                                    Ok(())
                                })
                                .await;
                            if let Err(e) = recorded {
                                // Still pending in the database: sent again later.
                                tracing::warn!(notification = %row.id, error = %e,
                                    "could not record a delivery attempt");
                            }
                            {
                                let mut f = flight.lock().unwrap_or_else(|e| e.into_inner());
                                f.ids.remove(&row.id);
                                let done_in = f.round;
                                f.finished.insert(row.id.clone(), done_in);
                                if let Some(n) = f.per_target.get_mut(&key) {
                                    *n = n.saturating_sub(1);
                                    if *n == 0 {
                                        f.per_target.remove(&key);
                                    }
                                }
                            }
                            drop(permit);
                            engine.outbox_wake.notify_one();
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the notification outbox failed"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(config.poll) => {}
            _ = engine.outbox_wake.notified() => {}
        }
    }
}

/// One attempt to deliver `row`.
async fn deliver(
    engine: &Engine,
    config: &NotifyConfig,
    tls: &Arc<rustls::ClientConfig>,
    row: &NotificationRow,
) -> Attempt {
    let event: Event = match serde_json::from_str(&row.payload) {
        Ok(e) => e,
        Err(e) => return Attempt::GiveUp(format!("the stored event is not understood: {e}")),
    };
    match row.channel {
        Channel::Email => {
            let Some(smtp) = &config.smtp else {
                return Attempt::GiveUp(berth_i18n::api::Text::from(Msg::NoSmtp).to_string());
            };
            let lang = match engine.user_lang(&row.user_id).await {
                Ok(l) => l.unwrap_or(Lang::En),
                Err(e) => return Attempt::Retry(format!("reading the user's language: {e}")),
            };
            let text = event.text().render(lang);
            let (kind, id) = event.object();
            let body = format!(
                "{text}\n\n{}: {}\norg: {}\n{kind}: {id}\n\n-- Berth\n",
                "event", row.event, row.org
            );
            let subject = format!("[Berth] {text}");
            let mail = smtp::Mail {
                to: &row.target,
                subject: &subject,
                body: &body,
            };
            match smtp::send(smtp, &mail, tls).await {
                Ok(()) => Attempt::Delivered,
                Err(e) => Attempt::Retry(e),
            }
        }
        Channel::Webhook => {
            let (kind, id) = event.object();
            let body = serde_json::json!({
                "event": row.event,
                "org": row.org,
                "kind": kind,
                "id": id,
                "text": event.text().render(Lang::En),
                "notification": row.id,
                "details": event,
            });
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            match webhook::post(&row.target, &bytes, tls).await {
                Ok(()) => Attempt::Delivered,
                Err(e) => Attempt::Retry(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(attempts: i32) -> NotificationRow {
        NotificationRow {
            id: "n1".into(),
            dedupe: None,
            event: "job-end".into(),
            org: "acme".into(),
            object_kind: "job".into(),
            object_id: "j1".into(),
            channel: Channel::Webhook,
            target: "http://127.0.0.1:9/".into(),
            user_id: String::new(),
            webhook_id: "wh-1".into(),
            payload: "{}".into(),
            state: DeliveryState::Pending,
            attempts,
            next_ms: 0,
            last_error: String::new(),
            created_ms: 0,
            updated_ms: 0,
            sent_ms: None,
        }
    }

    #[test]
    fn failures_back_off_exponentially_then_give_up() {
        let c = NotifyConfig {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5),
            max_attempts: 4,
            ..NotifyConfig::default()
        };
        let retry = |n| outcome(&c, &row(n), Attempt::Retry("down".into()), 1_000);
        assert_eq!(
            (retry(0).state, retry(0).attempts, retry(0).next_ms),
            (DeliveryState::Pending, 1, 2_000)
        );
        assert_eq!(retry(1).next_ms, 3_000);
        assert_eq!(retry(2).next_ms, 5_000);
        assert_eq!(retry(3).state, DeliveryState::Failed);
        assert_eq!(retry(3).last_error, "down");
        assert_eq!(c.backoff(10), Duration::from_secs(5));
        let sent = outcome(&c, &row(2), Attempt::Delivered, 7);
        assert_eq!(
            (sent.state, sent.sent_ms, sent.attempts),
            (DeliveryState::Sent, Some(7), 3)
        );
        let given_up = outcome(&c, &row(0), Attempt::GiveUp("no smtp".into()), 7);
        assert_eq!(
            (given_up.state, given_up.attempts),
            (DeliveryState::Failed, 1)
        );
    }

    #[test]
    fn smtp_settings_are_checked() {
        assert!(SmtpConfig::new("smtp://127.0.0.1:2525", "berth@centre.kr").is_ok());
        assert!(SmtpConfig::new("127.0.0.1:2525", "berth@centre.kr").is_err());
        assert!(SmtpConfig::new("smtp://127.0.0.1:2525", "berth").is_err());
    }
}
