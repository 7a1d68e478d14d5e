//! Conversions between the store's plain rows and the sea-orm models.
//!
//! Rows to models cannot fail but for JSON encoding; models to rows fail when the
//! database holds a value this version does not know (an unknown state name, bad JSON).

use std::collections::BTreeMap;

use berth_proto::model::Role;
use sea_orm::ActiveValue::{NotSet, Set};

use super::entities::{
    api_token, audit_event, budget, dataset_grant, device, device_claim, device_class, job,
    job_log, join_token, ledger_entry, node, org, project, project_grant, reservation,
    scheduler_policy, site, usage_record, user,
};
use super::entities::{discount, invoice, price};
use crate::store::StoreError;
use crate::store::types::*;

fn bad_value(table: &str, column: &str, value: &str) -> StoreError {
    StoreError::Db(format!("unknown value {value:?} in {table}.{column}"))
}

fn parse_with<T>(
    table: &str,
    column: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(value).ok_or_else(|| bad_value(table, column, value))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Db(format!("encoding JSON: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(
    table: &str,
    column: &str,
    value: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(value)
        .map_err(|e| StoreError::Db(format!("bad JSON in {table}.{column}: {e}")))
}

pub(super) fn site_model(row: &SiteRow) -> site::Model {
    site::Model {
        name: row.name.clone(),
        description: row.description.clone(),
        created_ms: row.created_ms,
    }
}

pub(super) fn site_row(m: site::Model) -> SiteRow {
    SiteRow {
        name: m.name,
        description: m.description,
        created_ms: m.created_ms,
    }
}

pub(super) fn class_model(row: &ClassRow) -> device_class::Model {
    device_class::Model {
        name: row.name.clone(),
        description: row.description.clone(),
        vendor: row.vendor.clone(),
        created_ms: row.created_ms,
        rate: row.rate,
    }
}

pub(super) fn class_row(m: device_class::Model) -> ClassRow {
    ClassRow {
        name: m.name,
        description: m.description,
        vendor: m.vendor,
        created_ms: m.created_ms,
        rate: m.rate,
    }
}

pub(super) fn org_model(row: &OrgRow) -> org::Model {
    org::Model {
        name: row.name.clone(),
        description: row.description.clone(),
        created_ms: row.created_ms,
        weight: row.weight,
        overage: row.overage.as_str().to_owned(),
    }
}

pub(super) fn org_row(m: org::Model) -> Result<OrgRow, StoreError> {
    Ok(OrgRow {
        overage: parse_with("orgs", "overage", &m.overage, Overage::parse)?,
        name: m.name,
        description: m.description,
        created_ms: m.created_ms,
        weight: m.weight,
    })
}

pub(super) fn user_model(row: &UserRow) -> user::Model {
    user::Model {
        id: row.id.clone(),
        name: row.name.clone(),
        org: row.org.clone(),
        role: row.role.as_str().to_owned(),
        created_ms: row.created_ms,
        default_project: row.default_project.clone(),
    }
}

pub(super) fn user_row(m: user::Model) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        role: parse_with("users", "role", &m.role, Role::parse)?,
        id: m.id,
        name: m.name,
        org: m.org,
        created_ms: m.created_ms,
        default_project: m.default_project,
    })
}

pub(super) fn token_model(row: &TokenRow) -> api_token::Model {
    api_token::Model {
        id: row.id.clone(),
        user_id: row.user_id.clone(),
        node: row.node.clone(),
        hash: row.hash.clone(),
        created_ms: row.created_ms,
        expires_ms: row.expires_ms,
        revoked: row.revoked,
    }
}

pub(super) fn token_row(m: api_token::Model) -> TokenRow {
    TokenRow {
        id: m.id,
        user_id: m.user_id,
        node: m.node,
        hash: m.hash,
        created_ms: m.created_ms,
        expires_ms: m.expires_ms,
        revoked: m.revoked,
    }
}

