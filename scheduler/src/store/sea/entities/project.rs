//! The `projects` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org: String,
    pub title: String,
    pub programme: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub contact: String,
    /// A `ProjectState` name.
    pub state: String,
    pub reason: String,
    /// When its members were told it ends within 7 days.
    pub expiry_warned_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
