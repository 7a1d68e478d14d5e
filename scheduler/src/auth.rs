//! Authentication: JWTs signed by the scheduler, checked against the token table.
//!
//! Every credential (a user's API token or a node's credential) is a JWT (HS256) whose
//! `jti` names a row in the token table, where only the SHA-256 of the token is kept.
//! A token is accepted when its signature and expiry check out *and* its row exists,
//! is not revoked and has the same hash; so tokens can be revoked, and a leaked
//! database gives no usable token. The [`interceptor`] does this for every RPC and puts
//! the typed [`Caller`] in the request's extensions.

use crate::error::{Error, Result};
use crate::store::{TokenRow, UserRow};
use berth_i18n::api::{Msg, Text};
use berth_i18n::text;
use berth_proto::model::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

const ISSUER: &str = "berth-scheduler";

/// Who is calling, resolved from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User id (users) or `node:<name>` (agents).
    pub id: String,
    /// User name or node name, for audit.
    pub name: String,
    /// The caller's org; empty for agents.
    pub org: String,
    /// What the caller may do.
    pub role: Role,
    /// For agents: their node.
    pub node: Option<String>,
    /// When the credential expires.
    pub expires_ms: i64,
}

impl Caller {
    /// True for centre admins.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// May this caller see objects of `org`?
    pub fn can_see_org(&self, org: &str) -> bool {
        self.is_admin() || (self.role != Role::Agent && self.org == org)
    }

    /// May this caller change an object of `org` created by user `owner_id`?
    /// Users change their own; org-admins their org's; admins everything.
    pub fn can_modify(&self, org: &str, owner_id: &str) -> bool {
        self.is_admin()
            || (self.org == org
                && (self.role == Role::OrgAdmin
                    || (self.role == Role::User && self.id == owner_id)))
    }

    /// Fails unless the caller is a centre admin.
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::PermissionDenied(text!(NeedsAdmin)))
        }
    }

    /// Fails unless the caller is a user of some kind (not an agent).
    pub fn require_user(&self) -> Result<()> {
        if self.role == Role::Agent {
            Err(Error::PermissionDenied(text!(AgentsOnly)))
        } else {
            Ok(())
        }
    }

    /// Fails unless the caller is the agent of `node`.
    pub fn require_node(&self, node: &str) -> Result<()> {
        if self.role == Role::Agent && self.node.as_deref() == Some(node) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(text!(NotThisNode, node = ?node)))
        }
    }
}

/// The claims inside a Berth JWT.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    jti: String,
    iat: i64,
    exp: i64,
    role: String,
}

/// Signing keys.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Keys from a shared secret (at least 32 bytes).
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }
}

/// A freshly issued credential: the secret (shown once) and the row to store.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The token to hand to the user or agent.
    pub token: String,
    /// The row to store (hash only).
    pub row: TokenRow,
}

/// Hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random opaque secret with a readable prefix, e.g. for join tokens.
pub fn random_secret(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Issues a JWT for a user (`user_id`) or a node (`node`).
pub fn issue(
    keys: &Keys,
    user: Option<&UserRow>,
    node: Option<&str>,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Issued> {
    let jti = uuid::Uuid::new_v4().to_string();
    let (sub, role) = match (user, node) {
        (Some(u), _) => (u.id.clone(), u.role),
        (None, Some(n)) => (format!("node:{n}"), Role::Agent),
        (None, None) => return Err(Error::Internal("a token needs a user or a node".into())),
    };
    let exp_ms = now_ms.saturating_add(ttl_ms);
    let claims = Claims {
        iss: ISSUER.into(),
        sub,
        jti: jti.clone(),
        iat: now_ms / 1000,
        exp: exp_ms / 1000,
        role: role.as_str().into(),
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
        .map_err(|e| Error::Internal(format!("signing a token: {e}")))?;
    Ok(Issued {
        row: TokenRow {
            id: jti,
            user_id: user.map(|u| u.id.clone()),
            node: node.map(str::to_owned),
            hash: hash_secret(&token),
            created_ms: now_ms,
            expires_ms: (exp_ms / 1000) * 1000,
            revoked: false,
        },
        token,
    })
}

/// The tokens and users a request is checked against, kept in memory and updated
/// after each committed change.
#[derive(Debug, Default)]
pub struct AuthIndex {
    tokens: HashMap<String, TokenRow>,
    users: HashMap<String, UserRow>,
    /// Tokens whose signature and hash have been checked, by the token itself: a token
    /// presented again (an agent's, every few seconds) is checked against its row only.
    /// Looked up on every call, so hashed with foldhash (its quality variant, seeded at
    /// random per process) rather than SipHash; only checked tokens are ever inserted.
    verified: std::sync::Mutex<HashMap<String, Verified, foldhash::quality::RandomState>>,
}

/// What a checked token said.
#[derive(Debug, Clone)]
struct Verified {
    /// Its id (the row it must still match).
    jti: String,
    /// When its signature stops being accepted (its expiry plus the leeway), ms.
    until_ms: i64,
}

/// Most checked tokens remembered; past it, the memory starts over.
const VERIFIED_KEEP: usize = 20_000;

impl AuthIndex {
    /// Adds or replaces a token.
    pub fn put_token(&mut self, row: TokenRow) {
        self.tokens.insert(row.id.clone(), row);
    }

    /// Forgets a token (revoked).
    pub fn revoke(&mut self, id: &str) {
        self.tokens.remove(id);
    }

    /// Forgets every credential of a node (it joined again).
    pub fn revoke_node(&mut self, node: &str) {
        self.tokens.retain(|_, t| t.node.as_deref() != Some(node));
    }

    /// The user a token belongs to (`None` for node credentials and unknown tokens).
    pub fn token_user(&self, id: &str) -> Option<&UserRow> {
        self.tokens
            .get(id)
            .and_then(|t| t.user_id.as_ref())
            .and_then(|u| self.users.get(u))
    }

    /// The user id owning a token (`Some(None)` for node credentials).
    pub fn token_owner(&self, id: &str) -> Option<Option<String>> {
        self.tokens.get(id).map(|t| t.user_id.clone())
    }

    /// The tokens of one user (revoked ones are forgotten already).
    pub fn tokens_of<'a>(&'a self, user_id: &'a str) -> impl Iterator<Item = &'a TokenRow> {
        self.tokens
            .values()
            .filter(move |t| t.user_id.as_deref() == Some(user_id))
    }

    /// Adds or replaces a user.
    pub fn put_user(&mut self, row: UserRow) {
        self.users.insert(row.id.clone(), row);
    }

    /// Remembers that `token` (of id `jti`) was checked: signed by us, and the token its
    /// row was issued for; its signature is accepted until `until_ms`.
    fn remember(&self, token: &str, jti: &str, until_ms: i64) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_KEEP {
            verified.clear();
        }
        verified.insert(
            token.to_owned(),
            Verified {
                jti: jti.to_owned(),
                until_ms,
            },
        );
    }

    /// Verifies a bearer token and resolves the caller.
    pub fn verify(&self, keys: &Keys, token: &str, now_ms: i64) -> Result<Caller> {
        let bad = |why: Msg| Error::Unauthenticated(Text::new(why));
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned();
        // `exp`: the token's expiry when its signature was checked just now.
        let (jti, exp) = match cached {
            Some(v) if v.until_ms > now_ms => (v.jti, None),
            Some(_) => return Err(bad(Msg::TokenExpired)),
            None => {
                let data = jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation)
                    .map_err(|e| match e.kind() {
                        jsonwebtoken::errors::ErrorKind::ExpiredSignature => bad(Msg::TokenExpired),
                        _ => bad(Msg::TokenForeign),
                    })?;
                (data.claims.jti, Some(data.claims.exp))
            }
        };
        let row = self
            .tokens
            .get(&jti)
            .ok_or_else(|| bad(Msg::TokenRevoked))?;
        if row.revoked || (exp.is_some() && row.hash != hash_secret(token)) {
            return Err(bad(Msg::TokenRevoked));
        }
        if let Some(exp) = exp {
            let until_ms = (exp + keys.validation.leeway as i64) * 1000;
            self.remember(token, &jti, until_ms);
        }
        if row.expires_ms <= now_ms {
            return Err(bad(Msg::TokenExpired));
        }
        if let Some(node) = &row.node {
            return Ok(Caller {
                id: format!("node:{node}"),
                name: node.clone(),
                org: String::new(),
                role: Role::Agent,
                node: Some(node.clone()),
                expires_ms: row.expires_ms,
            });
        }
        let user = row
            .user_id
            .as_ref()
            .and_then(|id| self.users.get(id))
            .ok_or_else(|| bad(Msg::TokenUserGone))?;
        Ok(Caller {
            id: user.id.clone(),
            name: user.name.clone(),
            org: user.org.clone(),
            role: user.role,
            node: None,
            expires_ms: row.expires_ms,
        })
    }
}

/// A tonic interceptor: verifies the bearer token when one is present and stores the
/// [`Caller`] in the request extensions. Requests without a token pass through with
/// no caller; handlers then refuse them (all but `Agent.Join`).
#[derive(Clone)]
pub struct Authenticator {
    /// Signing keys.
    pub keys: Arc<Keys>,
    /// The token index.
    pub index: Arc<RwLock<AuthIndex>>,
    /// Calls per organisation (users) and per node (agents).
    pub limits: Arc<Limits>,
}

/// Where a limited caller's costly replies are charged: put in the request's extensions
/// by the [`Authenticator`] (admins are not limited and get none).
#[derive(Debug, Clone)]
pub struct Charge {
    limits: Arc<Limits>,
    node: bool,
    key: String,
}

impl Charge {
    /// Charges a reply of `bytes` encoded bytes, beyond what its call already paid.
    pub fn reply(&self, bytes: usize) {
        let extra = bytes / crate::ratelimit::REPLY_BYTES_PER_CALL;
        if extra > 0 {
            let limiter = if self.node {
                &self.limits.nodes
            } else {
                &self.limits.orgs
            };
            limiter.charge(&self.key, extra as f64, std::time::Instant::now());
        }
    }
}

/// The per-tenant rate limits.
#[derive(Debug)]
pub struct Limits {
    /// Users' calls, one bucket per organisation.
    pub orgs: crate::ratelimit::RateLimiter,
    /// Agents' calls, one bucket per node.
    pub nodes: crate::ratelimit::RateLimiter,
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(value) = req.metadata().get(berth_proto::AUTHORIZATION) else {
            return Ok(req);
        };
        let (caller, charge) = self.admit(bearer(value)?)?;
        req.extensions_mut().insert(caller);
        if let Some(charge) = charge {
            req.extensions_mut().insert(charge);
        }
        Ok(req)
    }
}