pub(super) fn join_token_model(row: &JoinTokenRow) -> join_token::Model {
    join_token::Model {
        id: row.id.clone(),
        hash: row.hash.clone(),
        created_by: row.created_by.clone(),
        created_ms: row.created_ms,
        expires_ms: row.expires_ms,
        node: row.node.clone(),
        used_ms: row.used_ms,
        max_uses: row.max_uses,
        uses: row.uses,
    }
}

pub(super) fn join_token_row(m: join_token::Model) -> JoinTokenRow {
    JoinTokenRow {
        id: m.id,
        hash: m.hash,
        created_by: m.created_by,
        created_ms: m.created_ms,
        expires_ms: m.expires_ms,
        node: m.node,
        used_ms: m.used_ms,
        max_uses: m.max_uses,
        uses: m.uses,
    }
}

pub(super) fn dataset_grant_model(row: &DatasetGrantRow) -> dataset_grant::Model {
    dataset_grant::Model {
        org: row.org.clone(),
        name: row.name.clone(),
        read_write: row.read_write,
        created_ms: row.created_ms,
    }
}

pub(super) fn dataset_grant_row(m: dataset_grant::Model) -> DatasetGrantRow {
    DatasetGrantRow {
        org: m.org,
        name: m.name,
        read_write: m.read_write,
        created_ms: m.created_ms,
    }
}

pub(super) fn node_model(row: &NodeRow) -> node::Model {
    node::Model {
        name: row.name.clone(),
        site: row.site.clone(),
        state: row.state.as_str().to_owned(),
        hostname: row.hostname.clone(),
        agent_version: row.agent_version.clone(),
        runtime: row.runtime.clone(),
        last_heartbeat_ms: row.last_heartbeat_ms,
        generation: row.generation,
        created_ms: row.created_ms,
        rejoin_until_ms: row.rejoin_until_ms,
    }
}

pub(super) fn node_row(m: node::Model) -> Result<NodeRow, StoreError> {
    Ok(NodeRow {
        state: parse_with("nodes", "state", &m.state, NodeState::parse)?,
        name: m.name,
        site: m.site,
        hostname: m.hostname,
        agent_version: m.agent_version,
        runtime: m.runtime,
        last_heartbeat_ms: m.last_heartbeat_ms,
        generation: m.generation,
        created_ms: m.created_ms,
        rejoin_until_ms: m.rejoin_until_ms,
    })
}

pub(super) fn device_model(row: &DeviceRow) -> device::Model {
    device::Model {
        uuid: row.uuid.clone(),
        node: row.node.clone(),
        class: row.class.clone(),
        vendor: row.vendor.clone(),
        model: row.model.clone(),
        memory_bytes: row.memory_bytes,
        pci_bus_id: row.pci_bus_id.clone(),
        device_index: row.index,
        health: row.health.as_str().to_owned(),
        health_reason: row.health_reason.clone(),
        updated_ms: row.updated_ms,
    }
}

pub(super) fn device_row(m: device::Model) -> Result<DeviceRow, StoreError> {
    Ok(DeviceRow {
        health: parse_with("devices", "health", &m.health, Health::parse)?,
        uuid: m.uuid,
        node: m.node,
        class: m.class,
        vendor: m.vendor,
        model: m.model,
        memory_bytes: m.memory_bytes,
        pci_bus_id: m.pci_bus_id,
        index: m.device_index,
        health_reason: m.health_reason,
        updated_ms: m.updated_ms,
    })
}

