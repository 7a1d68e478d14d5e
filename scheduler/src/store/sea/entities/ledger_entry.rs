//! The `ledger_entries` table: charges, refunds and top-ups of budgets.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org: String,
    pub budget_class: String,
    pub time_ms: i64,
    /// `charge`, `refund` or `top-up`.
    pub kind: String,
    pub amount_ms: i64,
    pub period_start_ms: i64,
    /// `reservation` or `job`; `None` for top-ups.
    pub subject_kind: Option<String>,
    pub subject_id: String,
    pub device_class: String,
    pub device_ms: i64,
    pub note: String,
    /// The project drawn on; `None`: the org's budget.
    pub project_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
