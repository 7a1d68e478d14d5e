//! Centre administration: sites, classes, orgs, users, tokens, node drains.

use super::{Engine, audit, now};
use crate::auth::{self, Caller, Issued};
use crate::error::{Error, Result};
use crate::state::node_schedulable;
use crate::store::{ClassRow, JoinTokenRow, Mutation, NodeState, OrgRow, SiteRow, UserRow};
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
        let mut state = self.lock().await;
        if state.sites.contains_key(&name) {
            return Err(Error::AlreadyExists(format!("site {name:?}")));
        }
        self.commit(vec![
            Mutation::InsertSite(row.clone()),
            Mutation::Audit(audit(caller, "site.create", &name, row.created_ms, "ok")),
        ])
        .await?;
        state.sites.insert(name, row.clone());
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
        let mut state = self.lock().await;
        if state.classes.contains_key(&name) {
            return Err(Error::AlreadyExists(format!("device class {name:?}")));
        }
        self.commit(vec![
            Mutation::InsertClass(row.clone()),
            Mutation::Audit(audit(caller, "class.create", &name, row.created_ms, "ok")),
        ])
        .await?;
        state.classes.insert(name, row.clone());
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
        let mut state = self.lock().await;
        if state.orgs.contains_key(&name) {
            return Err(Error::AlreadyExists(format!("org {name:?}")));
        }
        self.commit(vec![
            Mutation::InsertOrg(row.clone()),
            Mutation::Audit(audit(caller, "org.create", &name, row.created_ms, "ok")),
        ])
        .await?;
        state.orgs.insert(name, row.clone());
        Ok(row)
    }

    /// Orgs the caller may see.
    pub async fn list_orgs(&self, caller: &Caller) -> Result<Vec<OrgRow>> {
        caller.require_user()?;
        let state = self.lock().await;
        Ok(state
            .orgs
            .values()
            .filter(|o| caller.can_see_org(&o.name))
            .cloned()
            .collect())
    }

    /// Creates a user and their first API token. Admins create anyone; org-admins
    /// create users and org-admins of their own org.
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
        let mut state = self.lock().await;
        if !state.orgs.contains_key(&org) {
            return Err(Error::NotFound(format!("org {org:?}")));
        }
        if state.users.contains_key(&name) {
            return Err(Error::AlreadyExists(format!("user {name:?}")));
        }
        let t = now();
        let user = UserRow {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.clone(),
            org,
            role,
            created_ms: t,
        };
        let issued = auth::issue(&self.keys, Some(&user), None, t, self.policy.token_ttl_ms)?;
        self.commit(vec![
            Mutation::InsertUser(user.clone()),
            Mutation::InsertToken(issued.row.clone()),
            Mutation::Audit(audit(
                caller,
                "user.create",
                &format!("{name} ({role})"),
                t,
                "ok",
            )),
        ])
        .await?;
        state.users.insert(name, user.clone());
        self.with_auth(|a| {
            a.put_user(user.clone());
            a.put_token(issued.row.clone());
        });
        Ok((user, issued))
    }

    /// Users the caller may see, optionally of one org.
    pub async fn list_users(&self, caller: &Caller, org: &str) -> Result<Vec<UserRow>> {
        caller.require_user()?;
        let org = model::optional_name("org", org)?;
        let org = match (caller.is_admin(), org) {
            (true, org) => org,
            (false, Some(o)) if o != caller.org => {
                return Err(Error::NotFound(format!("org {o:?}")));
            }
            (false, _) => Some(caller.org.clone()),
        };
        Ok(self.store.list_users(org.as_deref()).await?)
    }

    /// Issues a new API token for a user. Users may issue their own; org-admins for
    /// their org's users; admins for anyone.
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
        let state = self.lock().await;
        let user = state
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
        let t = now();
        let issued = auth::issue(&self.keys, Some(&user), None, t, ttl)?;
        self.commit(vec![
            Mutation::InsertToken(issued.row.clone()),
            Mutation::Audit(audit(
                caller,
                "token.create",
                &format!("{user_name} {}", issued.row.id),
                t,
                "ok",
            )),
        ])
        .await?;
        drop(state);
        self.with_auth(|a| a.put_token(issued.row.clone()));
        Ok(issued)
    }

    /// Revokes a token (admin, or the token's own user).
    pub async fn revoke_token(&self, caller: &Caller, token_id: &str) -> Result<()> {
        let token_id = model::id("token_id", token_id)?;
        let _state = self.lock().await;
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
        self.commit(vec![
            Mutation::RevokeToken {
                id: token_id.clone(),
            },
            Mutation::Audit(audit(caller, "token.revoke", &token_id, now(), "ok")),
        ])
        .await?;
        self.with_auth(|a| a.revoke(&token_id));
        Ok(())
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
        let mut state = self.lock().await;
        self.commit(vec![
            Mutation::InsertJoinToken(row.clone()),
            Mutation::Audit(audit(caller, "join-token.create", &row.id, t, "ok")),
        ])
        .await?;
        state.join_tokens.retain(|j| j.expires_ms > t);
        let expires = row.expires_ms;
        state.join_tokens.push(row);
        Ok((secret, expires))
    }

    /// Returns a quarantined device to service (admin).
    pub async fn clear_device(
        &self,
        caller: &Caller,
        uuid: &str,
    ) -> Result<crate::state::DeviceEntry> {
        caller.require_admin()?;
        if uuid.is_empty() {
            return Err(Error::field("uuid", "must not be empty"));
        }
        let mut state = self.lock().await;
        let entry = state
            .devices
            .get(uuid)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("device {uuid}")))?;
        if entry.row.health != crate::store::Health::Failed {
            return Err(Error::FailedPrecondition(format!(
                "device {uuid} is not quarantined"
            )));
        }
        let mut row = entry.row.clone();
        row.health = crate::store::Health::Healthy;
        row.health_reason = format!(
            "cleared by {} (was: {})",
            caller.name, entry.row.health_reason
        );
        row.updated_ms = now();
        self.commit(vec![
            Mutation::UpsertDevice(row.clone()),
            Mutation::Audit(audit(caller, "device.clear", uuid, row.updated_ms, "ok")),
        ])
        .await?;
        state.cluster.set_device_healthy(uuid, true);
        let entry = crate::state::DeviceEntry {
            row,
            telemetry: entry.telemetry,
        };
        state.devices.insert(uuid.to_owned(), entry.clone());
        drop(state);
        self.kick();
        Ok(entry)
    }

    /// Drains (`drain = true`) or undrains a node (admin).
    pub async fn set_drain(
        &self,
        caller: &Caller,
        node: &str,
        drain: bool,
    ) -> Result<crate::store::NodeRow> {
        caller.require_admin()?;
        let node = model::name("node", node)?;
        let mut state = self.lock().await;
        let entry = state
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
        self.commit(vec![
            Mutation::UpsertNode(row.clone()),
            Mutation::Audit(audit(caller, action, &node, now(), "ok")),
        ])
        .await?;
        state
            .cluster
            .set_node_schedulable(&node, node_schedulable(row.state));
        if let Some(e) = state.nodes.get_mut(&node) {
            e.row = row.clone();
        }
        drop(state);
        self.kick();
        Ok(row)
    }

    /// Declares a node down (admin): its placed jobs end as lost now, releasing their
    /// claims, and nothing new is placed on it until it is undrained.
    pub async fn mark_down(&self, caller: &Caller, node: &str) -> Result<crate::store::NodeRow> {
        caller.require_admin()?;
        let node = model::name("node", node)?;
        let mut state = self.lock().await;
        let mut row = state
            .nodes
            .get(&node)
            .ok_or_else(|| Error::NotFound(format!("node {node:?}")))?
            .row
            .clone();
        row.state = NodeState::Down;
        self.commit(vec![
            Mutation::UpsertNode(row.clone()),
            Mutation::Audit(audit(caller, "node.down", &node, now(), "ok")),
        ])
        .await?;
        state.cluster.set_node_schedulable(&node, false);
        if let Some(e) = state.nodes.get_mut(&node) {
            e.row = row.clone();
        }
        let jobs: Vec<String> = state
            .placed_jobs_on(&node)
            .map(|j| j.row.id.clone())
            .collect();
        let why = format!("node {node} was declared down by {}", caller.name);
        for id in jobs {
            self.end_job(&mut state, &id, super::jobs::Ending::Lost(why.clone()))
                .await?;
        }
        drop(state);
        self.kick();
        Ok(row)
    }

    /// Makes sure a centre admin exists and returns a fresh token for it when
    /// `existing` is not a valid token. Used by `--bootstrap-admin-token-file`.
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
        let mut state = self.lock().await;
        let mut batch = Vec::new();
        let new_org = (!state.orgs.contains_key(CENTRE_ORG)).then(|| OrgRow {
            name: CENTRE_ORG.into(),
            description: "Centre staff".into(),
            created_ms: t,
            weight: 1.0,
        });
        if let Some(org) = &new_org {
            batch.push(Mutation::InsertOrg(org.clone()));
        }
        let user = match state.users.get(BOOTSTRAP_ADMIN) {
            Some(u) if u.role == Role::Admin => u.clone(),
            Some(_) => {
                return Err(Error::FailedPrecondition(format!(
                    "user {BOOTSTRAP_ADMIN:?} exists but is not an admin"
                )));
            }
            None => {
                let u = UserRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    name: BOOTSTRAP_ADMIN.into(),
                    org: CENTRE_ORG.into(),
                    role: Role::Admin,
                    created_ms: t,
                };
                batch.push(Mutation::InsertUser(u.clone()));
                u
            }
        };
        let issued = auth::issue(&self.keys, Some(&user), None, t, self.policy.token_ttl_ms)?;
        batch.push(Mutation::InsertToken(issued.row.clone()));
        batch.push(Mutation::Audit(crate::store::AuditRow {
            time_ms: t,
            actor: "berth-scheduler".into(),
            action: "admin.bootstrap".into(),
            target: BOOTSTRAP_ADMIN.into(),
            outcome: "ok".into(),
        }));
        self.commit(batch).await?;
        if let Some(org) = new_org {
            state.orgs.insert(CENTRE_ORG.into(), org);
        }
        state.users.insert(BOOTSTRAP_ADMIN.into(), user.clone());
        self.with_auth(|a| {
            a.put_user(user);
            a.put_token(issued.row.clone());
        });
        Ok(Some(issued.token))
    }
}