pub(super) fn reservation_model(row: &ReservationRow) -> Result<reservation::Model, StoreError> {
    Ok(reservation::Model {
        id: row.id.clone(),
        org: row.org.clone(),
        user_id: row.user_id.clone(),
        user_name: row.user_name.clone(),
        class: row.class.clone(),
        count: row.count,
        site: row.site.clone(),
        start_ms: row.start_ms,
        end_ms: row.end_ms,
        state: row.state.as_str().to_owned(),
        reason: row.reason.clone(),
        devices: to_json(&row.devices)?,
        created_ms: row.created_ms,
        budget_class: row.charge.budget_class.clone(),
        charge_period_ms: row.charge.period_start_ms,
        charged_ms: row.charge.amount_ms,
        idle_since_ms: row.idle_since_ms,
        idle_warned_ms: row.idle_warned_ms,
        project_id: row.project.clone(),
        charge_project: row.charge.project.clone(),
    })
}

pub(super) fn reservation_row(m: reservation::Model) -> Result<ReservationRow, StoreError> {
    Ok(ReservationRow {
        state: parse_with("reservations", "state", &m.state, ReservationState::parse)?,
        devices: from_json("reservations", "devices", &m.devices)?,
        id: m.id,
        org: m.org,
        user_id: m.user_id,
        user_name: m.user_name,
        class: m.class,
        count: m.count,
        site: m.site,
        start_ms: m.start_ms,
        end_ms: m.end_ms,
        reason: m.reason,
        created_ms: m.created_ms,
        charge: Charge {
            budget_class: m.budget_class,
            period_start_ms: m.charge_period_ms,
            amount_ms: m.charged_ms,
            project: m.charge_project,
        },
        project: m.project_id,
        idle_since_ms: m.idle_since_ms,
        idle_warned_ms: m.idle_warned_ms,
    })
}

pub(super) fn job_model(row: &JobRow) -> Result<job::Model, StoreError> {
    Ok(job::Model {
        id: row.id.clone(),
        name: row.name.clone(),
        org: row.org.clone(),
        user_id: row.user_id.clone(),
        user_name: row.user_name.clone(),
        class: row.class.clone(),
        count: row.count,
        image: row.image.clone(),
        command: to_json(&row.command)?,
        env: to_json(&row.env)?,
        datasets: to_json(&row.datasets)?,
        network: row.network.clone(),
        max_runtime_ms: row.max_runtime_ms,
        reservation_id: row.reservation_id.clone(),
        state: row.state.as_str().to_owned(),
        reason: row.reason.clone(),
        node: row.node.clone(),
        devices: to_json(&row.devices)?,
        exit_code: row.exit_code,
        created_ms: row.created_ms,
        started_ms: row.started_ms,
        finished_ms: row.finished_ms,
        deadline_ms: row.deadline_ms,
        generation: row.generation,
        priority: row.priority,
        preemptible: row.preemptible,
        nodes: row.nodes,
        budget_class: row.charge.budget_class.clone(),
        charge_period_ms: row.charge.period_start_ms,
        charged_ms: row.charge.amount_ms,
        requeued_from: row.requeued_from.clone(),
        stop_cause: row.stop.as_ref().map(|s| s.cause.as_str().to_owned()),
        stop_reason: row.stop.as_ref().map(|s| s.reason.clone()),
        project_id: row.project.clone(),
        charge_project: row.charge.project.clone(),
        evidence: row.evidence.as_deref().and_then(evidence_json),
    })
}

