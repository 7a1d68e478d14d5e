//! The `invoices` table: monthly invoices in whole won, lines as JSON text.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invoices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org: String,
    /// `YYYY-MM`.
    pub month: String,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    /// `draft`, `issued`, `paid` or `void`.
    pub state: String,
    /// JSON list of lines.
    pub lines: String,
    pub subtotal_krw: i64,
    pub vat_krw: i64,
    pub total_krw: i64,
    pub discount_percent: i32,
    pub discount_reason: String,
    pub created_ms: i64,
    pub issued_ms: Option<i64>,
    pub paid_ms: Option<i64>,
    pub voided_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
