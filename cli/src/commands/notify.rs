//! `berth notifications [set|clear|settings]`, `berth admin webhooks [add|remove]` and
//! `berth account set --lang`.

use super::Ctx;
use crate::error::{Error, tr, trf};
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::v1;
use serde::Serialize;

/// `berth notifications` subcommands; none lists your deliveries.
#[derive(Debug, clap::Subcommand)]
pub enum NotificationsCmd {
    /// Set the address mailed and the events mailed to you (given flags change, the
    /// others keep theirs). Events: booking-start, booking-end, idle-warning, reclaimed,
    /// job-end, budget, project-expiry, invoice.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
    Set {
        /// Your email address.
        #[arg(long, group = "change", value_name = "ADDR")]
        email: Option<String>,
        /// Comma-separated event names; empty (`--events ""`) mails nothing.
        #[arg(long, group = "change", value_name = "LIST")]
        events: Option<String>,
    },
    /// Forget your address and events: nothing is mailed to you.
    Clear,
    /// Show your address and events.
    Settings,
}

/// `berth admin webhooks` subcommands; none lists them.
#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCmd {
    /// Post an org's events as JSON (`event`, `org`, `kind`, `id`, `text`) to a URL.
    Add {
        /// The organisation.
        #[arg(long)]
        org: String,
        /// An http:// or https:// URL (a Slack incoming webhook shows `text`).
        #[arg(long)]
        url: String,
        /// Comma-separated event names (default: every event).
        #[arg(long, value_name = "LIST")]
        events: Option<String>,
    },
    /// Remove a webhook.
    Remove {
        /// Webhook id.
        id: String,
    },
}

/// `berth account` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AccountCmd {
    /// Change your settings.
    Set {
        /// Your language: of the CLI, the portal and the notifications mailed to you.
        #[arg(long, value_parser = ["ko", "en"])]
        lang: String,
    },
}

/// A delivery as printed in JSON.
#[derive(Debug, Serialize)]
pub struct NotificationView {
    pub id: String,
    pub event: String,
    pub org: String,
    pub kind: String,
    pub object_id: String,
    pub channel: String,
    pub target: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub sent_at: Option<String>,
    pub next_attempt_at: Option<String>,
}

impl From<&v1::Notification> for NotificationView {
    fn from(n: &v1::Notification) -> Self {
        NotificationView {
            id: n.id.clone(),
            event: n.event.clone(),
            org: n.org.clone(),
            kind: n.object_kind.clone(),
            object_id: n.object_id.clone(),
            channel: n.channel.clone(),
            target: n.target.clone(),
            state: n.state.clone(),
            attempts: n.attempts,
            last_error: n.last_error.clone(),
            created_at: timefmt::ts_rfc3339(n.created_at.as_ref()),
            updated_at: timefmt::ts_rfc3339(n.updated_at.as_ref()),
            sent_at: timefmt::ts_rfc3339(n.sent_at.as_ref()),
            next_attempt_at: timefmt::ts_rfc3339(n.next_attempt_at.as_ref()),
        }
    }
}

/// A webhook as printed in JSON.
#[derive(Debug, Serialize)]
pub struct WebhookView {
    pub id: String,
    pub org: String,
    pub url: String,
    /// Empty: every event.
    pub events: Vec<String>,
    pub created_at: Option<String>,
}

impl From<&v1::Webhook> for WebhookView {
    fn from(w: &v1::Webhook) -> Self {
        WebhookView {
            id: w.id.clone(),
            org: w.org.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            created_at: timefmt::ts_rfc3339(w.created_at.as_ref()),
        }
    }
}

/// Settings as printed in JSON.
#[derive(Debug, Serialize)]
pub struct SettingsView {
    pub email: Option<String>,
    pub events: Vec<String>,
}

fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

fn print_notifications(list: &[v1::Notification], format: Format) -> Result<(), Error> {
    if format == Format::Json {
        let views: Vec<NotificationView> = list.iter().map(NotificationView::from).collect();
        return output::json(&views);
    }
    let mut t = Table::new([
        "created",
        "event",
        "object",
        "channel",
        "target",
        "state",
        "attempts",
        "last_error",
        "sent",
    ]);
    for n in list {
        t.row([
            timefmt::ts_local(n.created_at.as_ref()),
            n.event.clone(),
            format!("{} {}", n.object_kind, n.object_id),
            n.channel.clone(),
            n.target.clone(),
            n.state.clone(),
            n.attempts.to_string(),
            dash(&n.last_error),
            n.sent_at
                .as_ref()
                .map_or_else(|| "-".to_owned(), |ts| timefmt::ts_local(Some(ts))),
        ]);
    }
    t.print(format, tr(Msg::EmptyNotifications))
}

