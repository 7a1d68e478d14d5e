//! Notification rows: subscriptions, webhooks and the outbox.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::entities::{notification, notify_subscription, webhook};
use crate::store::types::{
    Channel, DeliveryState, Mutation, NotificationFilter, NotificationRow, SubscriptionRow,
    WebhookRow,
};

fn join(events: &[String]) -> String {
    events.join(",")
}

fn split(events: &str) -> Vec<String> {
    events
        .split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Applies one of the notification mutations; `false` when `m` is not one of them.
pub(super) async fn apply<C: ConnectionTrait>(txn: &C, m: &Mutation) -> Result<bool, DbErr> {
    match m {
        Mutation::SetSubscription(r) => {
            notify_subscription::Entity::insert(
                notify_subscription::Model {
                    user_id: r.user_id.clone(),
                    org: r.org.clone(),
                    email: r.email.clone(),
                    events: join(&r.events),
                    updated_ms: r.updated_ms,
                }
                .into_active_model(),
            )
            .on_conflict(
                OnConflict::column(notify_subscription::Column::UserId)
                    .update_columns([
                        notify_subscription::Column::Org,
                        notify_subscription::Column::Email,
                        notify_subscription::Column::Events,
                        notify_subscription::Column::UpdatedMs,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        }
        Mutation::DeleteSubscription { user_id } => {
            notify_subscription::Entity::delete_by_id(user_id.clone())
                .exec(txn)
                .await?;
        }
        Mutation::InsertWebhook(r) => {
            webhook::Entity::insert(
                webhook::Model {
                    id: r.id.clone(),
                    org: r.org.clone(),
                    url: r.url.clone(),
                    events: join(&r.events),
                    created_ms: r.created_ms,
                }
                .into_active_model(),
            )
            .exec_without_returning(txn)
            .await?;
        }
        Mutation::DeleteWebhook { id } => {
            webhook::Entity::delete_by_id(id.clone()).exec(txn).await?;
        }
        Mutation::InsertNotifications(rows) => {
            // One statement per row: a taken dedupe key skips only its own row.
            for r in rows {
                notification::Entity::insert(model(r).into_active_model())
                    .on_conflict(
                        OnConflict::column(notification::Column::Dedupe)
                            .do_nothing()
                            .to_owned(),
                    )
                    .exec_without_returning(txn)
                    .await?;
            }
        }
        Mutation::UpdateNotification(o) => {
            notification::Entity::update_many()
                .col_expr(notification::Column::State, Expr::value(o.state.as_str()))
                .col_expr(notification::Column::Attempts, Expr::value(o.attempts))
                .col_expr(notification::Column::NextMs, Expr::value(o.next_ms))
                .col_expr(
                    notification::Column::LastError,
                    Expr::value(o.last_error.clone()),
                )
                .col_expr(notification::Column::UpdatedMs, Expr::value(o.updated_ms))
                .col_expr(notification::Column::SentMs, Expr::value(o.sent_ms))
                .filter(notification::Column::Id.eq(o.id.as_str()))
                .exec(txn)
                .await?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn model(r: &NotificationRow) -> notification::Model {
    notification::Model {
        id: r.id.clone(),
        dedupe: r.dedupe.clone(),
        event: r.event.clone(),
        org: r.org.clone(),
        object_kind: r.object_kind.clone(),
        object_id: r.object_id.clone(),
        channel: r.channel.as_str().to_owned(),
        target: r.target.clone(),
        user_id: r.user_id.clone(),
        webhook_id: r.webhook_id.clone(),
        payload: r.payload.clone(),
        state: r.state.as_str().to_owned(),
        attempts: r.attempts,
        next_ms: r.next_ms,
        last_error: r.last_error.clone(),
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
        sent_ms: r.sent_ms,
    }
}

fn row(m: notification::Model) -> Result<NotificationRow, DbErr> {
    let bad =
        |what: &str, v: &str| DbErr::Custom(format!("notification {}: bad {what} {v:?}", m.id));
    Ok(NotificationRow {
        channel: Channel::parse(&m.channel).ok_or_else(|| bad("channel", &m.channel))?,
        state: DeliveryState::parse(&m.state).ok_or_else(|| bad("state", &m.state))?,
        id: m.id,
        dedupe: m.dedupe,
        event: m.event,
        org: m.org,
        object_kind: m.object_kind,
        object_id: m.object_id,
        target: m.target,
        user_id: m.user_id,
        webhook_id: m.webhook_id,
        payload: m.payload,
        attempts: m.attempts,
        next_ms: m.next_ms,
        last_error: m.last_error,
        created_ms: m.created_ms,
        updated_ms: m.updated_ms,
        sent_ms: m.sent_ms,
    })
}

/// Every subscription and webhook, for the in-memory state.
pub(super) async fn load<C: ConnectionTrait>(
    db: &C,
) -> Result<(Vec<SubscriptionRow>, Vec<WebhookRow>), DbErr> {
    let subs = notify_subscription::Entity::find()
        .order_by_asc(notify_subscription::Column::UserId)
        .all(db)
        .await?
        .into_iter()
        .map(|m| SubscriptionRow {
            events: split(&m.events),
            user_id: m.user_id,
            org: m.org,
            email: m.email,
            updated_ms: m.updated_ms,
        })
        .collect();
    let hooks = webhook::Entity::find()
        .order_by_asc(webhook::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|m| WebhookRow {
            events: split(&m.events),
            id: m.id,
            org: m.org,
            url: m.url,
            created_ms: m.created_ms,
        })
        .collect();
    Ok((subs, hooks))
}

/// The newest deliveries the filter allows, newest first.
pub(super) async fn list<C: ConnectionTrait>(
    db: &C,
    f: &NotificationFilter,
    limit: u32,
) -> Result<Vec<NotificationRow>, DbErr> {
    let mut q = notification::Entity::find();
    if let Some(org) = &f.org {
        q = q.filter(notification::Column::Org.eq(org.as_str()));
    }
    if let Some(user) = &f.user_id {
        let mut who = Condition::any().add(notification::Column::UserId.eq(user.as_str()));
        if f.webhooks {
            who = who.add(notification::Column::Channel.eq(Channel::Webhook.as_str()));
        }
        q = q.filter(who);
    }
    q.order_by_desc(notification::Column::CreatedMs)
        .order_by_desc(notification::Column::Id)
        .limit(u64::from(limit))
        .all(db)
        .await?
        .into_iter()
        .map(row)
        .collect()
}

/// Pending deliveries due at `now_ms`, soonest first.
pub(super) async fn due<C: ConnectionTrait>(
    db: &C,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<NotificationRow>, DbErr> {
    notification::Entity::find()
        .filter(notification::Column::State.eq(DeliveryState::Pending.as_str()))
        .filter(notification::Column::NextMs.lte(now_ms))
        .order_by_asc(notification::Column::NextMs)
        .order_by_asc(notification::Column::Id)
        .limit(u64::from(limit))
        .all(db)
        .await?
        .into_iter()
        .map(row)
        .collect()
}
