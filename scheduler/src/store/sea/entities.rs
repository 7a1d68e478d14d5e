//! sea-orm entities, one per table of the migrations in `berth-migrations`.
//!
//! Times are milliseconds since the Unix epoch; lists and maps are JSON text.

pub mod api_token;
pub mod audit_event;
pub mod budget;
pub mod dataset_grant;
pub mod device;
pub mod device_claim;
pub mod device_class;
pub mod discount;
pub mod invoice;
pub mod job;
pub mod job_log;
pub mod join_token;
pub mod ledger_entry;
pub mod node;
pub mod notification;
pub mod notify_subscription;
pub mod org;
pub mod price;
pub mod project;
pub mod project_grant;
pub mod reservation;
pub mod scheduler_policy;
pub mod site;
pub mod usage_record;
pub mod user;
pub mod user_settings;
pub mod web_login;
pub mod web_session;
pub mod webhook;