pub(super) fn job_row(m: job::Model) -> Result<JobRow, StoreError> {
    Ok(JobRow {
        state: parse_with("jobs", "state", &m.state, JobState::parse)?,
        command: from_json("jobs", "command", &m.command)?,
        env: from_json::<BTreeMap<String, String>>("jobs", "env", &m.env)?,
        datasets: from_json("jobs", "datasets", &m.datasets)?,
        network: m.network,
        devices: from_json("jobs", "devices", &m.devices)?,
        id: m.id,
        name: m.name,
        org: m.org,
        user_id: m.user_id,
        user_name: m.user_name,
        class: m.class,
        count: m.count,
        image: m.image,
        max_runtime_ms: m.max_runtime_ms,
        reservation_id: m.reservation_id,
        reason: m.reason,
        node: m.node,
        exit_code: m.exit_code,
        created_ms: m.created_ms,
        started_ms: m.started_ms,
        finished_ms: m.finished_ms,
        deadline_ms: m.deadline_ms,
        generation: m.generation,
        priority: m.priority,
        preemptible: m.preemptible,
        nodes: m.nodes,
        charge: Charge {
            budget_class: m.budget_class,
            period_start_ms: m.charge_period_ms,
            amount_ms: m.charged_ms,
            project: m.charge_project,
        },
        project: m.project_id,
        evidence: evidence_of("jobs", m.evidence.as_deref())?.map(Box::new),
        requeued_from: m.requeued_from,
        stop: match (m.stop_cause, m.stop_reason) {
            (Some(cause), reason) => Some(Stop {
                cause: parse_with("jobs", "stop_cause", &cause, StopCause::parse)?,
                reason: reason.unwrap_or_default(),
            }),
            (None, _) => None,
        },
    })
}

pub(super) fn claim_active_model(row: &ClaimRow) -> device_claim::ActiveModel {
    device_claim::ActiveModel {
        id: NotSet,
        device_uuid: Set(row.device_uuid.clone()),
        owner_kind: Set(row.owner_kind.as_str().to_owned()),
        owner_id: Set(row.owner_id.clone()),
        start_ms: Set(row.start_ms),
        end_ms: Set(row.end_ms),
    }
}

pub(super) fn claim_row(m: device_claim::Model) -> Result<ClaimRow, StoreError> {
    Ok(ClaimRow {
        owner_kind: parse_with(
            "device_claims",
            "owner_kind",
            &m.owner_kind,
            OwnerKind::parse,
        )?,
        device_uuid: m.device_uuid,
        owner_id: m.owner_id,
        start_ms: m.start_ms,
        end_ms: m.end_ms,
    })
}

pub(super) fn usage_active_model(row: &UsageRow) -> usage_record::ActiveModel {
    usage_record::ActiveModel {
        id: NotSet,
        org: Set(row.org.clone()),
        user_id: Set(row.user_id.clone()),
        kind: Set(row.kind.as_str().to_owned()),
        subject_id: Set(row.subject_id.clone()),
        class: Set(row.class.clone()),
        devices: Set(row.devices),
        start_ms: Set(row.start_ms),
        end_ms: Set(row.end_ms),
        device_ms: Set(row.device_ms),
        evidence: Set(row.evidence.as_ref().and_then(evidence_json)),
    }
}

/// Evidence as stored (its fields are plain numbers and names: encoding cannot fail).
fn evidence_json(e: &Evidence) -> Option<String> {
    Some(super::evidence::to_json(e))
}

fn evidence_of(table: &str, json: Option<&str>) -> Result<Option<Evidence>, StoreError> {
    json.map(|j| super::evidence::from_json(table, j))
        .transpose()
}

pub(super) fn usage_row(m: usage_record::Model) -> Result<UsageRow, StoreError> {
    Ok(UsageRow {
        kind: parse_with("usage_records", "kind", &m.kind, OwnerKind::parse)?,
        org: m.org,
        user_id: m.user_id,
        subject_id: m.subject_id,
        class: m.class,
        devices: m.devices,
        start_ms: m.start_ms,
        end_ms: m.end_ms,
        device_ms: m.device_ms,
        evidence: evidence_of("usage_records", m.evidence.as_deref())?,
    })
}

pub(super) fn audit_active_model(row: &AuditRow) -> audit_event::ActiveModel {
    audit_event::ActiveModel {
        id: NotSet,
        time_ms: Set(row.time_ms),
        actor: Set(row.actor.clone()),
        action: Set(row.action.clone()),
        target: Set(row.target.clone()),
        outcome: Set(row.outcome.clone()),
    }
}

pub(super) fn audit_row(m: audit_event::Model) -> AuditRow {
    AuditRow {
        time_ms: m.time_ms,
        actor: m.actor,
        action: m.action,
        target: m.target,
        outcome: m.outcome,
    }
}

