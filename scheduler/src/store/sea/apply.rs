//! Writes a batch of mutations inside one transaction.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, IdenStatic,
    IntoActiveModel, Iterable, QueryFilter,
};

use super::convert;
use super::entities::{
    api_token, audit_event, budget, dataset_grant, device, device_claim, device_class, job,
    join_token, ledger_entry, node, org, project, project_grant, reservation, scheduler_policy,
    site, usage_record, user,
};
use super::entities::{discount, invoice, price};
use super::error::{self, Kind};
use crate::store::StoreError;
use crate::store::types::{ClaimRow, LedgerRow, Mutation};
use berth_i18n::api::Text;
use berth_i18n::text;

/// Job rows per upsert statement (about 35 parameters each: within SQLite's 32,766 and
/// PostgreSQL's 65,535).
const JOB_UPSERT_CHUNK: usize = 256;
/// Device rows per upsert statement (about 15 parameters each).
const DEVICE_UPSERT_CHUNK: usize = 512;
/// Audit events per INSERT statement (7 parameters each).
const AUDIT_INSERT_CHUNK: usize = 1024;
/// New bookings written together (each about 25 parameters in its upsert).
const BOOKING_CHUNK: usize = 512;
/// Device claims per INSERT statement (5 parameters each).
const CLAIM_INSERT_CHUNK: usize = 2048;
/// Ledger rows per INSERT statement (12 parameters each).
const LEDGER_INSERT_CHUNK: usize = 256;
/// Ledger ids named in an "already exists" error before the rest are counted.
const LEDGER_IDS_NAMED: usize = 3;

/// Why a batch failed.
#[derive(Debug)]
pub(super) enum Failed {
    /// The transaction may succeed if retried (deadlock, serialization failure, busy).
    Transient(DbErr),
    /// The batch cannot succeed as it is.
    Final(StoreError),
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Failed::Final(e)
    }
}

impl Failed {
    /// A failure outside any particular mutation (begin, commit).
    pub(super) fn from_db(err: DbErr) -> Failed {
        match error::classify(&err) {
            Kind::Transient => Failed::Transient(err),
            Kind::Overlap => Failed::Final(StoreError::Conflict(err.to_string())),
            Kind::Unique | Kind::Other => Failed::Final(error::db(err)),
        }
    }

    /// A failed insert of a named object: a taken key means `what` already exists.
    fn named(err: DbErr, what: impl FnOnce() -> Text) -> Failed {
        match error::classify(&err) {
            Kind::Unique => Failed::Final(StoreError::AlreadyExists { what: what() }),
            _ => Failed::from_db(err),
        }
    }

    /// A failed insert of several device claims at once: an overlap names the first.
    fn claims(err: DbErr, claims: &[&ClaimRow]) -> Failed {
        match (error::classify(&err), claims.first()) {
            (Kind::Overlap, Some(first)) if claims.len() == 1 => Failed::claim(err, first),
            (Kind::Overlap, Some(first)) => Failed::Final(StoreError::Conflict(format!(
                "one of {} device claims (the first on device {}) overlaps another claim",
                claims.len(),
                first.device_uuid
            ))),
            _ => Failed::from_db(err),
        }
    }

    /// A failed insert of a device claim: an overlap names the device.
    fn claim(err: DbErr, claim: &ClaimRow) -> Failed {
        match error::classify(&err) {
            Kind::Overlap => Failed::Final(StoreError::Conflict(format!(
                "device {} for [{}, {}) ({} {})",
                claim.device_uuid,
                claim.start_ms,
                claim.end_ms,
                claim.owner_kind.as_str(),
                claim.owner_id
            ))),
            _ => Failed::from_db(err),
        }
    }
}

/// Inserts `am`, or on a taken primary key `key` updates every other column.
async fn upsert<A>(
    txn: &DatabaseTransaction,
    am: A,
    key: <A::Entity as EntityTrait>::Column,
) -> Result<(), DbErr>
where
    A: ActiveModelTrait + Send,
{
    upsert_by(txn, am, &[key]).await
}

