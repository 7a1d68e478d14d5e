//! The `reservations` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reservations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org: String,
    pub user_id: String,
    pub user_name: String,
    pub class: String,
    pub count: i32,
    pub site: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub state: String,
    pub reason: String,
    /// JSON array of device UUIDs.
    pub devices: String,
    pub created_ms: i64,
    /// The budget's class key charged; empty when nothing was charged.
    pub budget_class: String,
    /// Start of the period charged.
    pub charge_period_ms: i64,
    /// Net budget milliseconds charged.
    pub charged_ms: i64,
    pub idle_since_ms: Option<i64>,
    pub idle_warned_ms: Option<i64>,
    /// The project it was booked under.
    pub project_id: Option<String>,
    /// The project whose grant paid.
    pub charge_project: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
