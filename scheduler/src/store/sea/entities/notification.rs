//! The `notifications` table: the outbox.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub dedupe: Option<String>,
    pub event: String,
    pub org: String,
    pub object_kind: String,
    pub object_id: String,
    pub channel: String,
    pub target: String,
    pub user_id: String,
    pub webhook_id: String,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub next_ms: i64,
    pub last_error: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub sent_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