pub(super) fn log_model(job_id: &str, row: &LogRow) -> job_log::Model {
    job_log::Model {
        job_id: job_id.to_owned(),
        seq: row.seq,
        stream: row.stream,
        data: row.data.clone(),
        time_ms: row.time_ms,
    }
}

pub(super) fn log_row(m: job_log::Model) -> LogRow {
    LogRow {
        seq: m.seq,
        stream: m.stream,
        data: m.data,
        time_ms: m.time_ms,
    }
}

pub(super) fn budget_model(row: &BudgetRow) -> budget::Model {
    budget::Model {
        org: row.org.clone(),
        class: row.class.clone(),
        period: row.period.clone(),
        allowance_ms: row.allowance_ms,
        max_devices: row.max_devices,
        max_booking_ms: row.max_booking_ms,
        horizon_ms: row.horizon_ms,
        expires_ms: row.expires_ms,
        updated_ms: row.updated_ms,
    }
}

pub(super) fn budget_row(m: budget::Model) -> BudgetRow {
    BudgetRow {
        org: m.org,
        class: m.class,
        period: m.period,
        allowance_ms: m.allowance_ms,
        max_devices: m.max_devices,
        max_booking_ms: m.max_booking_ms,
        horizon_ms: m.horizon_ms,
        expires_ms: m.expires_ms,
        updated_ms: m.updated_ms,
    }
}

pub(super) fn ledger_model(row: &LedgerRow) -> ledger_entry::Model {
    ledger_entry::Model {
        id: row.id.clone(),
        org: row.org.clone(),
        budget_class: row.budget_class.clone(),
        time_ms: row.time_ms,
        kind: row.kind.as_str().to_owned(),
        amount_ms: row.amount_ms,
        period_start_ms: row.period_start_ms,
        subject_kind: row.subject_kind.map(|k| k.as_str().to_owned()),
        subject_id: row.subject_id.clone(),
        device_class: row.device_class.clone(),
        device_ms: row.device_ms,
        note: row.note.clone(),
        project_id: row.project_id.clone(),
    }
}

pub(super) fn ledger_row(m: ledger_entry::Model) -> Result<LedgerRow, StoreError> {
    Ok(LedgerRow {
        kind: parse_with("ledger_entries", "kind", &m.kind, LedgerKind::parse)?,
        subject_kind: m
            .subject_kind
            .as_deref()
            .map(|k| parse_with("ledger_entries", "subject_kind", k, OwnerKind::parse))
            .transpose()?,
        id: m.id,
        org: m.org,
        budget_class: m.budget_class,
        time_ms: m.time_ms,
        amount_ms: m.amount_ms,
        period_start_ms: m.period_start_ms,
        subject_id: m.subject_id,
        device_class: m.device_class,
        device_ms: m.device_ms,
        note: m.note,
        project_id: m.project_id,
    })
}

pub(super) fn project_model(row: &ProjectRow) -> project::Model {
    project::Model {
        id: row.id.clone(),
        org: row.org.clone(),
        title: row.title.clone(),
        programme: row.programme.clone(),
        start_ms: row.start_ms,
        end_ms: row.end_ms,
        contact: row.contact.clone(),
        state: row.state.as_str().to_owned(),
        reason: row.reason.clone(),
        expiry_warned_ms: row.expiry_warned_ms,
        created_ms: row.created_ms,
        updated_ms: row.updated_ms,
    }
}

pub(super) fn project_grant_models(row: &ProjectRow) -> Vec<project_grant::Model> {
    row.grants
        .iter()
        .map(|g| project_grant::Model {
            project_id: row.id.clone(),
            class: g.class.clone(),
            hours_ms: g.device_ms,
        })
        .collect()
}

