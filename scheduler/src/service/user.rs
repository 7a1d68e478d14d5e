//! Services for users: identity, capacity, reservations, jobs, usage.

use super::{Shared, metered};
use crate::auth::caller;
use crate::convert;
use berth_proto::model;
use berth_proto::v1;
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
        let mut me = self.0.who_am_i(&c);
        if c.require_user().is_ok() {
            me.language = self
                .0
                .user_lang(&c.id)
                .await?
                .map_or_else(String::new, |l| l.code().to_owned());
        }
        Ok(Response::new(me))
    }

    async fn set_language(
        &self,
        req: Request<v1::SetLanguageRequest>,
    ) -> Reply<v1::WhoAmIResponse> {
        let c = caller(&req)?;
        let lang = self.0.set_language(&c, &req.get_ref().language).await?;
        let mut me = self.0.who_am_i(&c);
        me.language = lang.map_or_else(String::new, |l| l.code().to_owned());
        Ok(Response::new(me))
    }

    async fn create_web_login(
        &self,
        req: Request<v1::CreateWebLoginRequest>,
    ) -> Reply<v1::CreateWebLoginResponse> {
        let c = caller(&req)?;
        let (url, expires) = self.0.create_login_link(&c).await?;
        Ok(Response::new(v1::CreateWebLoginResponse {
            url,
            expires_at: Some(berth_proto::time::ms_to_ts(expires)),
        }))
    }
}

#[tonic::async_trait]
impl v1::capacity_server::Capacity for CapacityService {
    async fn list_sites(&self, req: Request<v1::ListSitesRequest>) -> Reply<v1::ListSitesResponse> {
        let c = caller(&req)?;
        Ok(Response::new(v1::ListSitesResponse {
            sites: self.0.list_sites(&c)?,
        }))
    }

    async fn list_classes(
        &self,
        req: Request<v1::ListClassesRequest>,
    ) -> Reply<v1::ListClassesResponse> {
        let c = caller(&req)?;
        Ok(Response::new(v1::ListClassesResponse {
            classes: self.0.list_classes(&c)?,
        }))
    }

    async fn list_nodes(&self, req: Request<v1::ListNodesRequest>) -> Reply<v1::ListNodesResponse> {
        let c = caller(&req)?;
        Ok(Response::new(v1::ListNodesResponse {
            nodes: self.0.list_nodes(&c, &req.get_ref().site)?,
        }))
    }

    async fn availability(
        &self,
        req: Request<v1::AvailabilityRequest>,
    ) -> Reply<v1::AvailabilityResponse> {
        let c = caller(&req)?;
        Ok(Response::new(self.0.availability(&c, req.get_ref())?))
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
        Ok(Response::new(self.0.reservation_views([&*r]).remove(0)))
    }

    async fn list_reservations(
        &self,
        req: Request<v1::ListReservationsRequest>,
    ) -> Reply<v1::ListReservationsResponse> {
        let c = caller(&req)?;
        let page = self.0.list_reservations(&c, req.get_ref()).await?;
        let reply = v1::ListReservationsResponse {
            reservations: self.0.reservation_views(&page.items),
            next_page_token: page.next_page_token,
        };
        metered(&req, reply)
    }

    async fn get_reservation(
        &self,
        req: Request<v1::GetReservationRequest>,
    ) -> Reply<v1::Reservation> {
        let c = caller(&req)?;
        let r = self.0.get_reservation(&c, &req.get_ref().id).await?;
        Ok(Response::new(self.0.reservation_views([&*r]).remove(0)))
    }

    async fn cancel_reservation(
        &self,
        req: Request<v1::CancelReservationRequest>,
    ) -> Reply<v1::Reservation> {
        let c = caller(&req)?;
        let r = self.0.cancel_reservation(&c, &req.get_ref().id).await?;
        Ok(Response::new(self.0.reservation_views([&*r]).remove(0)))
    }
}

type LogStream = Pin<Box<dyn Stream<Item = Result<v1::LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl v1::jobs_server::Jobs for JobsService {
    async fn submit_job(&self, req: Request<v1::SubmitJobRequest>) -> Reply<v1::Job> {
        let c = caller(&req)?;
        let j = self.0.submit_job(&c, req.get_ref()).await?;
        Ok(Response::new(j.to_proto()))
    }

    /// Over the wire `ListJobs` is answered by [`super::JobsRoutes`], which writes the
    /// same page without building these messages; this serves callers in this process.
    async fn list_jobs(&self, req: Request<v1::ListJobsRequest>) -> Reply<v1::ListJobsResponse> {
        let c = caller(&req)?;
        let page = super::JobsPage::new(self.0.list_jobs(&c, req.get_ref()).await?);
        metered(&req, page.to_proto())
    }

    async fn get_job(&self, req: Request<v1::GetJobRequest>) -> Reply<v1::Job> {
        let c = caller(&req)?;
        let j = self.0.get_job(&c, &req.get_ref().id).await?;
        Ok(Response::new(j.to_proto()))
    }

    async fn cancel_job(&self, req: Request<v1::CancelJobRequest>) -> Reply<v1::Job> {
        let c = caller(&req)?;
        let j = self.0.cancel_job(&c, &req.get_ref().id).await?;
        Ok(Response::new(j.to_proto()))
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
        let place = self.0.logs.admit(&c.id)?;
        let after = crate::logs::Resume::new(r.after_seq, &r.after_part_seqs);
        let rx = crate::logs::follow(self.0.clone(), c, id, after, r.follow, place);
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

#[tonic::async_trait]
impl v1::usage_server::Usage for UsageService {
    async fn get_usage(&self, req: Request<v1::GetUsageRequest>) -> Reply<v1::GetUsageResponse> {
        let c = caller(&req)?;
        let reply = self.0.usage(&c, req.get_ref()).await?;
        metered(&req, reply)
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
        let page = self.0.list_ledger(&c, req.get_ref()).await?;
        let reply = v1::ListLedgerResponse {
            entries: page.items.iter().map(convert::ledger_entry).collect(),
            next_page_token: page.next_page_token,
        };
        metered(&req, reply)
    }
}