/// Inserts `am`, or on a taken primary key of the columns `keys` updates every other
/// column.
async fn upsert_by<A>(
    txn: &DatabaseTransaction,
    am: A,
    keys: &[<A::Entity as EntityTrait>::Column],
) -> Result<(), DbErr>
where
    A: ActiveModelTrait + Send,
{
    upsert_many_by(txn, vec![am], keys).await
}

/// As [`upsert_by`], for several rows in one statement (no two with the same key).
async fn upsert_many_by<A>(
    txn: &DatabaseTransaction,
    ams: Vec<A>,
    keys: &[<A::Entity as EntityTrait>::Column],
) -> Result<(), DbErr>
where
    A: ActiveModelTrait + Send,
{
    if ams.is_empty() {
        return Ok(());
    }
    let others: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
        .filter(|c| keys.iter().all(|k| k.as_str() != c.as_str()))
        .collect();
    <A::Entity as EntityTrait>::insert_many(ams)
        .on_conflict(
            OnConflict::columns(keys.iter().copied())
                .update_columns(others)
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Fails with a clear error when an update matched no row.
fn require_row(rows_affected: u64, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if rows_affected == 0 {
        return Err(Failed::Final(StoreError::Db(format!(
            "{} does not exist",
            what()
        ))));
    }
    Ok(())
}

/// Names the ledger entries of one insert, for an "already exists" error.
fn ledger_ids<'a>(rows: impl IntoIterator<Item = &'a LedgerRow>) -> Text {
    let rows: Vec<&LedgerRow> = rows.into_iter().collect();
    let named: Vec<String> = rows
        .iter()
        .take(LEDGER_IDS_NAMED)
        .map(|r| format!("\"{}\"", r.id))
        .collect();
    let more = rows.len().saturating_sub(LEDGER_IDS_NAMED);
    match (rows.len(), more) {
        (1, _) => text!(WhatLedgerEntry, ids = named.join(", ")),
        (_, 0) => text!(WhatLedgerEntries, ids = named.join(", ")),
        (_, more) => text!(WhatLedgerEntriesMore, ids = named.join(", "), more),
    }
}

/// Applies every mutation of every batch of `group` in order; the caller commits or rolls
/// back.
/// Applies a group's mutations in order, with two shortcuts that change no outcome: a
/// run of job upserts of distinct jobs is one multi-row statement, and audit events
/// (rows of their own table that nothing refers to) are inserted together at the end.
/// A group of submissions is then a few statements, not two per job.
pub(super) async fn apply_all(
    txn: &DatabaseTransaction,
    group: &[&[Mutation]],
) -> Result<(), Failed> {
    let (audits, rest): (Vec<&Mutation>, Vec<&Mutation>) = group
        .iter()
        .flat_map(|b| b.iter())
        .partition(|m| matches!(m, Mutation::Audit(_)));
    let mut i = 0;
    while i < rest.len() {
        let bookings = booking_run(&rest[i..]);
        if bookings.len() > 1 {
            let n: usize = bookings.iter().map(|b| b.len).sum();
            apply_bookings(txn, &bookings).await?;
            i += n;
            continue;
        }
        let devices = device_run(&rest[i..]);
        if devices.len() > 1 {
            i += devices.len();
            let models = devices
                .iter()
                .map(|d| convert::device_model(d).into_active_model())
                .collect();
            upsert_many_by(txn, models, &[device::Column::Uuid])
                .await
                .map_err(Failed::from_db)?;
            continue;
        }
        let run = job_run(&rest[i..]);
        if run.is_empty() {
            apply_one(txn, rest[i]).await?;
            i += 1;
            continue;
        }
        i += run.len();
        let models = run
            .iter()
            .map(|j| convert::job_model(j).map(IntoActiveModel::into_active_model))
            .collect::<Result<Vec<_>, StoreError>>()?;
        upsert_many_by(txn, models, &[job::Column::Id])
            .await
            .map_err(Failed::from_db)?;
    }
    for chunk in audits.chunks(AUDIT_INSERT_CHUNK) {
        let models = chunk.iter().filter_map(|m| match m {
            Mutation::Audit(row) => Some(convert::audit_active_model(row)),
            _ => None,
        });
        audit_event::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await
            .map_err(Failed::from_db)?;
    }
    Ok(())
}

/// A new booking's mutations, as one batch stages them: its claims, its row, and the
/// ledger entries charging it.
struct Booking<'a> {
    claims: &'a [ClaimRow],
    row: &'a crate::store::ReservationRow,
    ledger: &'a [LedgerRow],
    /// How many mutations these were.
    len: usize,
}

