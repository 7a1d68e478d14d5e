//! The `jobs` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub org: String,
    pub user_id: String,
    pub user_name: String,
    pub class: String,
    pub count: i32,
    pub image: String,
    /// JSON array of strings.
    pub command: String,
    /// JSON object of strings.
    pub env: String,
    /// JSON array of `[name, read_write]` pairs.
    pub datasets: String,
    pub network: String,
    pub max_runtime_ms: i64,
    pub reservation_id: Option<String>,
    pub state: String,
    pub reason: String,
    pub node: Option<String>,
    /// JSON array of device UUIDs.
    pub devices: String,
    pub exit_code: Option<i32>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub deadline_ms: Option<i64>,
    pub generation: i64,
    pub priority: i32,
    pub preemptible: bool,
    pub nodes: i32,
    /// The budget's class key charged; empty when nothing was charged.
    pub budget_class: String,
    /// Start of the period charged.
    pub charge_period_ms: i64,
    /// Net budget milliseconds charged.
    pub charged_ms: i64,
    pub requeued_from: Option<String>,
    /// Why the scheduler asked the node to stop it (a `StopCause` name); `None` if it did not.
    pub stop_cause: Option<String>,
    /// The stop's reason in words.
    pub stop_reason: Option<String>,
    /// The project it was submitted under.
    pub project_id: Option<String>,
    /// The project whose grant paid.
    pub charge_project: Option<String>,
    /// JSON of its `Evidence`, once it ended with a report.
    pub evidence: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