/// The token of an `authorization: Bearer <token>` value, or UNAUTHENTICATED.
pub fn bearer(
    value: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
) -> StatusResult<&str> {
    let words = |m: Msg| berth_i18n::t(crate::lang::current(), m);
    let value = value
        .to_str()
        .map_err(|_| tonic::Status::unauthenticated(words(Msg::MalformedAuthorization)))?;
    Ok(value
        .strip_prefix("Bearer ")
        .ok_or_else(|| tonic::Status::unauthenticated(words(Msg::BearerFormat)))?
        .trim())
}

type StatusResult<T> = std::result::Result<T, tonic::Status>;

impl Authenticator {
    /// Verifies a bearer token and takes one call from its caller's rate limit: the
    /// caller, and where its costly replies are charged. Every call does this once;
    /// a stream of heartbeats does it for every message.
    pub fn admit(&self, token: &str) -> StatusResult<(Caller, Option<Charge>)> {
        let caller = {
            let index = self
                .index
                .read()
                .map_err(|_| tonic::Status::internal("auth index poisoned"))?;
            index.verify(&self.keys, token, berth_proto::time::now_ms())
        }
        .map_err(tonic::Status::from)?;
        let is_node = caller.node.is_some();
        // Centre admins are not limited: they must be able to act during a tenant's flood.
        let limit = match &caller.node {
            Some(node) => Some((&self.limits.nodes, format!("node:{node}"))),
            None if caller.role == Role::Admin => None,
            None => Some((&self.limits.orgs, format!("org:{}", caller.org))),
        };
        let charge = limit.as_ref().map(|(_, key)| Charge {
            limits: self.limits.clone(),
            node: is_node,
            key: key.clone(),
        });
        if let Some((limiter, key)) = limit
            && let Err(wait_ms) = limiter.take(&key, std::time::Instant::now())
        {
            let who = match &caller.node {
                Some(node) => text!(WhatNode, name = node),
                None => text!(WhatOrg, name = caller.org),
            };
            let rate = limiter.rate();
            return Err(tonic::Status::from(Error::Overloaded {
                message: text!(
                    TooManyRequests,
                    who = @who,
                    per_second = rate.per_second,
                    burst = rate.burst,
                    wait_ms
                ),
                retry_after_ms: wait_ms,
            }));
        }
        Ok((caller, charge))
    }
}

