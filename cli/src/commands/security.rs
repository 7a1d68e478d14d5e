//! `berth admin datasets ...` and `berth admin tokens list`: which organisation may mount
//! which dataset, and which credentials are issued (never their secrets).

use super::Ctx;
use crate::error::Error;
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_proto::v1;
use serde::Serialize;

/// `berth admin datasets` subcommands; none lists the grants.
#[derive(Debug, clap::Subcommand)]
pub enum DatasetsCmd {
    /// Let an organisation's jobs mount a dataset (read-only unless --rw).
    Grant {
        /// The organisation.
        #[arg(long)]
        org: String,
        /// The dataset's name, as nodes map it (`berth-agent --dataset NAME=PATH`).
        name: String,
        /// Read-write, where the node allows it.
        #[arg(long)]
        rw: bool,
    },
    /// Take a grant back; jobs that mount the dataset end.
    Revoke {
        #[arg(long)]
        org: String,
        name: String,
    },
    /// List grants.
    List {
        /// Only this organisation.
        #[arg(long)]
        org: Option<String>,
    },
}

/// A grant as printed in JSON.
#[derive(Debug, Serialize, PartialEq)]
pub struct GrantView {
    pub org: String,
    pub name: String,
    pub read_write: bool,
}

/// A credential as printed in JSON.
#[derive(Debug, Serialize, PartialEq)]
pub struct CredentialView {
    pub id: String,
    pub kind: String,
    pub user: Option<String>,
    pub org: Option<String>,
    pub node: Option<String>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked: bool,
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// `berth admin datasets ...`.
pub async fn datasets(ctx: &Ctx, cmd: Option<&DatasetsCmd>) -> Result<(), Error> {
    let mut admin = ctx.api().await?.admin();
    let list_org = match cmd {
        Some(DatasetsCmd::Grant { org, name, rw }) => {
            admin
                .grant_dataset(v1::GrantDatasetRequest {
                    org: org.clone(),
                    name: name.clone(),
                    read_write: *rw,
                })
                .await?;
            output::note(format!(
                "org {org} may mount dataset {name} {}",
                if *rw { "read-write" } else { "read-only" }
            ));
            Some(org.clone())
        }
        Some(DatasetsCmd::Revoke { org, name }) => {
            admin
                .revoke_dataset(v1::RevokeDatasetRequest {
                    org: org.clone(),
                    name: name.clone(),
                })
                .await?;
            output::note(format!("org {org} may no longer mount dataset {name}"));
            Some(org.clone())
        }
        Some(DatasetsCmd::List { org }) => org.clone(),
        None => None,
    };
    let grants = admin
        .list_dataset_grants(v1::ListDatasetGrantsRequest {
            org: list_org.unwrap_or_default(),
        })
        .await?
        .into_inner()
        .grants;
    let views: Vec<GrantView> = grants
        .iter()
        .map(|g| GrantView {
            org: g.org.clone(),
            name: g.name.clone(),
            read_write: g.read_write,
        })
        .collect();
    if ctx.format == Format::Json {
        return output::json(&views);
    }
    let mut t = Table::new(["org", "dataset", "access"]);
    for g in &views {
        t.row([
            g.org.clone(),
            g.name.clone(),
            if g.read_write {
                "read-write"
            } else {
                "read-only"
            }
            .to_owned(),
        ]);
    }
    t.print(ctx.format, "no dataset grants")
}

/// `berth admin tokens list [--node N] [--org O] [--all]` (and `berth admin nodes
/// credentials NODE`).
pub async fn credentials(
    ctx: &Ctx,
    node: Option<&str>,
    org: Option<&str>,
    all: bool,
) -> Result<(), Error> {
    let creds = ctx
        .api()
        .await?
        .admin()
        .list_credentials(v1::ListCredentialsRequest {
            node: node.unwrap_or_default().to_owned(),
            org: org.unwrap_or_default().to_owned(),
            all,
        })
        .await?
        .into_inner()
        .credentials;
    let views: Vec<CredentialView> = creds
        .iter()
        .map(|c| CredentialView {
            id: c.id.clone(),
            kind: c.kind.clone(),
            user: opt(&c.user),
            org: opt(&c.org),
            node: opt(&c.node),
            created_at: timefmt::ts_rfc3339(c.created_at.as_ref()),
            expires_at: timefmt::ts_rfc3339(c.expires_at.as_ref()),
            revoked: c.revoked,
        })
        .collect();
    if ctx.format == Format::Json {
        return output::json(&views);
    }
    let mut t = Table::new(["id", "kind", "holder", "created", "expires", "revoked"]);
    for c in &creds {
        let holder = if c.kind == "node" {
            c.node.clone()
        } else {
            format!("{}/{}", c.org, c.user)
        };
        let when = |ts: Option<&prost_types::Timestamp>| {
            timefmt::ts_ms(ts).map_or("-".to_owned(), timefmt::local)
        };
        t.row([
            c.id.clone(),
            c.kind.clone(),
            holder,
            when(c.created_at.as_ref()),
            when(c.expires_at.as_ref()),
            if c.revoked { "yes" } else { "no" }.to_owned(),
        ]);
    }
    t.print(ctx.format, "no credentials")
}
