//! The `usage_records` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_records")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org: String,
    pub user_id: String,
    pub kind: String,
    pub subject_id: String,
    pub class: String,
    pub devices: i32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub device_ms: i64,
    /// JSON of the job's `Evidence`, when its agents reported it.
    pub evidence: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
