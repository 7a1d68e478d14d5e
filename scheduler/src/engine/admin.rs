//! Centre administration: sites, classes, orgs, users, tokens, node drains.

use super::stage::{Ending, finish_job};
use super::{Engine, audit, now};
use crate::auth::{self, Caller, Issued};
use crate::error::{Error, Result};
use crate::state::DeviceEntry;
use crate::store::{
    AuditRow, ClassRow, Health, JoinTokenRow, Mutation, NodeRow, NodeState, OrgRow, Overage,
    SiteRow, UserRow,
};
use berth_i18n::api::Msg;
use berth_i18n::text;
use berth_proto::model::{self, Role};
use berth_proto::v1;

/// The user `name` a caller means: in `org` when given (it must be one the caller may
/// see), else in the caller's own org, else (admins) the only user of that name.
fn find_user(
    state: &crate::state::State,
    caller: &Caller,
    name: &str,
    org: Option<&str>,
) -> Result<UserRow> {
    let not_found = || Error::NotFound(text!(WhatUser, name = ?name));
    if let Some(o) = org {
        return state
            .user(o, name)
            .filter(|u| caller.can_see_org(&u.org))
            .cloned()
            .ok_or_else(not_found);
    }
    if let Some(u) = state.user(&caller.org, name) {
        return Ok(u.clone());
    }
    if !caller.is_admin() {
        return Err(not_found());
    }
    let mut found = state.users_named(name);
    match (found.next(), found.next()) {
        (Some(u), None) => Ok(u.clone()),
        (None, _) => Err(not_found()),
        (Some(_), Some(_)) => Err(Error::field(
            "org",
            text!(SeveralOrgsHaveUser, name = ?name),
        )),
    }
}

