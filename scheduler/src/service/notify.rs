//! `berth.v1.Notifications`: users' addresses and events, orgs' webhooks, deliveries.

use super::{Shared, metered};
use crate::auth::caller;
use crate::store::{NotificationRow, SubscriptionRow, WebhookRow};
use berth_proto::time::ms_to_ts;
use berth_proto::v1;
use tonic::{Request, Response, Status};

type Reply<T> = Result<Response<T>, Status>;

/// `berth.v1.Notifications`.
pub struct NotificationsService(pub Shared);

fn settings(row: Option<SubscriptionRow>) -> v1::NotificationSettings {
    match row {
        None => v1::NotificationSettings::default(),
        Some(r) => v1::NotificationSettings {
            email: r.email,
            events: r.events,
            set: true,
            updated_at: Some(ms_to_ts(r.updated_ms)),
        },
    }
}

fn webhook(r: WebhookRow) -> v1::Webhook {
    v1::Webhook {
        id: r.id,
        org: r.org,
        url: r.url,
        events: r.events,
        created_at: Some(ms_to_ts(r.created_ms)),
    }
}

fn notification(r: NotificationRow) -> v1::Notification {
    let pending = r.state == crate::store::DeliveryState::Pending;
    v1::Notification {
        id: r.id,
        event: r.event,
        org: r.org,
        object_kind: r.object_kind,
        object_id: r.object_id,
        channel: r.channel.as_str().to_owned(),
        target: r.target,
        user_id: r.user_id,
        webhook_id: r.webhook_id,
        state: r.state.as_str().to_owned(),
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        last_error: r.last_error,
        created_at: Some(ms_to_ts(r.created_ms)),
        updated_at: Some(ms_to_ts(r.updated_ms)),
        sent_at: r.sent_ms.map(ms_to_ts),
        next_attempt_at: pending.then(|| ms_to_ts(r.next_ms)),
    }
}

#[tonic::async_trait]
impl v1::notifications_server::Notifications for NotificationsService {
    async fn get_notification_settings(
        &self,
        req: Request<v1::GetNotificationSettingsRequest>,
    ) -> Reply<v1::NotificationSettings> {
        let c = caller(&req)?;
        Ok(Response::new(settings(self.0.notification_settings(&c)?)))
    }

    async fn set_notification_settings(
        &self,
        req: Request<v1::SetNotificationSettingsRequest>,
    ) -> Reply<v1::NotificationSettings> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let row = self
            .0
            .set_notifications(&c, &r.email, &r.events, &r.fields, r.clear)
            .await?;
        Ok(Response::new(settings(row)))
    }

    async fn list_notifications(
        &self,
        req: Request<v1::ListNotificationsRequest>,
    ) -> Reply<v1::ListNotificationsResponse> {
        let c = caller(&req)?;
        let rows = self.0.list_notifications(&c, req.get_ref().limit).await?;
        metered(
            &req,
            v1::ListNotificationsResponse {
                notifications: rows.into_iter().map(notification).collect(),
            },
        )
    }

    async fn add_webhook(&self, req: Request<v1::AddWebhookRequest>) -> Reply<v1::Webhook> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let row = self.0.add_webhook(&c, &r.org, &r.url, &r.events).await?;
        Ok(Response::new(webhook(row)))
    }

    async fn list_webhooks(
        &self,
        req: Request<v1::ListWebhooksRequest>,
    ) -> Reply<v1::ListWebhooksResponse> {
        let c = caller(&req)?;
        let rows = self.0.list_webhooks(&c, Some(&req.get_ref().org))?;
        Ok(Response::new(v1::ListWebhooksResponse {
            webhooks: rows.into_iter().map(webhook).collect(),
        }))
    }

    async fn remove_webhook(&self, req: Request<v1::RemoveWebhookRequest>) -> Reply<v1::Webhook> {
        let c = caller(&req)?;
        let row = self.0.remove_webhook(&c, &req.get_ref().id).await?;
        Ok(Response::new(webhook(row)))
    }
}
