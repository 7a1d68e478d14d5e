//! Services for users: identity, capacity, reservations, jobs, usage.

use super::Shared;
use crate::auth::caller;
use crate::convert;
use crate::error::Error;
use berth_proto::model;
use berth_proto::time::{HOUR_MS, dur_to_ms, ms_to_ts, now_ms, ts_to_ms};
use berth_proto::v1;
use std::collections::BTreeMap;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

type Reply<T> = Result<Response<T>, Status>;

/// `berth.v1.Identity`.
pub struct IdentityService(pub Shared);
/// `berth.v1.Capacity`.
pub struct CapacityService(pub Shared);
/// `berth.v1.Reservations`.
pub struct ReservationsService(pub Shared);
/// `berth.v1.Jobs`.
pub struct JobsService(pub Shared);
/// `berth.v1.Usage`.
pub struct UsageService(pub Shared);

#[tonic::async_trait]
impl v1::identity_server::Identity for IdentityService {
    async fn who_am_i(&self, req: Request<v1::WhoAmIRequest>) -> Reply<v1::WhoAmIResponse> {
        let c = caller(&req)?;
        let state = self.0.lock().await;
        let user = state
            .user_by_id(&c.id)
            .map(convert::user)
            .unwrap_or(v1::User {
                id: c.id.clone(),
                name: c.name.clone(),
                org: c.org.clone(),
                role: c.role.to_proto() as i32,
                created_at: None,
            });
        Ok(Response::new(v1::WhoAmIResponse {
            user: Some(user),
            node: c.node.clone().unwrap_or_default(),
            token_expires_at: Some(ms_to_ts(c.expires_ms)),
        }))
    }
}

#[tonic::async_trait]
impl v1::capacity_server::Capacity for CapacityService {
    async fn list_sites(&self, req: Request<v1::ListSitesRequest>) -> Reply<v1::ListSitesResponse> {
        caller(&req)?.require_user()?;
        let state = self.0.lock().await;
        Ok(Response::new(v1::ListSitesResponse {
            sites: state.sites.values().map(convert::site).collect(),
        }))
    }

    async fn list_classes(
        &self,
        req: Request<v1::ListClassesRequest>,
    ) -> Reply<v1::ListClassesResponse> {
        caller(&req)?.require_user()?;
        let state = self.0.lock().await;
        let classes = state
            .classes
            .values()
            .map(|c| {
                let (total, schedulable) = state.cluster.class_counts(&c.name);
                convert::class(c, total, schedulable)
            })
            .collect();
        Ok(Response::new(v1::ListClassesResponse { classes }))
    }

    async fn list_nodes(&self, req: Request<v1::ListNodesRequest>) -> Reply<v1::ListNodesResponse> {
        caller(&req)?.require_user()?;
        let site = model::optional_name("site", &req.get_ref().site)?;
        let state = self.0.lock().await;
        let nodes = state
            .nodes
            .values()
            .filter(|n| site.as_ref().is_none_or(|s| *s == n.row.site))
            .map(|n| {
                let mut devices: Vec<_> = state
                    .devices
                    .values()
                    .filter(|d| d.row.node == n.row.name)
                    .map(convert::device)
                    .collect();
                devices.sort_by_key(|d| d.index);
                convert::node(n, devices)
            })
            .collect();
        Ok(Response::new(v1::ListNodesResponse { nodes }))
    }

