//! The notification operations: a user's address and events, orgs' webhooks, and the
//! deliveries each caller may see.

use super::{MAX_LISTED, check_email, check_events, check_url};
use crate::auth::Caller;
use crate::engine::{Engine, audit, now};
use crate::error::{Error, Result};
use crate::store::{Mutation, NotificationFilter, NotificationRow, SubscriptionRow, WebhookRow};
use berth_i18n::api::Msg;
use berth_i18n::text;
use berth_proto::model::Role;

impl Engine {
    /// Sets the caller's notification address and the events they want mailed: the
    /// fields named in `fields` (`email`, `events`) change, the others keep theirs.
    /// `clear` forgets both. Returns the settings now in force.
    pub async fn set_notifications(
        &self,
        caller: &Caller,
        email: &str,
        events: &[String],
        fields: &[String],
        clear: bool,
    ) -> Result<Option<SubscriptionRow>> {
        caller.require_user()?;
        let t = now();
        if clear {
            self.commit(|tx| {
                tx.push(Mutation::DeleteSubscription {
                    user_id: caller.id.clone(),
                });
                tx.push(Mutation::Audit(audit(
                    caller,
                    "notifications.clear",
                    &caller.name,
                    t,
                    "ok",
                )));
                Ok(())
            })
            .await?;
            return Ok(None);
        }
        let set_email = fields.iter().any(|f| f == "email");
        let set_events = fields.iter().any(|f| f == "events");
        let email = set_email.then(|| check_email(email)).transpose()?;
        let events = set_events.then(|| check_events(events)).transpose()?;
        self.commit(|tx| {
            let old = tx.state().subscriptions.get(&caller.id).cloned();
            let row = SubscriptionRow {
                user_id: caller.id.clone(),
                org: caller.org.clone(),
                email: email
                    .or_else(|| old.as_ref().map(|o| o.email.clone()))
                    .ok_or_else(|| Error::field("email", Msg::IsRequired))?,
                events: events
                    .or_else(|| old.as_ref().map(|o| o.events.clone()))
                    .unwrap_or_default(),
                updated_ms: t,
            };
            let target = format!("{} events={}", caller.name, row.events.join(","));
            tx.push(Mutation::SetSubscription(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "notifications.set",
                &target,
                t,
                "ok",
            )));
            Ok(Some(row))
        })
        .await
    }

    /// The caller's notification settings, if they set any.
    pub fn notification_settings(&self, caller: &Caller) -> Result<Option<SubscriptionRow>> {
        caller.require_user()?;
        Ok(self.view().subscriptions.get(&caller.id).cloned())
    }

    /// Adds a webhook to `org` (admins only).
    pub async fn add_webhook(
        &self,
        caller: &Caller,
        org: &str,
        url: &str,
        events: &[String],
    ) -> Result<WebhookRow> {
        caller.require_admin()?;
        let url = check_url(url)?;
        let events = check_events(events)?;
        let t = now();
        self.commit(|tx| {
            if !tx.state().orgs.contains_key(org) {
                return Err(Error::NotFound(text!(WhatOrg, name = ?org)));
            }
            let row = WebhookRow {
                id: format!("wh-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
                org: org.to_owned(),
                url,
                events,
                created_ms: t,
            };
            tx.push(Mutation::InsertWebhook(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "webhook.add",
                &format!("{} org={}", row.id, row.org),
                t,
                "ok",
            )));
            Ok(row)
        })
        .await
    }

    /// Webhooks: every one (or `org`'s) for admins, their own org's for org-admins.
    pub fn list_webhooks(&self, caller: &Caller, org: Option<&str>) -> Result<Vec<WebhookRow>> {
        caller.require_user()?;
        let org = if caller.is_admin() {
            org.filter(|o| !o.is_empty()).map(str::to_owned)
        } else if caller.role == Role::OrgAdmin {
            match org.filter(|o| !o.is_empty()) {
                Some(o) if o != caller.org => {
                    return Err(Error::NotFound(text!(WhatOrg, name = ?o)));
                }
                _ => Some(caller.org.clone()),
            }
        } else {
            return Err(Error::PermissionDenied(Msg::NeedsAdmin.into()));
        };
        Ok(self
            .view()
            .webhooks
            .values()
            .filter(|h| org.as_ref().is_none_or(|o| &h.org == o))
            .cloned()
            .collect())
    }

    /// Removes a webhook (admins only); its pending deliveries still go out.
    pub async fn remove_webhook(&self, caller: &Caller, id: &str) -> Result<WebhookRow> {
        caller.require_admin()?;
        let t = now();
        self.commit(|tx| {
            let row = tx
                .state()
                .webhooks
                .get(id)
                .cloned()
                .ok_or_else(|| Error::NotFound(text!(WhatWebhook, id = ?id)))?;
            tx.push(Mutation::DeleteWebhook { id: id.to_owned() });
            tx.push(Mutation::Audit(audit(
                caller,
                "webhook.remove",
                &format!("{} org={}", row.id, row.org),
                t,
                "ok",
            )));
            Ok(row)
        })
        .await
    }

    /// The newest deliveries the caller may see: every one for admins; their org's
    /// webhook posts and their own mail for org-admins; their own mail for users.
    pub async fn list_notifications(
        &self,
        caller: &Caller,
        limit: u32,
    ) -> Result<Vec<NotificationRow>> {
        caller.require_user()?;
        let limit = if limit == 0 {
            100
        } else {
            limit.min(MAX_LISTED)
        };
        let filter = if caller.is_admin() {
            NotificationFilter::default()
        } else {
            NotificationFilter {
                org: Some(caller.org.clone()),
                user_id: Some(caller.id.clone()),
                webhooks: caller.role == Role::OrgAdmin,
            }
        };
        Ok(self.store.list_notifications(&filter, limit).await?)
    }
}
