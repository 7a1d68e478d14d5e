//! `berth.v1.Projects`.

use super::{Shared, metered};
use crate::auth::caller;
use crate::engine::ProjectAction;
use berth_proto::v1;
use tonic::{Request, Response, Status};

type Reply<T> = Result<Response<T>, Status>;

/// Projects (과제) and their grants.
pub struct ProjectsService(pub Shared);

impl ProjectsService {
    async fn act(
        &self,
        req: Request<v1::ProjectActionRequest>,
        action: ProjectAction,
    ) -> Reply<v1::Project> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let p = self.0.project_action(&c, &r.id, action, &r.reason).await?;
        Ok(Response::new(p))
    }
}

#[tonic::async_trait]
impl v1::projects_server::Projects for ProjectsService {
    async fn list_projects(
        &self,
        req: Request<v1::ListProjectsRequest>,
    ) -> Reply<v1::ListProjectsResponse> {
        let c = caller(&req)?;
        let projects = self.0.list_projects(&c, &req.get_ref().org)?;
        metered(&req, v1::ListProjectsResponse { projects })
    }

    async fn get_project(&self, req: Request<v1::GetProjectRequest>) -> Reply<v1::Project> {
        let c = caller(&req)?;
        Ok(Response::new(self.0.get_project(&c, &req.get_ref().id)?))
    }

    async fn request_project(&self, req: Request<v1::RequestProjectRequest>) -> Reply<v1::Project> {
        let c = caller(&req)?;
        Ok(Response::new(
            self.0.request_project(&c, req.get_ref()).await?,
        ))
    }

    async fn create_project(&self, req: Request<v1::CreateProjectRequest>) -> Reply<v1::Project> {
        let c = caller(&req)?;
        Ok(Response::new(
            self.0.create_project(&c, req.get_ref()).await?,
        ))
    }

    async fn approve_project(&self, req: Request<v1::ProjectActionRequest>) -> Reply<v1::Project> {
        self.act(req, ProjectAction::Approve).await
    }

    async fn revoke_project(&self, req: Request<v1::ProjectActionRequest>) -> Reply<v1::Project> {
        self.act(req, ProjectAction::Revoke).await
    }

    async fn close_project(&self, req: Request<v1::ProjectActionRequest>) -> Reply<v1::Project> {
        self.act(req, ProjectAction::Close).await
    }

    async fn set_default_project(
        &self,
        req: Request<v1::SetDefaultProjectRequest>,
    ) -> Reply<v1::SetDefaultProjectResponse> {
        let c = caller(&req)?;
        let project = self
            .0
            .set_default_project(&c, &req.get_ref().project)
            .await?;
        Ok(Response::new(v1::SetDefaultProjectResponse { project }))
    }
}
