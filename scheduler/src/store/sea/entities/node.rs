//! The `nodes` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub site: String,
    pub state: String,
    pub hostname: String,
    pub agent_version: String,
    pub runtime: String,
    pub last_heartbeat_ms: Option<i64>,
    pub generation: i64,
    pub created_ms: i64,
    /// Until then the node may re-join with a join token (an admin allowed it).
    pub rejoin_until_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