/// The org that holds the bootstrap admin.
pub const CENTRE_ORG: &str = "centre";
/// Most new nodes one join token may join.
pub const MAX_JOIN_TOKEN_USES: u32 = 1000;
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
                return Err(Error::AlreadyExists(text!(WhatSite, name = ?name)));
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
                return Err(Error::AlreadyExists(text!(WhatClass, name = ?name)));
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
            overage: Overage::Deny,
        };
        self.commit(|tx| {
            if tx.state().orgs.contains_key(&name) {
                return Err(Error::AlreadyExists(text!(WhatOrg, name = ?name)));
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
            return Err(Error::PermissionDenied(text!(
                MayNotCreateUsers,
                caller = caller.role,
                role,
                org = ?org
            )));
        }
        let t = now();
        let user = UserRow {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.clone(),
            org: org.clone(),
            role,
            created_ms: t,
            default_project: None,
        };
        let issued = auth::issue(&self.keys, Some(&user), None, t, self.policy.token_ttl_ms)?;
        let token = issued.row.clone();
        self.commit(|tx| {
            let state = tx.state();
            if !state.orgs.contains_key(&org) {
                return Err(Error::NotFound(text!(WhatOrg, name = ?org)));
            }
            // Names are unique within an organisation only: another org's names are
            // neither taken from it nor revealed.
            if state.user(&org, &name).is_some() {
                return Err(Error::AlreadyExists(text!(
                    WhatUserInOrg,
                    name = ?name,
                    org = ?org
                )));
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
        org: &str,
        ttl_ms: Option<i64>,
    ) -> Result<Issued> {
        caller.require_user()?;
        let user_name = model::name("user", user)?;
        let org = model::optional_name("org", org)?;
        let ttl = ttl_ms.unwrap_or(self.policy.token_ttl_ms);
        if ttl <= 0 || ttl > 2 * 365 * berth_proto::time::HOUR_MS * 24 {
            return Err(Error::field("ttl", Msg::PositiveAtMostTwoYears));
        }
        let t = now();
        self.commit(|tx| {
            let user = find_user(tx.state(), caller, &user_name, org.as_deref())?;
            if !caller.can_modify(&user.org, &user.id) {
                return Err(Error::PermissionDenied(text!(
                    MayNotIssueTokens,
                    user = ?user_name
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
            return Err(Error::NotFound(text!(WhatToken, id = token_id)));
        };
        // Admins revoke any credential; org-admins their organisation's users' tokens;
        // users their own. Anyone else is told there is no such token.
        let org_admin_of_owner = caller.role == Role::OrgAdmin
            && self
                .auth
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .token_user(&token_id)
                .is_some_and(|u| u.org == caller.org);
        if !(caller.is_admin()
            || owner.as_deref() == Some(caller.id.as_str())
            || org_admin_of_owner)
        {
            return Err(Error::NotFound(text!(WhatToken, id = token_id)));
        }
        self.commit(|tx| {
            tx.push(Mutation::RevokeToken {
                id: token_id.clone(),
            });
            // A portal session does not say which token started it: revoking any of a
            // user's tokens signs that user out of the portal everywhere.
            if let Some(user_id) = &owner {
                tx.push(Mutation::EndWebSessionsOf {
                    user_id: user_id.clone(),
                });
            }
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
        node: &str,
        uses: u32,
    ) -> Result<(String, i64, u32)> {
        caller.require_admin()?;
        let node = model::optional_name("node", node)?;
        let uses = uses.max(1);
        if uses > MAX_JOIN_TOKEN_USES {
            return Err(Error::field(
                "uses",
                text!(UsesAtMost, max = MAX_JOIN_TOKEN_USES, uses),
            ));
        }
        if node.is_some() && uses > 1 {
            return Err(Error::field("uses", Msg::BoundJoinTokenOnce));
        }
        let ttl = ttl_ms.unwrap_or(self.policy.join_token_ttl_ms);
        if ttl <= 0 || ttl > 7 * 24 * berth_proto::time::HOUR_MS {
            return Err(Error::field("ttl", Msg::PositiveAtMostSevenDays));
        }
        let secret = auth::random_secret("berth-join-");
        let t = now();
        let row = JoinTokenRow {
            id: uuid::Uuid::new_v4().to_string(),
            hash: auth::hash_secret(&secret),
            created_by: caller.name.clone(),
            created_ms: t,
            expires_ms: t + ttl,
            node,
            used_ms: None,
            max_uses: uses as i32,
            uses: 0,
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
        Ok((secret, expires, uses))
    }

    /// Returns a quarantined device to service (admin).
    pub async fn clear_device(&self, caller: &Caller, uuid: &str) -> Result<DeviceEntry> {
        caller.require_admin()?;
        if uuid.is_empty() {
            return Err(Error::field("uuid", Msg::MustNotBeEmpty));
        }
        let t = now();
        let entry = self
            .commit(|tx| {
                let entry = tx
                    .state()
                    .devices
                    .get(uuid)
                    .cloned()
                    .ok_or_else(|| Error::NotFound(text!(WhatDevice, uuid)))?;
                if entry.row.health != Health::Failed {
                    return Err(Error::FailedPrecondition(text!(NotQuarantined, uuid)));
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

    /// Lets an existing node join again with a join token until `ttl` from now (admin);
    /// the join then revokes its old credentials.
    pub async fn rejoin_node(
        &self,
        caller: &Caller,
        node: &str,
        ttl_ms: Option<i64>,
    ) -> Result<NodeRow> {
        caller.require_admin()?;
        let node = model::name("node", node)?;
        let ttl = ttl_ms.unwrap_or(self.policy.join_token_ttl_ms);
        if ttl <= 0 || ttl > 7 * 24 * berth_proto::time::HOUR_MS {
            return Err(Error::field("ttl", Msg::PositiveAtMostSevenDays));
        }
        let t = now();
        self.commit(|tx| {
            let mut row = tx
                .state()
                .nodes
                .get(&node)
                .ok_or_else(|| Error::NotFound(text!(WhatNode, name = ?node)))?
                .row
                .clone();
            row.rejoin_until_ms = Some(t + ttl);
            tx.push(Mutation::UpsertNode(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "node.rejoin",
                &node,
                t,
                "ok",
            )));
            Ok(row)
        })
        .await
    }

    /// Issued credentials the caller may see: admins every one (optionally of one node or
    /// org), org-admins their organisation's users', users their own.
    pub async fn list_credentials(
        &self,
        caller: &Caller,
        r: &v1::ListCredentialsRequest,
    ) -> Result<Vec<(crate::store::TokenRow, Option<UserRow>)>> {
        caller.require_user()?;
        let node = model::optional_name("node", &r.node)?;
        let org = super::views::scoped_org(caller, &r.org)?;
        if node.is_some() && !caller.is_admin() {
            return Err(Error::PermissionDenied(text!(OnlyAdminsSeeCredentials)));
        }
        let (users, only_users): (Vec<UserRow>, Option<Vec<String>>) = {
            let state = self.view();
            let users: Vec<UserRow> = state.users.values().cloned().collect();
            let only = match (caller.role, &org, &node) {
                (_, _, Some(_)) => None,
                (Role::User, _, _) => Some(vec![caller.id.clone()]),
                (_, Some(o), _) => Some(
                    users
                        .iter()
                        .filter(|u| u.org == *o)
                        .map(|u| u.id.clone())
                        .collect(),
                ),
                (_, None, _) => None,
            };
            (users, only)
        };
        let rows = self
            .store
            .list_tokens(node.as_deref(), only_users.as_deref(), r.all, now())
            .await?;
        let by_id: std::collections::HashMap<&str, &UserRow> =
            users.iter().map(|u| (u.id.as_str(), u)).collect();
        Ok(rows
            .into_iter()
            .map(|t| {
                let user = t
                    .user_id
                    .as_deref()
                    .and_then(|id| by_id.get(id))
                    .map(|u| (*u).clone());
                (t, user)
            })
            .collect())
    }

    /// Grants an org an admin-approved dataset (admin).
    pub async fn grant_dataset(
        &self,
        caller: &Caller,
        r: &v1::GrantDatasetRequest,
    ) -> Result<crate::store::DatasetGrantRow> {
        caller.require_admin()?;
        let org = model::name("org", &r.org)?;
        let name = model::name("name", &r.name)?;
        let t = now();
        self.commit(|tx| {
            if !tx.state().orgs.contains_key(&org) {
                return Err(Error::field("org", text!(UnknownOrg, org = ?org)));
            }
            let row = crate::store::DatasetGrantRow {
                org: org.clone(),
                name: name.clone(),
                read_write: r.read_write,
                created_ms: t,
            };
            let what = format!("{org} {name}{}", if r.read_write { " rw" } else { "" });
            tx.push(Mutation::UpsertDatasetGrant(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "dataset.grant",
                &what,
                t,
                "ok",
            )));
            Ok(row)
        })
        .await
    }

    /// Takes a dataset grant back (admin); jobs that need it stop being started.
    pub async fn revoke_dataset(&self, caller: &Caller, org: &str, name: &str) -> Result<()> {
        caller.require_admin()?;
        let org = model::name("org", org)?;
        let name = model::name("name", name)?;
        let t = now();
        self.commit(|tx| {
            if !tx
                .state()
                .dataset_grants
                .contains_key(&(org.clone(), name.clone()))
            {
                return Err(Error::NotFound(text!(WhatGrant, name = ?name, org = ?org)));
            }
            tx.push(Mutation::DeleteDatasetGrant {
                org: org.clone(),
                name: name.clone(),
            });
            tx.push(Mutation::Audit(audit(
                caller,
                "dataset.revoke",
                &format!("{org} {name}"),
                t,
                "ok",
            )));
            Ok(())
        })
        .await?;
        self.kick();
        Ok(())
    }

    /// Dataset grants the caller may see.
    pub fn list_dataset_grants(
        &self,
        caller: &Caller,
        org: &str,
    ) -> Result<Vec<(String, String, bool)>> {
        let org = super::views::scoped_org(caller, org)?;
        Ok(self
            .view()
            .dataset_grants
            .iter()
            .filter(|((o, _), _)| org.as_ref().is_none_or(|x| x == o))
            .map(|((o, n), rw)| (o.clone(), n.clone(), *rw))
            .collect())
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
                    .ok_or_else(|| Error::NotFound(text!(WhatNode, name = ?node)))?;
                let mut row = entry.row.clone();
                row.state = match (drain, row.state) {
                    (true, NodeState::Ready) => NodeState::Draining,
                    (true, s @ (NodeState::Draining | NodeState::Drained)) => s,
                    (false, NodeState::Draining | NodeState::Drained | NodeState::Ready) => {
                        NodeState::Ready
                    }
                    (_, s) => {
                        return Err(Error::FailedPrecondition(text!(
                            NodeCannotChange,
                            node = ?node,
                            state = s
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
                    .ok_or_else(|| Error::NotFound(text!(WhatNode, name = ?node)))?
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
                    finish_job(tx, &id, Ending::Lost(why.clone()), None, None, t);
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
                    overage: Overage::Deny,
                });
                let (user, new_user) = match state.user(CENTRE_ORG, BOOTSTRAP_ADMIN) {
                    Some(u) if u.role == Role::Admin => (u.clone(), false),
                    Some(_) => {
                        return Err(Error::FailedPrecondition(text!(
                            BootstrapNotAdmin,
                            user = ?BOOTSTRAP_ADMIN
                        )));
                    }
                    None => (
                        UserRow {
                            id: uuid::Uuid::new_v4().to_string(),
                            name: BOOTSTRAP_ADMIN.into(),
                            org: CENTRE_ORG.into(),
                            role: Role::Admin,
                            created_ms: t,
                            default_project: None,
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