/// The new bookings that start `ms`, one after the other with nothing else between them
/// (claims, then the booking, then maybe its ledger entries), each booking once.
fn booking_run<'a>(ms: &[&'a Mutation]) -> Vec<Booking<'a>> {
    let mut out: Vec<Booking<'a>> = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let mut i = 0;
    while let (Some(Mutation::InsertClaims(claims)), Some(Mutation::UpsertReservation(row))) =
        (ms.get(i), ms.get(i + 1))
    {
        if !ids.insert(row.id.as_str()) || out.len() >= BOOKING_CHUNK {
            break;
        }
        let (ledger, len): (&[LedgerRow], usize) = match ms.get(i + 2) {
            Some(Mutation::InsertLedger(rows)) => (rows, 3),
            _ => (&[], 2),
        };
        out.push(Booking {
            claims,
            row,
            ledger,
            len,
        });
        i += len;
    }
    out
}

/// Writes several new bookings in a few statements: every claim (in device order, so
/// concurrent writers queue rather than deadlock), then every booking, then every ledger
/// entry. Nothing between them depends on their order: claims were checked against the
/// calendar when decided (the database's own check still refuses an overlap, which fails
/// the group), and each booking is written once.
async fn apply_bookings(txn: &DatabaseTransaction, bookings: &[Booking<'_>]) -> Result<(), Failed> {
    let mut claims: Vec<&ClaimRow> = bookings.iter().flat_map(|b| b.claims.iter()).collect();
    claims.sort_by(|a, b| {
        (&a.device_uuid, a.start_ms, a.end_ms).cmp(&(&b.device_uuid, b.start_ms, b.end_ms))
    });
    for part in claims.chunks(CLAIM_INSERT_CHUNK) {
        device_claim::Entity::insert_many(part.iter().map(|c| convert::claim_active_model(c)))
            .exec_without_returning(txn)
            .await
            .map_err(|e| Failed::claims(e, part))?;
    }
    let rows = bookings
        .iter()
        .map(|b| convert::reservation_model(b.row).map(IntoActiveModel::into_active_model))
        .collect::<Result<Vec<_>, StoreError>>()?;
    upsert_many_by(txn, rows, &[reservation::Column::Id])
        .await
        .map_err(Failed::from_db)?;
    let ledger: Vec<&LedgerRow> = bookings.iter().flat_map(|b| b.ledger.iter()).collect();
    for part in ledger.chunks(LEDGER_INSERT_CHUNK) {
        ledger_entry::Entity::insert_many(
            part.iter()
                .map(|r| convert::ledger_model(r).into_active_model()),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|e| Failed::named(e, || ledger_ids(part.iter().copied())))?;
    }
    Ok(())
}

/// The job rows of the upserts that start `ms`, up to [`JOB_UPSERT_CHUNK`] and up to
/// the first job seen twice (one statement may not change a row twice).
fn job_run<'a>(ms: &[&'a Mutation]) -> Vec<&'a crate::store::JobRow> {
    run_of(
        ms,
        |m| match m {
            Mutation::UpsertJob(j) => Some(&**j),
            _ => None,
        },
        |j| j.id.as_str(),
        JOB_UPSERT_CHUNK,
    )
}

