//! The `device_claims` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "device_claims")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub device_uuid: String,
    pub owner_kind: String,
    pub owner_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