    async fn availability(
        &self,
        req: Request<v1::AvailabilityRequest>,
    ) -> Reply<v1::AvailabilityResponse> {
        caller(&req)?.require_user()?;
        let r = req.get_ref();
        let class = model::name("class", &r.class)?;
        let site = model::optional_name("site", &r.site)?;
        let now = now_ms();
        let from = r.from.as_ref().map_or(now, ts_to_ms);
        let to = r.to.as_ref().map_or(from + 24 * HOUR_MS, ts_to_ms);
        let step = r.step.as_ref().map_or(HOUR_MS, dur_to_ms);
        if step <= 0 {
            return Err(Error::field("step", "must be positive").into());
        }
        if to <= from {
            return Err(Error::field("to", "must be after from").into());
        }
        if (to - from) / step > 1000 {
            return Err(Error::field(
                "step",
                "the range would have more than 1000 buckets; use a larger step",
            )
            .into());
        }
        let state = self.0.lock().await;
        crate::engine::check_class(&state.classes, &class)?;
        let slots = state
            .cluster
            .availability(&class, site.as_deref(), from, to, step)
            .map_err(crate::engine::refusal)?;
        Ok(Response::new(v1::AvailabilityResponse {
            class,
            slots: slots
                .into_iter()
                .map(|s| v1::AvailabilitySlot {
                    start: Some(ms_to_ts(s.start)),
                    end: Some(ms_to_ts(s.end)),
                    free: s.free,
                    total: s.total,
                })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl v1::reservations_server::Reservations for ReservationsService {
    async fn create_reservation(
        &self,
        req: Request<v1::CreateReservationRequest>,
    ) -> Reply<v1::Reservation> {
        let c = caller(&req)?;
        let r = self.0.create_reservation(&c, req.get_ref()).await?;
        Ok(Response::new(
            self.0.reservation_views(&[r]).await.remove(0),
        ))
    }

    async fn list_reservations(
        &self,
        req: Request<v1::ListReservationsRequest>,
    ) -> Reply<v1::ListReservationsResponse> {
        let c = caller(&req)?;
        let rows = self.0.list_reservations(&c, req.get_ref().all).await?;
        Ok(Response::new(v1::ListReservationsResponse {
            reservations: self.0.reservation_views(&rows).await,
        }))
    }

    async fn get_reservation(
        &self,
        req: Request<v1::GetReservationRequest>,
    ) -> Reply<v1::Reservation> {
        let c = caller(&req)?;
        let r = self.0.get_reservation(&c, &req.get_ref().id).await?;
        Ok(Response::new(
            self.0.reservation_views(&[r]).await.remove(0),
        ))
    }

    async fn cancel_reservation(
        &self,
        req: Request<v1::CancelReservationRequest>,
    ) -> Reply<v1::Reservation> {
        let c = caller(&req)?;
        let r = self.0.cancel_reservation(&c, &req.get_ref().id).await?;
        Ok(Response::new(
            self.0.reservation_views(&[r]).await.remove(0),
        ))
    }
}

type LogStream = Pin<Box<dyn Stream<Item = Result<v1::LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl v1::jobs_server::Jobs for JobsService {
    async fn submit_job(&self, req: Request<v1::SubmitJobRequest>) -> Reply<v1::Job> {
        let c = caller(&req)?;
        let j = self.0.submit_job(&c, req.get_ref()).await?;
        Ok(Response::new(convert::job(&j)))
    }

    async fn list_jobs(&self, req: Request<v1::ListJobsRequest>) -> Reply<v1::ListJobsResponse> {
        let c = caller(&req)?;
        let jobs = self.0.list_jobs(&c, req.get_ref().all).await?;
        Ok(Response::new(v1::ListJobsResponse {
            jobs: jobs.iter().map(convert::job).collect(),
        }))
    }

    async fn get_job(&self, req: Request<v1::GetJobRequest>) -> Reply<v1::Job> {
        let c = caller(&req)?;
        let j = self.0.get_job(&c, &req.get_ref().id).await?;
        Ok(Response::new(convert::job(&j)))
    }

    async fn cancel_job(&self, req: Request<v1::CancelJobRequest>) -> Reply<v1::Job> {
        let c = caller(&req)?;
        let j = self.0.cancel_job(&c, &req.get_ref().id).await?;
        Ok(Response::new(convert::job(&j)))
    }

    type StreamLogsStream = LogStream;

    async fn stream_logs(
        &self,
        req: Request<v1::StreamLogsRequest>,
    ) -> Reply<Self::StreamLogsStream> {
        let c = caller(&req)?;
        c.require_user()?;
        let r = req.into_inner();
        let id = model::id("job_id", &r.job_id)?;
        // Visibility check first: another org's job is "not found".
        self.0.get_job(&c, &id).await?;
        let after = crate::logs::Resume::new(r.after_seq, &r.after_part_seqs);
        let rx = crate::logs::follow(self.0.clone(), c, id, after, r.follow);
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

#[tonic::async_trait]
impl v1::usage_server::Usage for UsageService {
    async fn get_usage(&self, req: Request<v1::GetUsageRequest>) -> Reply<v1::GetUsageResponse> {
        let c = caller(&req)?;
        c.require_user()?;
        let r = req.get_ref();
        let asked = model::optional_name("org", &r.org)?;
        let org = match (c.is_admin(), asked) {
            (true, org) => org,
            (false, Some(o)) if o != c.org => {
                return Err(Error::NotFound(format!("org {o:?}")).into());
            }
            (false, _) => Some(c.org.clone()),
        };
        let now = now_ms();
        let from = r.from.as_ref().map_or(now - 30 * 24 * HOUR_MS, ts_to_ms);
        let to = r.to.as_ref().map_or(now + HOUR_MS, ts_to_ms);
        if to <= from {
            return Err(Error::field("to", "must be after from").into());
        }
        let mut rows = self
            .0
            .store
            .list_usage(org.as_deref(), from, to)
            .await
            .map_err(Error::from)?;
        let state = self.0.lock().await;
        // Bookings are charged when confirmed: live ones count for their whole window
        // (their final record replaces this when they end).
        let mut live: Vec<_> = state
            .reservations
            .values()
            .filter(|r| org.as_ref().is_none_or(|o| *o == r.org))
            .filter(|r| r.start_ms < to && r.end_ms > from)
            .map(|r| crate::engine::reservation_usage(r, r.end_ms))
            .collect();
        live.sort_by_key(|u| u.start_ms);
        rows.extend(live);
        let mut totals: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
        let records = rows
            .iter()
            .map(|u| {
                let rec = convert::usage(
                    u,
                    state.user_by_id(&u.user_id).map_or("", |x| x.name.as_str()),
                );
                let t = totals.entry((u.org.clone(), u.class.clone())).or_default();
                match u.kind {
                    crate::store::OwnerKind::Reservation => t.0 += rec.device_hours,
                    crate::store::OwnerKind::Job => t.1 += rec.device_hours,
                }
                rec
            })
            .collect();
        Ok(Response::new(v1::GetUsageResponse {
            records,
            totals: totals
                .into_iter()
                .map(|((org, class), (reserved, jobs))| v1::UsageTotal {
                    org,
                    class,
                    reserved_device_hours: reserved,
                    job_device_hours: jobs,
                })
                .collect(),
            budgets: crate::engine::Engine::budget_views(&state, org.as_deref(), now),
        }))
    }

    async fn list_budgets(
        &self,
        req: Request<v1::ListBudgetsRequest>,
    ) -> Reply<v1::ListBudgetsResponse> {
        let c = caller(&req)?;
        let budgets = self.0.list_budgets(&c, &req.get_ref().org).await?;
        Ok(Response::new(v1::ListBudgetsResponse { budgets }))
    }

    async fn list_ledger(
        &self,
        req: Request<v1::ListLedgerRequest>,
    ) -> Reply<v1::ListLedgerResponse> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let rows = self
            .0
            .list_ledger(
                &c,
                &r.org,
                r.from.as_ref().map(ts_to_ms),
                r.to.as_ref().map(ts_to_ms),
            )
            .await?;
        Ok(Response::new(v1::ListLedgerResponse {
            entries: rows.iter().map(convert::ledger_entry).collect(),
        }))
    }
}