/// The device rows of the upserts that start `ms` (a node's inventory as it joins or
/// reports a change), up to [`DEVICE_UPSERT_CHUNK`] and up to the first device seen twice.
fn device_run<'a>(ms: &[&'a Mutation]) -> Vec<&'a crate::store::DeviceRow> {
    run_of(
        ms,
        |m| match m {
            Mutation::UpsertDevice(d) => Some(d),
            _ => None,
        },
        |d| d.uuid.as_str(),
        DEVICE_UPSERT_CHUNK,
    )
}

/// The rows `pick` finds in the mutations that start `ms`, up to `max` and up to the first
/// whose `key` was seen already: the rows one multi-row upsert may write.
fn run_of<'a, T: ?Sized>(
    ms: &[&'a Mutation],
    pick: impl Fn(&'a Mutation) -> Option<&'a T>,
    key: impl Fn(&'a T) -> &'a str,
    max: usize,
) -> Vec<&'a T> {
    let mut keys = std::collections::HashSet::new();
    ms.iter()
        .map_while(|m| pick(m))
        .take_while(|r| keys.insert(key(r)))
        .take(max)
        .collect()
}

async fn apply_one(txn: &DatabaseTransaction, mutation: &Mutation) -> Result<(), Failed> {
    if super::web::apply(txn, mutation)
        .await
        .map_err(Failed::from_db)?
        || super::notify::apply(txn, mutation)
            .await
            .map_err(Failed::from_db)?
    {
        return Ok(());
    }
    match mutation {
        Mutation::InsertSite(row) => {
            site::Entity::insert(convert::site_model(row).into_active_model())
                .exec_without_returning(txn)
                .await
                .map_err(|e| Failed::named(e, || text!(WhatSite, name = ?row.name)))?;
        }
        Mutation::InsertClass(row) => {
            device_class::Entity::insert(convert::class_model(row).into_active_model())
                .exec_without_returning(txn)
                .await
                .map_err(|e| Failed::named(e, || text!(WhatClass, name = ?row.name)))?;
        }
        Mutation::InsertOrg(row) => {
            org::Entity::insert(convert::org_model(row).into_active_model())
                .exec_without_returning(txn)
                .await
                .map_err(|e| Failed::named(e, || text!(WhatOrg, name = ?row.name)))?;
        }
        Mutation::InsertUser(row) => {
            user::Entity::insert(convert::user_model(row).into_active_model())
                .exec_without_returning(txn)
                .await
                .map_err(|e| Failed::named(e, || text!(WhatUser, name = ?row.name)))?;
        }
        Mutation::InsertToken(row) => {
            api_token::Entity::insert(convert::token_model(row).into_active_model())
                .exec_without_returning(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::RevokeToken { id } => {
            api_token::Entity::update_many()
                .col_expr(api_token::Column::Revoked, Expr::value(true))
                .filter(api_token::Column::Id.eq(id.as_str()))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::RevokeNodeCredentials { node } => {
            api_token::Entity::update_many()
                .col_expr(api_token::Column::Revoked, Expr::value(true))
                .filter(api_token::Column::Node.eq(node.as_str()))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::UseJoinToken { id, used_ms } => {
            let result = join_token::Entity::update_many()
                .col_expr(join_token::Column::UsedMs, Expr::value(*used_ms))
                .col_expr(
                    join_token::Column::Uses,
                    Expr::col(join_token::Column::Uses).add(1),
                )
                .filter(join_token::Column::Id.eq(id.as_str()))
                .filter(
                    Expr::col(join_token::Column::Uses).lt(Expr::col(join_token::Column::MaxUses)),
                )
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
            // Two schedulers (or a bug) must never let a token join more than it may.
            if result.rows_affected == 0 {
                return Err(Failed::Final(StoreError::Conflict(format!(
                    "join token {id} was already used up"
                ))));
            }
        }
        Mutation::UpsertDatasetGrant(row) => {
            upsert_by(
                txn,
                convert::dataset_grant_model(row).into_active_model(),
                &[dataset_grant::Column::Org, dataset_grant::Column::Name],
            )
            .await
            .map_err(Failed::from_db)?;
        }
        Mutation::DeleteDatasetGrant { org, name } => {
            dataset_grant::Entity::delete_many()
                .filter(dataset_grant::Column::Org.eq(org.as_str()))
                .filter(dataset_grant::Column::Name.eq(name.as_str()))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::InsertJoinToken(row) => {
            join_token::Entity::insert(convert::join_token_model(row).into_active_model())
                .exec_without_returning(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::UpsertNode(row) => {
            upsert(
                txn,
                convert::node_model(row).into_active_model(),
                node::Column::Name,
            )
            .await
            .map_err(Failed::from_db)?;
        }
        Mutation::UpsertDevice(row) => {
            upsert(
                txn,
                convert::device_model(row).into_active_model(),
                device::Column::Uuid,
            )
            .await
            .map_err(Failed::from_db)?;
        }
        Mutation::UpsertReservation(row) => {
            let am = convert::reservation_model(row)?.into_active_model();
            upsert(txn, am, reservation::Column::Id)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::UpsertJob(row) => {
            let am = convert::job_model(row)?.into_active_model();
            upsert(txn, am, job::Column::Id)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::InsertClaims(claims) => {
            // One row at a time, so an overlap names its device; in a fixed order, so
            // concurrent batches over the same devices queue instead of deadlocking.
            let mut claims: Vec<&ClaimRow> = claims.iter().collect();
            claims.sort_by(|a, b| {
                (&a.device_uuid, a.start_ms, a.end_ms).cmp(&(&b.device_uuid, b.start_ms, b.end_ms))
            });
            for claim in claims {
                device_claim::Entity::insert(convert::claim_active_model(claim))
                    .exec_without_returning(txn)
                    .await
                    .map_err(|e| Failed::claim(e, claim))?;
            }
        }
        Mutation::DeleteClaims { owner_id } => {
            device_claim::Entity::delete_many()
                .filter(device_claim::Column::OwnerId.eq(owner_id.as_str()))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::TruncateClaims { owner_id, end_ms } => {
            device_claim::Entity::delete_many()
                .filter(device_claim::Column::OwnerId.eq(owner_id.as_str()))
                .filter(device_claim::Column::StartMs.gte(*end_ms))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
            device_claim::Entity::update_many()
                .col_expr(device_claim::Column::EndMs, Expr::value(*end_ms))
                .filter(device_claim::Column::OwnerId.eq(owner_id.as_str()))
                .filter(device_claim::Column::EndMs.gt(*end_ms))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::InsertUsage(row) => {
            usage_record::Entity::insert(convert::usage_active_model(row))
                .exec_without_returning(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::Audit(row) => {
            audit_event::Entity::insert(convert::audit_active_model(row))
                .exec_without_returning(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::UpdateOrg(row) => {
            let result = org::Entity::update_many()
                .col_expr(
                    org::Column::Description,
                    Expr::value(row.description.clone()),
                )
                .col_expr(org::Column::Weight, Expr::value(row.weight))
                .col_expr(
                    org::Column::Overage,
                    Expr::value(row.overage.as_str().to_owned()),
                )
                .filter(org::Column::Name.eq(row.name.as_str()))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
            require_row(result.rows_affected, || format!("org \"{}\"", row.name))?;
        }
        Mutation::UpdateClass(row) => {
            let result = device_class::Entity::update_many()
                .col_expr(
                    device_class::Column::Description,
                    Expr::value(row.description.clone()),
                )
                .col_expr(
                    device_class::Column::Vendor,
                    Expr::value(row.vendor.clone()),
                )
                .col_expr(device_class::Column::Rate, Expr::value(row.rate))
                .filter(device_class::Column::Name.eq(row.name.as_str()))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
            require_row(result.rows_affected, || {
                format!("device class \"{}\"", row.name)
            })?;
        }
        Mutation::UpsertBudget(row) => {
            upsert_by(
                txn,
                convert::budget_model(row).into_active_model(),
                &[budget::Column::Org, budget::Column::Class],
            )
            .await
            .map_err(Failed::from_db)?;
        }
        Mutation::DeleteBudget { org, class } => {
            budget::Entity::delete_many()
                .filter(budget::Column::Org.eq(org.as_str()))
                .filter(budget::Column::Class.eq(class.as_str()))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::InsertLedger(rows) => {
            for part in rows.chunks(LEDGER_INSERT_CHUNK) {
                let models = part
                    .iter()
                    .map(|r| convert::ledger_model(r).into_active_model());
                ledger_entry::Entity::insert_many(models)
                    .exec_without_returning(txn)
                    .await
                    .map_err(|e| Failed::named(e, || ledger_ids(part)))?;
            }
        }
        Mutation::UpsertProject(row) => {
            upsert(
                txn,
                convert::project_model(row).into_active_model(),
                project::Column::Id,
            )
            .await
            .map_err(Failed::from_db)?;
            project_grant::Entity::delete_many()
                .filter(project_grant::Column::ProjectId.eq(row.id.as_str()))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
            let grants = convert::project_grant_models(row);
            if !grants.is_empty() {
                project_grant::Entity::insert_many(
                    grants.into_iter().map(|g| g.into_active_model()),
                )
                .exec_without_returning(txn)
                .await
                .map_err(Failed::from_db)?;
            }
        }
        Mutation::SetDefaultProject { user_id, project } => {
            user::Entity::update_many()
                .col_expr(user::Column::DefaultProject, Expr::value(project.clone()))
                .filter(user::Column::Id.eq(user_id.as_str()))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::SetPolicy(row) => {
            upsert(
                txn,
                convert::policy_model(row).into_active_model(),
                scheduler_policy::Column::Id,
            )
            .await
            .map_err(Failed::from_db)?;
        }
        Mutation::UpsertPrice(row) => {
            upsert(
                txn,
                convert::price_model(row).into_active_model(),
                price::Column::Class,
            )
            .await
            .map_err(Failed::from_db)?;
        }
        Mutation::UpsertDiscount(row) => {
            upsert(
                txn,
                convert::discount_model(row).into_active_model(),
                discount::Column::Org,
            )
            .await
            .map_err(Failed::from_db)?;
        }
        Mutation::UpsertInvoice(row) => {
            let am = convert::invoice_model(row)?.into_active_model();
            upsert(txn, am, invoice::Column::Id)
                .await
                .map_err(Failed::from_db)?;
        }
        Mutation::DeleteInvoice { id } => {
            invoice::Entity::delete_many()
                .filter(invoice::Column::Id.eq(id.as_str()))
                .exec(txn)
                .await
                .map_err(Failed::from_db)?;
        }
        // Applied by `web::apply` above.
        Mutation::InsertWebSession(_)
        | Mutation::DeleteWebSession { .. }
        | Mutation::InsertWebLogin(_)
        | Mutation::DeleteWebLogin { .. }
        | Mutation::EndWebSessionsOf { .. }
        | Mutation::PruneWeb { .. }
        | Mutation::SetUserSettings(_) => {}
        // Applied by `notify::apply` above.
        Mutation::SetSubscription(_)
        | Mutation::DeleteSubscription { .. }
        | Mutation::InsertWebhook(_)
        | Mutation::DeleteWebhook { .. }
        | Mutation::InsertNotifications(_)
        | Mutation::UpdateNotification(_) => {}
    }
    Ok(())
}
