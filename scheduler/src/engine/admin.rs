//! Centre administration: sites, classes, orgs, users, tokens, node drains.

use super::stage::{Ending, finish_job};
use super::{Engine, audit, now};
use crate::auth::{self, Caller, Issued};
use crate::error::{Error, Result};
use crate::state::DeviceEntry;
use crate::store::{
    AuditRow, ClassRow, Health, JoinTokenRow, Mutation, NodeRow, NodeState, OrgRow, SiteRow,
    UserRow,
};
use berth_proto::model::{self, Role};

/// The org that holds the bootstrap admin.
pub const CENTRE_ORG: &str = "centre";
/// The bootstrap admin's user name.
pub const BOOTSTRAP_ADMIN: &str = "admin";

impl Engine {
    /// Creates a site (admin).
    pub async fn create_site(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
    ) -> Result<SiteRow> {
        caller.require_admin()?;
        let name = model::name("name", name)?;
        let row = SiteRow {
            name: name.clone(),
            description: description.to_owned(),
            created_ms: now(),
        };
        self.commit(|tx| {
            if tx.state().sites.contains_key(&name) {
                return Err(Error::AlreadyExists(format!("site {name:?}")));
            }
            tx.push(Mutation::InsertSite(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "site.create",
                &name,
                row.created_ms,
                "ok",
            )));
            Ok(())
        })
        .await?;
        Ok(row)
    }

    /// Creates a device class (admin).
    pub async fn create_class(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
        vendor: &str,
    ) -> Result<ClassRow> {
        caller.require_admin()?;
        let name = model::name("name", name)?;
        let row = ClassRow {
            name: name.clone(),
            description: description.to_owned(),
            vendor: vendor.to_owned(),
            created_ms: now(),
            rate: 1.0,
        };
        self.commit(|tx| {
            if tx.state().classes.contains_key(&name) {
                return Err(Error::AlreadyExists(format!("device class {name:?}")));
            }
            tx.push(Mutation::InsertClass(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "class.create",
                &name,
                row.created_ms,
                "ok",
            )));
            Ok(())
        })
        .await?;
        Ok(row)
    }

    /// Creates an org (admin).
    pub async fn create_org(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
    ) -> Result<OrgRow> {
        caller.require_admin()?;
        let name = model::name("name", name)?;
        let row = OrgRow {
            name: name.clone(),
            description: description.to_owned(),
            created_ms: now(),
            weight: 1.0,
        };
        self.commit(|tx| {
            if tx.state().orgs.contains_key(&name) {
                return Err(Error::AlreadyExists(format!("org {name:?}")));
            }
            tx.push(Mutation::InsertOrg(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "org.create",
                &name,
                row.created_ms,
                "ok",
            )));
            Ok(())
        })
        .await?;
        Ok(row)
    }

    /// Orgs the caller may see.
    pub async fn list_orgs(&self, caller: &Caller) -> Result<Vec<OrgRow>> {
        caller.require_user()?;
        let state = self.view();
        Ok(state
            .orgs
            .values()
            .filter(|o| caller.can_see_org(&o.name))
            .cloned()
            .collect())
    }

    /// Creates a user and their first API token. Admins create anyone; org-admins create
    /// users and org-admins of their own org.
    pub async fn create_user(
        &self,
        caller: &Caller,
        org: &str,
        name: &str,
        role: i32,
    ) -> Result<(UserRow, Issued)> {
        caller.require_user()?;
        let org = model::name("org", org)?;
        let name = model::name("name", name)?;
        let role = model::role("role", role, Role::User)?;
        let allowed = caller.is_admin()
            || (caller.role == Role::OrgAdmin && caller.org == org && role != Role::Admin);
        if !allowed {
            return Err(Error::PermissionDenied(format!(
                "a {} may not create {role} users in org {org:?}",
                caller.role
            )));
        }
        let t = now();
        let user = UserRow {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.clone(),
            org: org.clone(),
            role,
            created_ms: t,
        };
        let issued = auth::issue(&self.keys, Some(&user), None, t, self.policy.token_ttl_ms)?;
        let token = issued.row.clone();
        self.commit(|tx| {
            let state = tx.state();
            if !state.orgs.contains_key(&org) {
                return Err(Error::NotFound(format!("org {org:?}")));
            }
            if state.users.contains_key(&name) {
                return Err(Error::AlreadyExists(format!("user {name:?}")));
            }
            tx.push(Mutation::InsertUser(user.clone()));
            tx.push(Mutation::InsertToken(token));
            tx.push(Mutation::Audit(audit(
                caller,
                "user.create",
                &format!("{name} ({role})"),
                t,
                "ok",
            )));
            Ok(())
        })
        .await?;
        Ok((user, issued))
    }

    /// Users the caller may see, optionally of one org.
    pub async fn list_users(&self, caller: &Caller, org: &str) -> Result<Vec<UserRow>> {
        let org = super::views::scoped_org(caller, org)?;
        Ok(self.store.list_users(org.as_deref()).await?)
    }

    /// Issues a new API token for a user. Users may issue their own; org-admins for their
    /// org's users; admins for anyone.
    pub async fn create_token(
        &self,
        caller: &Caller,
        user: &str,
        ttl_ms: Option<i64>,
    ) -> Result<Issued> {
        caller.require_user()?;
        let user_name = model::name("user", user)?;
        let ttl = ttl_ms.unwrap_or(self.policy.token_ttl_ms);
        if ttl <= 0 || ttl > 2 * 365 * berth_proto::time::HOUR_MS * 24 {
            return Err(Error::field(
                "ttl",
                "must be positive and at most two years",
            ));
        }
        let t = now();
        self.commit(|tx| {
            let user = tx
                .state()
                .users
                .get(&user_name)
                .filter(|u| caller.can_see_org(&u.org))
                .cloned()
                .ok_or_else(|| Error::NotFound(format!("user {user_name:?}")))?;
            if !caller.can_modify(&user.org, &user.id) {
                return Err(Error::PermissionDenied(format!(
                    "you may not issue tokens for {user_name:?}"
                )));
            }
            let issued = auth::issue(&self.keys, Some(&user), None, t, ttl)?;
            tx.push(Mutation::InsertToken(issued.row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "token.create",
                &format!("{user_name} {}", issued.row.id),
                t,
                "ok",
            )));
            Ok(issued)
        })
        .await
    }

    /// Revokes a token (admin, or the token's own user).
    pub async fn revoke_token(&self, caller: &Caller, token_id: &str) -> Result<()> {
        let token_id = model::id("token_id", token_id)?;
        let owner = {
            let index = self.auth.read().unwrap_or_else(|e| e.into_inner());
            index.token_owner(&token_id)
        };
        let Some(owner) = owner else {
            return Err(Error::NotFound(format!("token {token_id}")));
        };
        if !(caller.is_admin() || owner.as_deref() == Some(caller.id.as_str())) {
            return Err(Error::NotFound(format!("token {token_id}")));
        }
        self.commit(|tx| {
            tx.push(Mutation::RevokeToken {
                id: token_id.clone(),
            });
            tx.push(Mutation::Audit(audit(
                caller,
                "token.revoke",
                &token_id,
                now(),
                "ok",
            )));
            Ok(())
        })
        .await
    }

    /// Creates a join token for agents (admin).
    pub async fn create_join_token(
        &self,
        caller: &Caller,
        ttl_ms: Option<i64>,
    ) -> Result<(String, i64)> {
        caller.require_admin()?;
        let ttl = ttl_ms.unwrap_or(self.policy.join_token_ttl_ms);
        if ttl <= 0 || ttl > 7 * 24 * berth_proto::time::HOUR_MS {
            return Err(Error::field("ttl", "must be positive and at most 7 days"));
        }
        let secret = auth::random_secret("berth-join-");
        let t = now();
        let row = JoinTokenRow {
            id: uuid::Uuid::new_v4().to_string(),
            hash: auth::hash_secret(&secret),
            created_by: caller.name.clone(),
            created_ms: t,
            expires_ms: t + ttl,
        };
        let expires = row.expires_ms;
        self.commit(|tx| {
            let id = row.id.clone();
            tx.push(Mutation::InsertJoinToken(row));
            tx.push(Mutation::Audit(audit(
                caller,
                "join-token.create",
                &id,
                t,
                "ok",
            )));
            Ok(())
        })
        .await?;
        Ok((secret, expires))
    }

    /// Returns a quarantined device to service (admin).
    pub async fn clear_device(&self, caller: &Caller, uuid: &str) -> Result<DeviceEntry> {
        caller.require_admin()?;
        if uuid.is_empty() {
            return Err(Error::field("uuid", "must not be empty"));
        }
        let t = now();
        let entry = self
            .commit(|tx| {
                let entry = tx
                    .state()
                    .devices
                    .get(uuid)
                    .cloned()
                    .ok_or_else(|| Error::NotFound(format!("device {uuid}")))?;
                if entry.row.health != Health::Failed {
                    return Err(Error::FailedPrecondition(format!(
                        "device {uuid} is not quarantined"
                    )));
                }
                let mut row = entry.row.clone();
                row.health = Health::Healthy;
                row.health_reason = format!(
                    "cleared by {} (was: {})",
                    caller.name, entry.row.health_reason
                );
                row.updated_ms = t;
                tx.push(Mutation::UpsertDevice(row.clone()));
                tx.push(Mutation::Audit(audit(
                    caller,
                    "device.clear",
                    uuid,
                    t,
                    "ok",
                )));
                Ok(DeviceEntry { row })
            })
            .await?;
        self.kick();
        Ok(entry)
    }

    /// Drains (`drain = true`) or undrains a node (admin).
    pub async fn set_drain(&self, caller: &Caller, node: &str, drain: bool) -> Result<NodeRow> {
        caller.require_admin()?;
        let node = model::name("node", node)?;
        let row = self
            .commit(|tx| {
                let entry = tx
                    .state()
                    .nodes
                    .get(&node)
                    .ok_or_else(|| Error::NotFound(format!("node {node:?}")))?;
                let mut row = entry.row.clone();
                row.state = match (drain, row.state) {
                    (true, NodeState::Ready) => NodeState::Draining,
                    (true, s @ (NodeState::Draining | NodeState::Drained)) => s,
                    (false, NodeState::Draining | NodeState::Drained | NodeState::Ready) => {
                        NodeState::Ready
                    }
                    (_, s) => {
                        return Err(Error::FailedPrecondition(format!(
                            "node {node:?} is {s}; it cannot be changed now"
                        )));
                    }
                };
                let action = if drain { "node.drain" } else { "node.undrain" };
                tx.push(Mutation::UpsertNode(row.clone()));
                tx.push(Mutation::Audit(audit(caller, action, &node, now(), "ok")));
                Ok(row)
            })
            .await?;
        self.kick();
        Ok(row)
    }

    /// Declares a node down (admin): its placed jobs end as lost now, releasing their
    /// claims, and nothing new is placed on it until it is undrained. One batch.
    pub async fn mark_down(&self, caller: &Caller, node: &str) -> Result<NodeRow> {
        caller.require_admin()?;
        let node = model::name("node", node)?;
        let t = now();
        let row = self
            .commit(|tx| {
                let mut row = tx
                    .state()
                    .nodes
                    .get(&node)
                    .ok_or_else(|| Error::NotFound(format!("node {node:?}")))?
                    .row
                    .clone();
                row.state = NodeState::Down;
                tx.push(Mutation::UpsertNode(row.clone()));
                tx.push(Mutation::Audit(audit(caller, "node.down", &node, t, "ok")));
                let mut jobs: Vec<String> = tx
                    .state()
                    .placed_jobs_on(&node)
                    .map(|j| j.row.id.clone())
                    .collect();
                jobs.sort();
                let why = format!("node {node} was declared down by {}", caller.name);
                for id in jobs {
                    finish_job(tx, &id, Ending::Lost(why.clone()), None, t);
                }
                Ok(tx.state().nodes.get(&node).map_or(row, |n| n.row.clone()))
            })
            .await?;
        self.kick();
        Ok(row)
    }

    /// Makes sure a centre admin exists and returns a fresh token for it when `existing`
    /// is not a valid token. Used by `--bootstrap-admin-token-file`.
    pub async fn bootstrap_admin(&self, existing: Option<&str>) -> Result<Option<String>> {
        let t = now();
        if let Some(token) = existing {
            let index = self.auth.read().unwrap_or_else(|e| e.into_inner());
            if index
                .verify(&self.keys, token, t)
                .is_ok_and(|c| c.is_admin())
            {
                return Ok(None);
            }
        }
        let issued = self
            .commit(|tx| {
                let state = tx.state();
                let new_org = (!state.orgs.contains_key(CENTRE_ORG)).then(|| OrgRow {
                    name: CENTRE_ORG.into(),
                    description: "Centre staff".into(),
                    created_ms: t,
                    weight: 1.0,
                });
                let (user, new_user) = match state.users.get(BOOTSTRAP_ADMIN) {
                    Some(u) if u.role == Role::Admin => (u.clone(), false),
                    Some(_) => {
                        return Err(Error::FailedPrecondition(format!(
                            "user {BOOTSTRAP_ADMIN:?} exists but is not an admin"
                        )));
                    }
                    None => (
                        UserRow {
                            id: uuid::Uuid::new_v4().to_string(),
                            name: BOOTSTRAP_ADMIN.into(),
                            org: CENTRE_ORG.into(),
                            role: Role::Admin,
                            created_ms: t,
                        },
                        true,
                    ),
                };
                let issued =
                    auth::issue(&self.keys, Some(&user), None, t, self.policy.token_ttl_ms)?;
                if let Some(org) = new_org {
                    tx.push(Mutation::InsertOrg(org));
                }
                if new_user {
                    tx.push(Mutation::InsertUser(user));
                }
                tx.push(Mutation::InsertToken(issued.row.clone()));
                tx.push(Mutation::Audit(AuditRow {
                    time_ms: t,
                    actor: "berth-scheduler".into(),
                    action: "admin.bootstrap".into(),
                    target: BOOTSTRAP_ADMIN.into(),
                    outcome: "ok".into(),
                }));
                Ok(issued)
            })
            .await?;
        Ok(Some(issued.token))
    }
}