fn print_settings(s: &v1::NotificationSettings, format: Format) -> Result<(), Error> {
    if format == Format::Json {
        return output::json(&SettingsView {
            email: s.set.then(|| s.email.clone()),
            events: s.events.clone(),
        });
    }
    if !s.set {
        output::note(tr(Msg::NotificationsNone));
        return Ok(());
    }
    let events = if s.events.is_empty() {
        tr(Msg::NoEvents).to_owned()
    } else {
        s.events.join(",")
    };
    println!(
        "{}",
        trf(
            Msg::NotificationsSet,
            &[("email", &s.email), ("events", &events)]
        )
    );
    Ok(())
}

fn print_webhooks(list: &[v1::Webhook], format: Format) -> Result<(), Error> {
    if format == Format::Json {
        let views: Vec<WebhookView> = list.iter().map(WebhookView::from).collect();
        return output::json(&views);
    }
    let mut t = Table::new(["id", "org", "url", "events", "created"]);
    for w in list {
        let events = if w.events.is_empty() {
            "*".to_owned()
        } else {
            w.events.join(",")
        };
        t.row([
            w.id.clone(),
            w.org.clone(),
            w.url.clone(),
            events,
            timefmt::ts_local(w.created_at.as_ref()),
        ]);
    }
    t.print(format, tr(Msg::EmptyWebhooks))
}

/// `berth notifications [...]`.
pub async fn notifications(
    ctx: &Ctx,
    limit: Option<u32>,
    cmd: Option<&NotificationsCmd>,
) -> Result<(), Error> {
    let mut api = ctx.api().await?.notifications();
    match cmd {
        None => {
            let list = api
                .list_notifications(v1::ListNotificationsRequest {
                    limit: limit.unwrap_or(0),
                })
                .await?
                .into_inner()
                .notifications;
            print_notifications(&list, ctx.format)
        }
        Some(NotificationsCmd::Settings) => {
            let s = api
                .get_notification_settings(v1::GetNotificationSettingsRequest {})
                .await?
                .into_inner();
            print_settings(&s, ctx.format)
        }
        Some(NotificationsCmd::Clear) => {
            let s = api
                .set_notification_settings(v1::SetNotificationSettingsRequest {
                    clear: true,
                    ..Default::default()
                })
                .await?
                .into_inner();
            output::note(tr(Msg::NotificationsCleared));
            if ctx.format == Format::Json {
                print_settings(&s, ctx.format)?;
            }
            Ok(())
        }
        Some(NotificationsCmd::Set { email, events }) => {
            let mut fields = Vec::new();
            if email.is_some() {
                fields.push("email".to_owned());
            }
            if events.is_some() {
                fields.push("events".to_owned());
            }
            let s = api
                .set_notification_settings(v1::SetNotificationSettingsRequest {
                    email: email.clone().unwrap_or_default(),
                    events: events.as_deref().map(split).unwrap_or_default(),
                    fields,
                    clear: false,
                })
                .await?
                .into_inner();
            print_settings(&s, ctx.format)
        }
    }
}

/// `berth admin webhooks [...]`.
pub async fn webhooks(
    ctx: &Ctx,
    org: Option<&str>,
    cmd: Option<&WebhooksCmd>,
) -> Result<(), Error> {
    let mut api = ctx.api().await?.notifications();
    match cmd {
        None => {
            let list = api
                .list_webhooks(v1::ListWebhooksRequest {
                    org: org.unwrap_or_default().to_owned(),
                })
                .await?
                .into_inner()
                .webhooks;
            print_webhooks(&list, ctx.format)
        }
        Some(WebhooksCmd::Add { org, url, events }) => {
            let w = api
                .add_webhook(v1::AddWebhookRequest {
                    org: org.clone(),
                    url: url.clone(),
                    events: events.as_deref().map(split).unwrap_or_default(),
                })
                .await?
                .into_inner();
            output::note(trf(Msg::WebhookAdded, &[("id", &w.id), ("org", &w.org)]));
            print_webhooks(&[w], ctx.format)
        }
        Some(WebhooksCmd::Remove { id }) => {
            let w = api
                .remove_webhook(v1::RemoveWebhookRequest { id: id.clone() })
                .await?
                .into_inner();
            output::note(trf(Msg::WebhookRemoved, &[("id", &w.id)]));
            if ctx.format == Format::Json {
                output::json(&WebhookView::from(&w))?;
            }
            Ok(())
        }
    }
}

/// `berth account set --lang`.
pub async fn account(ctx: &Ctx, cmd: &AccountCmd) -> Result<(), Error> {
    match cmd {
        AccountCmd::Set { lang } => {
            let me = ctx
                .api()
                .await?
                .identity()
                .set_language(v1::SetLanguageRequest {
                    language: lang.clone(),
                })
                .await?
                .into_inner();
            output::note(trf(Msg::LanguageSet, &[("lang", &me.language)]));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lists_split_on_commas_and_drop_blanks() {
        assert_eq!(split("job-end, budget,,"), ["job-end", "budget"]);
        assert!(split("").is_empty());
    }
}