/// The verified caller of a request, or UNAUTHENTICATED.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<Caller> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Error::Unauthenticated(text!(MissingToken)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> UserRow {
        UserRow {
            id: "u1".into(),
            name: "alice".into(),
            org: "acme".into(),
            role,
            created_ms: 0,
            default_project: None,
        }
    }

    #[test]
    fn issued_tokens_verify_until_revoked() {
        let keys = Keys::from_secret(&[7u8; 32]);
        let now = berth_proto::time::now_ms();
        let u = user(Role::User);
        let issued = issue(&keys, Some(&u), None, now, 3_600_000).unwrap();
        let mut index = AuthIndex::default();
        index.put_user(u);
        index.put_token(issued.row.clone());
        let caller = index.verify(&keys, &issued.token, now).unwrap();
        assert_eq!((caller.org.as_str(), caller.role), ("acme", Role::User));
        index.revoke(&issued.row.id);
        assert!(matches!(
            index.verify(&keys, &issued.token, now),
            Err(Error::Unauthenticated(_))
        ));
    }

    #[test]
    fn tokens_from_another_key_or_tampered_are_refused() {
        let keys = Keys::from_secret(&[7u8; 32]);
        let other = Keys::from_secret(&[8u8; 32]);
        let now = berth_proto::time::now_ms();
        let u = user(Role::Admin);
        let issued = issue(&other, Some(&u), None, now, 3_600_000).unwrap();
        let mut index = AuthIndex::default();
        index.put_user(u);
        index.put_token(issued.row.clone());
        assert!(index.verify(&keys, &issued.token, now).is_err());
        assert!(index.verify(&keys, "not-a-jwt", now).is_err());
    }

    #[test]
    fn a_token_checked_before_is_still_refused_once_expired_or_its_row_changes() {
        let keys = Keys::from_secret(&[7u8; 32]);
        let now = berth_proto::time::now_ms();
        let u = user(Role::User);
        let issued = issue(&keys, Some(&u), None, now, 60_000).unwrap();
        let mut index = AuthIndex::default();
        index.put_user(u);
        index.put_token(issued.row.clone());
        index.verify(&keys, &issued.token, now).unwrap();
        index.verify(&keys, &issued.token, now + 1).unwrap();
        // Past its expiry (and the leeway), the remembered check no longer holds.
        assert!(index.verify(&keys, &issued.token, now + 120_000).is_err());
        // A revoked row refuses a token checked before.
        let again = issue(&keys, Some(&user(Role::User)), None, now, 60_000).unwrap();
        index.put_token(again.row.clone());
        index.verify(&keys, &again.token, now).unwrap();
        let mut revoked = again.row.clone();
        revoked.revoked = true;
        index.put_token(revoked);
        assert!(index.verify(&keys, &again.token, now).is_err());
        // A token that differs by one character is checked afresh, and refused.
        let mut tampered = issued.token.clone();
        tampered.push('x');
        assert!(index.verify(&keys, &tampered, now).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = Keys::from_secret(&[7u8; 32]);
        let now = berth_proto::time::now_ms();
        let u = user(Role::User);
        let issued = issue(&keys, Some(&u), None, now - 7_200_000, 3_600_000).unwrap();
        let mut index = AuthIndex::default();
        index.put_user(u);
        index.put_token(issued.row);
        assert!(index.verify(&keys, &issued.token, now).is_err());
    }

    #[test]
    fn permissions_follow_the_object_owner() {
        let mut c = Caller {
            id: "u1".into(),
            name: "alice".into(),
            org: "acme".into(),
            role: Role::User,
            node: None,
            expires_ms: 0,
        };
        assert!(c.can_see_org("acme") && !c.can_see_org("other"));
        assert!(
            c.can_modify("acme", "u1")
                && !c.can_modify("acme", "u2")
                && !c.can_modify("other", "u1")
        );
        c.role = Role::OrgAdmin;
        assert!(c.can_modify("acme", "u2") && !c.can_modify("other", "u2"));
        c.role = Role::Agent;
        assert!(!c.can_see_org("acme"));
    }
}
