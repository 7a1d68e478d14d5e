//! The `budgets` table: one row per (org, class key).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "budgets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org: String,
    /// A class name or `*`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub class: String,
    /// `day`, `week` or `month`.
    pub period: String,
    pub allowance_ms: Option<i64>,
    pub max_devices: Option<i32>,
    pub max_booking_ms: Option<i64>,
    pub horizon_ms: Option<i64>,
    pub expires_ms: Option<i64>,
    pub updated_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
