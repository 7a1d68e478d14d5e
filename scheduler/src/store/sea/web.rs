//! The web portal's rows: sessions, single-use sign-in links and user settings.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter};

use super::entities::{user_settings, web_login, web_session};
use crate::store::types::{Mutation, UserSettingsRow, WebLoginRow, WebSessionRow};

/// Applies one of the portal's mutations; `false` when `m` is not one of them.
pub(super) async fn apply<C: ConnectionTrait>(txn: &C, m: &Mutation) -> Result<bool, DbErr> {
    match m {
        Mutation::InsertWebSession(r) => {
            web_session::Entity::insert(
                web_session::Model {
                    id: r.id.clone(),
                    user_id: r.user_id.clone(),
                    csrf: r.csrf.clone(),
                    created_ms: r.created_ms,
                    expires_ms: r.expires_ms,
                }
                .into_active_model(),
            )
            .exec_without_returning(txn)
            .await?;
        }
        Mutation::DeleteWebSession { id } => {
            web_session::Entity::delete_by_id(id.clone())
                .exec(txn)
                .await?;
        }
        Mutation::InsertWebLogin(r) => {
            web_login::Entity::insert(
                web_login::Model {
                    id: r.id.clone(),
                    user_id: r.user_id.clone(),
                    created_ms: r.created_ms,
                    expires_ms: r.expires_ms,
                }
                .into_active_model(),
            )
            .exec_without_returning(txn)
            .await?;
        }
        Mutation::DeleteWebLogin { id } => {
            web_login::Entity::delete_by_id(id.clone())
                .exec(txn)
                .await?;
        }
        Mutation::EndWebSessionsOf { user_id } => {
            web_session::Entity::delete_many()
                .filter(web_session::Column::UserId.eq(user_id.as_str()))
                .exec(txn)
                .await?;
            web_login::Entity::delete_many()
                .filter(web_login::Column::UserId.eq(user_id.as_str()))
                .exec(txn)
                .await?;
        }
        Mutation::PruneWeb { before_ms } => {
            web_session::Entity::delete_many()
                .filter(web_session::Column::ExpiresMs.lt(*before_ms))
                .exec(txn)
                .await?;
            web_login::Entity::delete_many()
                .filter(web_login::Column::ExpiresMs.lt(*before_ms))
                .exec(txn)
                .await?;
        }
        Mutation::SetUserSettings(r) => {
            user_settings::Entity::insert(
                user_settings::Model {
                    user_id: r.user_id.clone(),
                    lang: r.lang.clone(),
                    updated_ms: r.updated_ms,
                }
                .into_active_model(),
            )
            .on_conflict(
                OnConflict::column(user_settings::Column::UserId)
                    .update_columns([
                        user_settings::Column::Lang,
                        user_settings::Column::UpdatedMs,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A session by the hash of its secret.
pub(super) async fn session<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Option<WebSessionRow>, DbErr> {
    Ok(web_session::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(|m| WebSessionRow {
            id: m.id,
            user_id: m.user_id,
            csrf: m.csrf,
            created_ms: m.created_ms,
            expires_ms: m.expires_ms,
        }))
}

/// A sign-in link by the hash of its secret.
pub(super) async fn login<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Option<WebLoginRow>, DbErr> {
    Ok(web_login::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(|m| WebLoginRow {
            id: m.id,
            user_id: m.user_id,
            created_ms: m.created_ms,
            expires_ms: m.expires_ms,
        }))
}

/// A user's settings.
pub(super) async fn settings<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
) -> Result<Option<UserSettingsRow>, DbErr> {
    Ok(user_settings::Entity::find_by_id(user_id.to_owned())
        .one(db)
        .await?
        .map(|m| UserSettingsRow {
            user_id: m.user_id,
            lang: m.lang,
            updated_ms: m.updated_ms,
        }))
}