/// A project from its row and its grants (any order).
pub(super) fn project_row(
    m: project::Model,
    grants: Vec<project_grant::Model>,
) -> Result<ProjectRow, StoreError> {
    let mut grants: Vec<GrantRow> = grants
        .into_iter()
        .map(|g| GrantRow {
            class: g.class,
            device_ms: g.hours_ms,
        })
        .collect();
    grants.sort_by(|a, b| a.class.cmp(&b.class));
    Ok(ProjectRow {
        state: parse_with("projects", "state", &m.state, ProjectState::parse)?,
        id: m.id,
        org: m.org,
        title: m.title,
        programme: m.programme,
        start_ms: m.start_ms,
        end_ms: m.end_ms,
        contact: m.contact,
        reason: m.reason,
        expiry_warned_ms: m.expiry_warned_ms,
        grants,
        created_ms: m.created_ms,
        updated_ms: m.updated_ms,
    })
}

pub(super) fn policy_model(row: &PolicyRow) -> scheduler_policy::Model {
    scheduler_policy::Model {
        id: scheduler_policy::ROW_ID,
        json: row.json.clone(),
        updated_ms: row.updated_ms,
    }
}

pub(super) fn policy_row(m: scheduler_policy::Model) -> PolicyRow {
    PolicyRow {
        json: m.json,
        updated_ms: m.updated_ms,
    }
}

pub(super) fn price_model(row: &PriceRow) -> price::Model {
    price::Model {
        class: row.class.clone(),
        krw_per_hour: row.krw_per_hour,
        idle_krw_per_hour: row.idle_krw_per_hour,
        updated_ms: row.updated_ms,
    }
}

pub(super) fn price_row(m: price::Model) -> PriceRow {
    PriceRow {
        class: m.class,
        krw_per_hour: m.krw_per_hour,
        idle_krw_per_hour: m.idle_krw_per_hour,
        updated_ms: m.updated_ms,
    }
}

pub(super) fn discount_model(row: &DiscountRow) -> discount::Model {
    discount::Model {
        org: row.org.clone(),
        percent: row.percent,
        reason: row.reason.clone(),
        updated_ms: row.updated_ms,
    }
}

pub(super) fn discount_row(m: discount::Model) -> DiscountRow {
    DiscountRow {
        org: m.org,
        percent: m.percent,
        reason: m.reason,
        updated_ms: m.updated_ms,
    }
}

pub(super) fn invoice_model(row: &InvoiceRow) -> Result<invoice::Model, StoreError> {
    Ok(invoice::Model {
        id: row.id.clone(),
        org: row.org.clone(),
        month: row.month.clone(),
        period_start_ms: row.period_start_ms,
        period_end_ms: row.period_end_ms,
        state: row.state.as_str().to_owned(),
        lines: to_json(&row.lines)?,
        subtotal_krw: row.subtotal_krw,
        vat_krw: row.vat_krw,
        total_krw: row.total_krw,
        discount_percent: row.discount_percent,
        discount_reason: row.discount_reason.clone(),
        created_ms: row.created_ms,
        issued_ms: row.issued_ms,
        paid_ms: row.paid_ms,
        voided_ms: row.voided_ms,
    })
}

pub(super) fn invoice_row(m: invoice::Model) -> Result<InvoiceRow, StoreError> {
    Ok(InvoiceRow {
        state: parse_with("invoices", "state", &m.state, InvoiceState::parse)?,
        lines: from_json("invoices", "lines", &m.lines)?,
        id: m.id,
        org: m.org,
        month: m.month,
        period_start_ms: m.period_start_ms,
        period_end_ms: m.period_end_ms,
        subtotal_krw: m.subtotal_krw,
        vat_krw: m.vat_krw,
        total_krw: m.total_krw,
        discount_percent: m.discount_percent,
        discount_reason: m.discount_reason,
        created_ms: m.created_ms,
        issued_ms: m.issued_ms,
        paid_ms: m.paid_ms,
        voided_ms: m.voided_ms,
    })
}
