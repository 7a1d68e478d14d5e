//! `berth.v1.Admin`.

use super::{Shared, metered};
use crate::auth::caller;
use crate::convert;
use crate::store::Overage;
use berth_proto::time::{dur_to_ms, ms_to_ts};
use berth_proto::v1;
use tonic::{Request, Response, Status};

type Reply<T> = Result<Response<T>, Status>;

/// Centre administration.
pub struct AdminService(pub Shared);

#[tonic::async_trait]
impl v1::admin_server::Admin for AdminService {
    async fn create_site(&self, req: Request<v1::CreateSiteRequest>) -> Reply<v1::Site> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let row = self.0.create_site(&c, &r.name, &r.description).await?;
        Ok(Response::new(convert::site(&row)))
    }

    async fn create_class(&self, req: Request<v1::CreateClassRequest>) -> Reply<v1::DeviceClass> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let row = self
            .0
            .create_class(&c, &r.name, &r.description, &r.vendor)
            .await?;
        Ok(Response::new(convert::class(&row, 0, 0)))
    }

    async fn create_org(&self, req: Request<v1::CreateOrgRequest>) -> Reply<v1::Org> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let row = self.0.create_org(&c, &r.name, &r.description).await?;
        Ok(Response::new(convert::org(&row)))
    }

    async fn list_orgs(&self, req: Request<v1::ListOrgsRequest>) -> Reply<v1::ListOrgsResponse> {
        let c = caller(&req)?;
        let rows = self.0.list_orgs(&c).await?;
        Ok(Response::new(v1::ListOrgsResponse {
            orgs: rows.iter().map(convert::org).collect(),
        }))
    }

    async fn create_user(
        &self,
        req: Request<v1::CreateUserRequest>,
    ) -> Reply<v1::CreateUserResponse> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let (user, issued) = self.0.create_user(&c, &r.org, &r.name, r.role).await?;
        Ok(Response::new(v1::CreateUserResponse {
            user: Some(convert::user(&user)),
            token: issued.token,
            token_id: issued.row.id,
            token_expires_at: Some(ms_to_ts(issued.row.expires_ms)),
        }))
    }

    async fn list_users(&self, req: Request<v1::ListUsersRequest>) -> Reply<v1::ListUsersResponse> {
        let c = caller(&req)?;
        let rows = self.0.list_users(&c, &req.get_ref().org).await?;
        Ok(Response::new(v1::ListUsersResponse {
            users: rows.iter().map(convert::user).collect(),
        }))
    }

    async fn create_token(
        &self,
        req: Request<v1::CreateTokenRequest>,
    ) -> Reply<v1::CreateTokenResponse> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let issued = self
            .0
            .create_token(&c, &r.user, &r.org, r.ttl.as_ref().map(dur_to_ms))
            .await?;
        Ok(Response::new(v1::CreateTokenResponse {
            token: issued.token,
            token_id: issued.row.id,
            expires_at: Some(ms_to_ts(issued.row.expires_ms)),
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<v1::RevokeTokenRequest>,
    ) -> Reply<v1::RevokeTokenResponse> {
        let c = caller(&req)?;
        self.0.revoke_token(&c, &req.get_ref().token_id).await?;
        Ok(Response::new(v1::RevokeTokenResponse {}))
    }

    async fn create_join_token(
        &self,
        req: Request<v1::CreateJoinTokenRequest>,
    ) -> Reply<v1::CreateJoinTokenResponse> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let (token, expires, uses) = self
            .0
            .create_join_token(&c, r.ttl.as_ref().map(dur_to_ms), &r.node, r.uses)
            .await?;
        Ok(Response::new(v1::CreateJoinTokenResponse {
            token,
            expires_at: Some(ms_to_ts(expires)),
            node: r.node.clone(),
            uses,
        }))
    }

    async fn rejoin_node(&self, req: Request<v1::RejoinNodeRequest>) -> Reply<v1::Node> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let row = self
            .0
            .rejoin_node(&c, &r.node, r.ttl.as_ref().map(dur_to_ms))
            .await?;
        Ok(Response::new(self.0.node_view(&row.name)?))
    }

    async fn list_credentials(
        &self,
        req: Request<v1::ListCredentialsRequest>,
    ) -> Reply<v1::ListCredentialsResponse> {
        let c = caller(&req)?;
        let rows = self.0.list_credentials(&c, req.get_ref()).await?;
        Ok(Response::new(v1::ListCredentialsResponse {
            credentials: rows
                .iter()
                .map(|(t, u)| convert::credential(t, u.as_ref()))
                .collect(),
        }))
    }

    async fn grant_dataset(
        &self,
        req: Request<v1::GrantDatasetRequest>,
    ) -> Reply<v1::DatasetGrant> {
        let c = caller(&req)?;
        let g = self.0.grant_dataset(&c, req.get_ref()).await?;
        Ok(Response::new(v1::DatasetGrant {
            org: g.org,
            name: g.name,
            read_write: g.read_write,
            created_at: Some(ms_to_ts(g.created_ms)),
        }))
    }

    async fn revoke_dataset(
        &self,
        req: Request<v1::RevokeDatasetRequest>,
    ) -> Reply<v1::RevokeDatasetResponse> {
        let c = caller(&req)?;
        let r = req.get_ref();
        self.0.revoke_dataset(&c, &r.org, &r.name).await?;
        Ok(Response::new(v1::RevokeDatasetResponse {}))
    }

    async fn list_dataset_grants(
        &self,
        req: Request<v1::ListDatasetGrantsRequest>,
    ) -> Reply<v1::ListDatasetGrantsResponse> {
        let c = caller(&req)?;
        let grants = self
            .0
            .list_dataset_grants(&c, &req.get_ref().org)?
            .into_iter()
            .map(|(org, name, read_write)| v1::DatasetGrant {
                org,
                name,
                read_write,
                created_at: None,
            })
            .collect();
        Ok(Response::new(v1::ListDatasetGrantsResponse { grants }))
    }

    async fn clear_device(&self, req: Request<v1::ClearDeviceRequest>) -> Reply<v1::Device> {
        let c = caller(&req)?;
        let d = self.0.clear_device(&c, &req.get_ref().uuid).await?;
        let sample = self.0.observed.sample(&d.row.uuid);
        Ok(Response::new(convert::device(&d, sample)))
    }

    async fn drain_node(&self, req: Request<v1::DrainNodeRequest>) -> Reply<v1::Node> {
        let c = caller(&req)?;
        let row = self.0.set_drain(&c, &req.get_ref().node, true).await?;
        Ok(Response::new(self.0.node_view(&row.name)?))
    }

    async fn undrain_node(&self, req: Request<v1::UndrainNodeRequest>) -> Reply<v1::Node> {
        let c = caller(&req)?;
        let row = self.0.set_drain(&c, &req.get_ref().node, false).await?;
        Ok(Response::new(self.0.node_view(&row.name)?))
    }

    async fn mark_node_down(&self, req: Request<v1::MarkNodeDownRequest>) -> Reply<v1::Node> {
        let c = caller(&req)?;
        let row = self.0.mark_down(&c, &req.get_ref().node).await?;
        Ok(Response::new(self.0.node_view(&row.name)?))
    }

    async fn list_audit(&self, req: Request<v1::ListAuditRequest>) -> Reply<v1::ListAuditResponse> {
        let c = caller(&req)?;
        let page = self.0.list_audit(&c, req.get_ref()).await?;
        let reply = v1::ListAuditResponse {
            events: page.items.iter().map(convert::audit).collect(),
            next_page_token: page.next_page_token,
        };
        metered(&req, reply)
    }

    async fn set_budget(&self, req: Request<v1::SetBudgetRequest>) -> Reply<v1::Budget> {
        let c = caller(&req)?;
        Ok(Response::new(self.0.set_budget(&c, req.get_ref()).await?))
    }

    async fn delete_budget(
        &self,
        req: Request<v1::DeleteBudgetRequest>,
    ) -> Reply<v1::DeleteBudgetResponse> {
        let c = caller(&req)?;
        let r = req.get_ref();
        self.0.delete_budget(&c, &r.org, &r.class).await?;
        Ok(Response::new(v1::DeleteBudgetResponse {}))
    }

    async fn top_up_budget(&self, req: Request<v1::TopUpBudgetRequest>) -> Reply<v1::Budget> {
        let c = caller(&req)?;
        Ok(Response::new(
            self.0.top_up_budget(&c, req.get_ref()).await?,
        ))
    }

    async fn set_org_weight(&self, req: Request<v1::SetOrgWeightRequest>) -> Reply<v1::Org> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let row = self.0.set_org_weight(&c, &r.org, r.weight).await?;
        Ok(Response::new(convert::org(&row)))
    }

    async fn set_org_overage(&self, req: Request<v1::SetOrgOverageRequest>) -> Reply<v1::Org> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let overage = match v1::Overage::try_from(r.overage) {
            Ok(v1::Overage::Allow) => Overage::Allow,
            Ok(v1::Overage::Deny) => Overage::Deny,
            _ => {
                return Err(crate::error::Error::field(
                    "overage",
                    berth_i18n::text!(NotAnOverage, value = r.overage),
                )
                .into());
            }
        };
        let row = self.0.set_org_overage(&c, &r.org, overage).await?;
        Ok(Response::new(convert::org(&row)))
    }

    async fn set_class_rate(
        &self,
        req: Request<v1::SetClassRateRequest>,
    ) -> Reply<v1::DeviceClass> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let (row, total, schedulable) = self.0.set_class_rate(&c, &r.class, r.rate).await?;
        Ok(Response::new(convert::class(&row, total, schedulable)))
    }

    async fn get_policy(&self, req: Request<v1::GetPolicyRequest>) -> Reply<v1::SchedulingPolicy> {
        let c = caller(&req)?;
        Ok(Response::new(self.0.get_policy(&c).await?))
    }

    async fn set_policy(&self, req: Request<v1::SetPolicyRequest>) -> Reply<v1::SchedulingPolicy> {
        let c = caller(&req)?;
        Ok(Response::new(self.0.set_policy(&c, req.get_ref()).await?))
    }

    async fn get_status(&self, req: Request<v1::GetStatusRequest>) -> Reply<v1::SchedulerStatus> {
        let c = caller(&req)?;
        let status = self.0.status(&c).await?;
        Ok(Response::new(convert::scheduler_status(
            &status,
            &self.0.leadership().seen(),
        )))
    }

    async fn get_retention(&self, req: Request<v1::GetRetentionRequest>) -> Reply<v1::Retention> {
        let c = caller(&req)?;
        Ok(Response::new(self.0.get_retention(&c).await?))
    }

    async fn set_retention(&self, req: Request<v1::SetRetentionRequest>) -> Reply<v1::Retention> {
        let c = caller(&req)?;
        Ok(Response::new(
            self.0.set_retention(&c, req.get_ref()).await?,
        ))
    }
}
