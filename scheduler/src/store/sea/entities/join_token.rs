//! The `join_tokens` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "join_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub hash: String,
    pub created_by: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// Only this node may join with it.
    pub node: Option<String>,
    /// When it was last used.
    pub used_ms: Option<i64>,
    /// How many new nodes it may join.
    pub max_uses: i32,
    /// How many it has joined.
    pub uses: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
