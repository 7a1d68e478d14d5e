//! `berth admin ...`: sites, classes, orgs, users, tokens, join tokens, drains, audit,
//! budgets, prices, discounts, invoices and the scheduling policy.

use super::budgets::BudgetsCmd;
use super::capacity::{ClassView, print_classes, print_nodes};
use super::policy::PolicyCmd;
use super::retention::{self, RetentionCmd};
use super::{Ctx, budgets, dash, policy, role};
use crate::error::{Error, tr, trf};
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::time::ms_to_dur;
use berth_proto::v1;
use serde::Serialize;

/// `berth admin` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCmd {
    /// Organisations (companies); lists them without a subcommand.
    Orgs {
        #[command(subcommand)]
        cmd: Option<OrgsCmd>,
    },
    /// Users and their first token.
    #[command(subcommand)]
    Users(UsersCmd),
    /// API tokens.
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// A short-lived token for a node agent to join with (printed once). It joins once:
    /// each new node needs its own.
    JoinToken {
        /// How long it stays valid (default 1h).
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        ttl: Option<String>,
        /// Only a node of this name may join with it.
        #[arg(long, conflicts_with = "uses")]
        node: Option<String>,
        /// How many new nodes it may join (default 1), e.g. for a Kubernetes DaemonSet.
        /// No join token re-joins an existing node.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        uses: Option<u32>,
    },
    /// Which organisation may mount which admin-approved dataset; lists without a
    /// subcommand.
    Datasets {
        #[command(subcommand)]
        cmd: Option<super::security::DatasetsCmd>,
    },
    /// Organisations' webhooks; lists them without a subcommand.
    Webhooks {
        /// Only this organisation's (listing).
        #[arg(long)]
        org: Option<String>,
        #[command(subcommand)]
        cmd: Option<super::notify::WebhooksCmd>,
    },
    /// Drain or undrain nodes.
    #[command(subcommand)]
    Nodes(NodesCmd),
    /// Devices: return a quarantined device to service.
    #[command(subcommand)]
    Devices(DevicesCmd),
    /// Device classes; lists them without a subcommand.
    Classes {
        #[command(subcommand)]
        cmd: Option<ClassesCmd>,
    },
    /// Sites.
    #[command(subcommand)]
    Sites(SitesCmd),
    /// Projects (과제): create, approve, revoke, close.
    #[command(subcommand)]
    Projects(super::projects::AdminProjectsCmd),
    /// Budgets in device-hours per org and class; lists them without a subcommand.
    #[command(args_conflicts_with_subcommands = true)]
    Budgets {
        /// Only this organisation (when listing).
        #[arg(long)]
        org: Option<String>,
        #[command(subcommand)]
        cmd: Option<BudgetsCmd>,
    },
    /// Prices in whole won per device-hour per class; lists them without a subcommand.
    Prices {
        #[command(subcommand)]
        cmd: Option<super::billing::PricesCmd>,
    },
    /// Organisations' discounts on invoices; lists them without a subcommand.
    #[command(args_conflicts_with_subcommands = true)]
    Discounts {
        /// Only this organisation (when listing).
        #[arg(long)]
        org: Option<String>,
        #[command(subcommand)]
        cmd: Option<super::billing::DiscountsCmd>,
    },
    /// Monthly invoices in won: generate, issue, pay, void; lists them without a
    /// subcommand.
    #[command(args_conflicts_with_subcommands = true)]
    Invoices {
        #[command(flatten)]
        filter: super::billing::InvoiceFilter,
        #[command(subcommand)]
        cmd: Option<super::billing::AdminInvoicesCmd>,
    },
    /// The monthly check per organisation: granted, booked and used device-hours, idle
    /// reclaims, refunds, utilisation and energy, the amount due, and flags.
    Report(super::report::ReportArgs),
    /// The scheduling policy; shows it without a subcommand.
    Policy {
        #[command(subcommand)]
        cmd: Option<PolicyCmd>,
    },
    /// How long old rows are kept; shows it without a subcommand.
    Retention {
        #[command(subcommand)]
        cmd: Option<RetentionCmd>,
    },
    /// Every scheduler on the database: who leads since when, its fencing token, and
    /// how long ago each was last heard from.
    Status,
    /// Recent audit events.
    Audit {
        /// How many events (the server caps it).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum OrgsCmd {
    /// Create an organisation.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List organisations.
    List,
    /// Set an organisation's fair-share weight (default 1).
    Weight {
        #[arg(long)]
        org: String,
        /// Weight 2 is entitled to twice the queued device-hours of weight 1.
        #[arg(long, value_name = "W")]
        weight: f64,
    },
    /// Change an organisation's settings.
    Set {
        /// The organisation.
        org: String,
        /// Whether work a project's grant cannot cover goes to the org's paid budget
        /// (allow) or is refused (deny, the default).
        #[arg(long, value_enum)]
        overage: OverageArg,
    },
}

/// Roles an admin can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    User,
    OrgAdmin,
    Admin,
}

impl RoleArg {
    fn to_proto(self) -> v1::Role {
        match self {
            RoleArg::User => v1::Role::User,
            RoleArg::OrgAdmin => v1::Role::OrgAdmin,
            RoleArg::Admin => v1::Role::Admin,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum UsersCmd {
    /// Create a user; prints the user's token once.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
    },
    /// List users.
    List {
        /// Only this organisation.
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TokensCmd {
    /// A new token for an existing user; printed once.
    Create {
        /// User name.
        #[arg(long)]
        user: String,
        /// The user's organisation (default: yours; admins need it only when several
        /// organisations have a user of that name).
        #[arg(long)]
        org: Option<String>,
        /// How long it stays valid (default 90d).
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// Revoke a token or a node credential by its id.
    Revoke { id: String },
    /// List issued credentials (users' tokens and nodes' credentials; never the secrets).
    List {
        /// Only this node's credentials (admins).
        #[arg(long)]
        node: Option<String>,
        /// Only this organisation's users' tokens (admins; org-admins get their own).
        #[arg(long)]
        org: Option<String>,
        /// Include revoked and expired ones.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum NodesCmd {
    /// Stop placing new work on a node; running work finishes.
    Drain { node: String },
    /// Make a drained (or down) node schedulable again.
    Undrain { node: String },
    /// Declare an unreachable node down: its jobs end as lost and their devices are released.
    Down { node: String },
    /// Let an existing node join again with a join token (it lost its credential); the
    /// join revokes the node's old credentials. `--all` after a signing-key rotation.
    #[command(group(clap::ArgGroup::new("which").required(true)))]
    Rejoin {
        #[arg(group = "which")]
        node: Option<String>,
        /// Every node (after rotating the signing key, every node must join again).
        #[arg(long, group = "which")]
        all: bool,
        /// How long the leave lasts (default 1h).
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// A node's credentials.
    Credentials {
        node: String,
        /// Include revoked and expired ones.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum DevicesCmd {
    /// Clear a failed (quarantined) device so it can be booked again.
    Clear { uuid: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum ClassesCmd {
    /// Create a device class.
    Create {
        name: String,
        /// nvidia, rebellions, furiosa, sim.
        #[arg(long, default_value = "")]
        vendor: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List device classes.
    List,
    /// Set the budget hours one device-hour of a class costs (default 1).
    Rate {
        #[arg(long)]
        class: String,
        #[arg(long, value_name = "R")]
        rate: f64,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum SitesCmd {
    /// Create a site.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List sites.
    List,
}

#[derive(Debug, Serialize)]
struct OrgView {
    name: String,
    description: String,
    created_at: Option<String>,
    weight: f64,
    overage: &'static str,
}

/// What an org does with work a project's grant cannot cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OverageArg {
    /// Charge it to the org's paid budget.
    Allow,
    /// Refuse it (the default).
    Deny,
}

fn overage_name(v: i32) -> &'static str {
    match v1::Overage::try_from(v) {
        Ok(v1::Overage::Allow) => "allow",
        _ => "deny",
    }
}

#[derive(Debug, Serialize)]
struct UserView {
    id: String,
    name: String,
    org: String,
    role: &'static str,
    created_at: Option<String>,
}

/// What `users create -o json` prints.
#[derive(Debug, Serialize)]
pub struct NewUserView {
    pub token: String,
    pub user: String,
    pub user_id: String,
    pub org: String,
    pub role: &'static str,
    pub token_id: String,
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct TokenView {
    token: String,
    user: String,
    token_id: String,
    expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct JoinTokenView {
    token: String,
    expires_at: Option<String>,
    node: Option<String>,
    uses: u32,
}

#[derive(Debug, Serialize)]
struct SiteView {
    name: String,
    description: String,
}

#[derive(Debug, Serialize)]
struct AuditView {
    time: Option<String>,
    actor: String,
    action: String,
    target: String,
    outcome: String,
}

fn org_view(o: &v1::Org) -> OrgView {
    OrgView {
        name: o.name.clone(),
        description: o.description.clone(),
        created_at: timefmt::ts_rfc3339(o.created_at.as_ref()),
        weight: o.weight,
        overage: overage_name(o.overage),
    }
}

fn print_orgs(orgs: &[v1::Org], format: Format) -> Result<(), Error> {
    if format == Format::Json {
        return output::json(&orgs.iter().map(org_view).collect::<Vec<_>>());
    }
    let mut t = Table::new(["name", "weight", "overage", "created", "description"]);
    for o in orgs {
        t.row([
            o.name.clone(),
            o.weight.to_string(),
            overage_name(o.overage).to_owned(),
            timefmt::ts_local(o.created_at.as_ref()),
            o.description.clone(),
        ]);
    }
    t.print(format, tr(Msg::EmptyOrgs))
}

fn print_users(users: &[v1::User], format: Format) -> Result<(), Error> {
    if format == Format::Json {
        let views: Vec<UserView> = users
            .iter()
            .map(|u| UserView {
                id: u.id.clone(),
                name: u.name.clone(),
                org: u.org.clone(),
                role: role(u.role),
                created_at: timefmt::ts_rfc3339(u.created_at.as_ref()),
            })
            .collect();
        return output::json(&views);
    }
    let mut t = Table::new(["name", "org", "role", "created", "id"]);
    for u in users {
        t.row([
            u.name.clone(),
            u.org.clone(),
            role(u.role).to_owned(),
            timefmt::ts_local(u.created_at.as_ref()),
            u.id.clone(),
        ]);
    }
    t.print(format, tr(Msg::EmptyUsers))
}

fn site_view(s: &v1::Site) -> SiteView {
    SiteView {
        name: s.name.clone(),
        description: s.description.clone(),
    }
}

fn print_sites(sites: &[v1::Site], format: Format) -> Result<(), Error> {
    if format == Format::Json {
        return output::json(&sites.iter().map(site_view).collect::<Vec<_>>());
    }
    let mut t = Table::new(["name", "description"]);
    for s in sites {
        t.row([s.name.clone(), s.description.clone()]);
    }
    t.print(format, tr(Msg::EmptySites))
}

/// Prints a secret: alone on stdout in table mode (so `$(...)` captures it), with
/// what it is on stderr.
fn print_secret<T: Serialize>(
    format: Format,
    token: &str,
    json: &T,
    note: String,
) -> Result<(), Error> {
    if format == Format::Json {
        output::json(json)
    } else {
        output::note(note);
        output::emit(&format!("{token}\n"))
    }
}

fn ttl(value: Option<&str>) -> Result<Option<prost_types::Duration>, Error> {
    value
        .map(|v| timefmt::positive_duration_flag("--ttl", v).map(ms_to_dur))
        .transpose()
}

fn expiry(ts: Option<&prost_types::Timestamp>) -> String {
    timefmt::ts_local(ts)
}

/// Checks `--weight` (positive) and `--rate` (zero or more).
fn factor(flag: &str, value: f64, allow_zero: bool) -> Result<f64, Error> {
    if value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0)) {
        Ok(value)
    } else {
        let reason = if allow_zero {
            tr(Msg::ZeroOrMore)
        } else {
            tr(Msg::MustBePositive)
        };
        Err(Error::invalid(flag, &value.to_string(), reason))
    }
}

/// `berth admin ...`.
pub async fn run(ctx: &Ctx, cmd: &AdminCmd) -> Result<(), Error> {
    // These connect on their own.
    match cmd {
        AdminCmd::Budgets { org, cmd: None } => {
            return budgets::run(ctx, Some(&BudgetsCmd::List { org: org.clone() })).await;
        }
        AdminCmd::Budgets { cmd, .. } => return budgets::run(ctx, cmd.as_ref()).await,
        AdminCmd::Policy { cmd } => return policy::run(ctx, cmd.as_ref()).await,
        AdminCmd::Retention { cmd } => return retention::run(ctx, cmd.as_ref()).await,
        AdminCmd::Webhooks { org, cmd } => {
            return super::notify::webhooks(ctx, org.as_deref(), cmd.as_ref()).await;
        }
        AdminCmd::Datasets { cmd } => return super::security::datasets(ctx, cmd.as_ref()).await,
        AdminCmd::Tokens(TokensCmd::List { node, org, all }) => {
            return super::security::credentials(ctx, node.as_deref(), org.as_deref(), *all).await;
        }
        AdminCmd::Nodes(NodesCmd::Credentials { node, all }) => {
            return super::security::credentials(ctx, Some(node), None, *all).await;
        }
        AdminCmd::Status => return super::status::run(ctx).await,
        AdminCmd::Projects(cmd) => return super::projects::run_admin(ctx, cmd).await,
        AdminCmd::Prices { cmd } => return super::billing::prices(ctx, cmd.as_ref()).await,
        AdminCmd::Report(a) => return super::report::run(ctx, a).await,
        AdminCmd::Discounts { org, cmd } => {
            return super::billing::discounts(ctx, org.as_deref(), cmd.as_ref()).await;
        }
        AdminCmd::Invoices { filter, cmd: None } => {
            return super::billing::invoices(ctx, filter, None).await;
        }
        AdminCmd::Invoices { cmd: Some(cmd), .. } => {
            return super::billing::admin_invoices(ctx, cmd).await;
        }
        _ => {}
    }
    // Check flag values before connecting.
    let join_ttl = match cmd {
        AdminCmd::JoinToken { ttl: t, .. } => ttl(t.as_deref())?,
        AdminCmd::Nodes(NodesCmd::Rejoin { ttl: t, .. }) => ttl(t.as_deref())?,
        AdminCmd::Tokens(TokensCmd::Create { ttl: t, .. }) => ttl(t.as_deref())?,
        AdminCmd::Orgs {
            cmd: Some(OrgsCmd::Weight { weight, .. }),
        } => {
            factor("--weight", *weight, false)?;
            None
        }
        AdminCmd::Classes {
            cmd: Some(ClassesCmd::Rate { rate, .. }),
        } => {
            factor("--rate", *rate, true)?;
            None
        }
        _ => None,
    };
    let api = ctx.api().await?;
    let mut admin = api.admin();
    let format = ctx.format;
    match cmd {
        AdminCmd::Orgs {
            cmd: Some(OrgsCmd::Create { name, description }),
        } => {
            let org = admin
                .create_org(v1::CreateOrgRequest {
                    name: name.clone(),
                    description: description.clone(),
                })
                .await?
                .into_inner();
            if format == Format::Json {
                output::json(&org_view(&org))
            } else {
                print_orgs(&[org], format)
            }
        }
        AdminCmd::Orgs {
            cmd: None | Some(OrgsCmd::List),
        } => {
            let orgs = admin
                .list_orgs(v1::ListOrgsRequest {})
                .await?
                .into_inner()
                .orgs;
            print_orgs(&orgs, format)
        }
        AdminCmd::Orgs {
            cmd: Some(OrgsCmd::Weight { org, weight }),
        } => {
            let o = admin
                .set_org_weight(v1::SetOrgWeightRequest {
                    org: org.clone(),
                    weight: *weight,
                })
                .await?
                .into_inner();
            if format == Format::Json {
                output::json(&org_view(&o))
            } else {
                print_orgs(&[o], format)
            }
        }
        AdminCmd::Orgs {
            cmd: Some(OrgsCmd::Set { org, overage }),
        } => {
            let overage = match overage {
                OverageArg::Allow => v1::Overage::Allow,
                OverageArg::Deny => v1::Overage::Deny,
            };
            let o = admin
                .set_org_overage(v1::SetOrgOverageRequest {
                    org: org.clone(),
                    overage: overage as i32,
                })
                .await?
                .into_inner();
            if format == Format::Json {
                output::json(&org_view(&o))
            } else {
                print_orgs(&[o], format)
            }
        }
        AdminCmd::Users(UsersCmd::Create { org, name, role: r }) => {
            let resp = admin
                .create_user(v1::CreateUserRequest {
                    org: org.clone(),
                    name: name.clone(),
                    role: r.to_proto() as i32,
                })
                .await?
                .into_inner();
            let user = resp.user.clone().unwrap_or_default();
            let view = NewUserView {
                token: resp.token.clone(),
                user: user.name.clone(),
                user_id: user.id.clone(),
                org: user.org.clone(),
                role: role(user.role),
                token_id: resp.token_id.clone(),
                expires_at: timefmt::ts_rfc3339(resp.token_expires_at.as_ref()),
            };
            let note = trf(
                Msg::UserCreated,
                &[
                    ("user", &view.user),
                    ("org", &view.org),
                    ("role", &view.role),
                    ("id", &view.token_id),
                    ("expires", &expiry(resp.token_expires_at.as_ref())),
                ],
            );
            print_secret(format, &resp.token, &view, note)
        }
        AdminCmd::Users(UsersCmd::List { org }) => {
            let users = admin
                .list_users(v1::ListUsersRequest {
                    org: org.clone().unwrap_or_default(),
                })
                .await?
                .into_inner()
                .users;
            print_users(&users, format)
        }
        AdminCmd::Tokens(TokensCmd::Create { user, org, .. }) => {
            let resp = admin
                .create_token(v1::CreateTokenRequest {
                    user: user.clone(),
                    ttl: join_ttl,
                    org: org.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            let view = TokenView {
                token: resp.token.clone(),
                user: user.clone(),
                token_id: resp.token_id.clone(),
                expires_at: timefmt::ts_rfc3339(resp.expires_at.as_ref()),
            };
            let note = trf(
                Msg::TokenCreated,
                &[
                    ("id", &resp.token_id),
                    ("user", &user),
                    ("expires", &expiry(resp.expires_at.as_ref())),
                ],
            );
            print_secret(format, &resp.token, &view, note)
        }
        AdminCmd::Tokens(TokensCmd::Revoke { id }) => {
            admin
                .revoke_token(v1::RevokeTokenRequest {
                    token_id: id.clone(),
                })
                .await?;
            output::note(trf(Msg::RevokedToken, &[("id", &id)]));
            if format == Format::Json {
                output::json(&serde_json::json!({ "token_id": id, "revoked": true }))?;
            }
            Ok(())
        }
        AdminCmd::JoinToken { node, uses, .. } => {
            let resp = admin
                .create_join_token(v1::CreateJoinTokenRequest {
                    ttl: join_ttl,
                    node: node.clone().unwrap_or_default(),
                    uses: uses.unwrap_or(1),
                })
                .await?
                .into_inner();
            let view = JoinTokenView {
                token: resp.token.clone(),
                expires_at: timefmt::ts_rfc3339(resp.expires_at.as_ref()),
                node: (!resp.node.is_empty()).then(|| resp.node.clone()),
                uses: resp.uses,
            };
            let joins = match (&view.node, resp.uses) {
                (Some(n), _) => trf(Msg::JoinTokenJoinsNamed, &[("node", n)]),
                (None, 1) => tr(Msg::JoinTokenJoinsOne).to_owned(),
                (None, n) => trf(Msg::JoinTokenJoinsMany, &[("uses", &n.to_string())]),
            };
            let note = trf(
                Msg::JoinTokenCreated,
                &[
                    ("joins", &joins),
                    ("expires", &expiry(resp.expires_at.as_ref())),
                    ("server", &ctx.server),
                    ("node", &view.node.as_deref().unwrap_or("NAME")),
                ],
            );
            print_secret(format, &resp.token, &view, note)
        }
        AdminCmd::Nodes(NodesCmd::Drain { node }) => {
            let n = admin
                .drain_node(v1::DrainNodeRequest { node: node.clone() })
                .await?
                .into_inner();
            print_nodes(&[n], format)
        }
        AdminCmd::Devices(DevicesCmd::Clear { uuid }) => {
            let d = admin
                .clear_device(v1::ClearDeviceRequest { uuid: uuid.clone() })
                .await?
                .into_inner();
            output::note(trf(
                Msg::DeviceCleared,
                &[("uuid", &d.uuid), ("reason", &d.health_reason)],
            ));
            Ok(())
        }
        AdminCmd::Nodes(NodesCmd::Down { node }) => {
            let n = admin
                .mark_node_down(v1::MarkNodeDownRequest { node: node.clone() })
                .await?
                .into_inner();
            print_nodes(&[n], format)
        }
        AdminCmd::Nodes(NodesCmd::Rejoin { node, .. }) => {
            let names = match node {
                Some(n) => vec![n.clone()],
                None => api
                    .capacity()
                    .list_nodes(v1::ListNodesRequest::default())
                    .await?
                    .into_inner()
                    .nodes
                    .into_iter()
                    .map(|n| n.name)
                    .collect(),
            };
            let mut given = Vec::with_capacity(names.len());
            for name in &names {
                given.push(
                    admin
                        .rejoin_node(v1::RejoinNodeRequest {
                            node: name.clone(),
                            ttl: join_ttl,
                        })
                        .await?
                        .into_inner(),
                );
            }
            output::note(format!(
                "{} may join again with a join token until the leave ends; old credentials \
                 are revoked when a node does",
                match names.as_slice() {
                    [one] => format!("node {one}"),
                    all => format!("{} nodes", all.len()),
                }
            ));
            print_nodes(&given, format)
        }
        AdminCmd::Nodes(NodesCmd::Undrain { node }) => {
            let n = admin
                .undrain_node(v1::UndrainNodeRequest { node: node.clone() })
                .await?
                .into_inner();
            print_nodes(&[n], format)
        }
        AdminCmd::Classes {
            cmd:
                Some(ClassesCmd::Create {
                    name,
                    vendor,
                    description,
                }),
        } => {
            let c = admin
                .create_class(v1::CreateClassRequest {
                    name: name.clone(),
                    description: description.clone(),
                    vendor: vendor.clone(),
                })
                .await?
                .into_inner();
            if format == Format::Json {
                output::json(&ClassView::from(&c))
            } else {
                print_classes(&[c], format)
            }
        }
        AdminCmd::Classes {
            cmd: None | Some(ClassesCmd::List),
        } => {
            let classes = api
                .capacity()
                .list_classes(v1::ListClassesRequest {})
                .await?
                .into_inner()
                .classes;
            print_classes(&classes, format)
        }
        AdminCmd::Classes {
            cmd: Some(ClassesCmd::Rate { class, rate }),
        } => {
            let c = admin
                .set_class_rate(v1::SetClassRateRequest {
                    class: class.clone(),
                    rate: *rate,
                })
                .await?
                .into_inner();
            if format == Format::Json {
                output::json(&ClassView::from(&c))
            } else {
                print_classes(&[c], format)
            }
        }
        AdminCmd::Sites(SitesCmd::Create { name, description }) => {
            let s = admin
                .create_site(v1::CreateSiteRequest {
                    name: name.clone(),
                    description: description.clone(),
                })
                .await?
                .into_inner();
            if format == Format::Json {
                output::json(&site_view(&s))
            } else {
                print_sites(&[s], format)
            }
        }
        AdminCmd::Sites(SitesCmd::List) => {
            let sites = api
                .capacity()
                .list_sites(v1::ListSitesRequest {})
                .await?
                .into_inner()
                .sites;
            print_sites(&sites, format)
        }
        // Handled above, with their own connection.
        AdminCmd::Budgets { .. }
        | AdminCmd::Policy { .. }
        | AdminCmd::Retention { .. }
        | AdminCmd::Webhooks { .. }
        | AdminCmd::Datasets { .. }
        | AdminCmd::Tokens(TokensCmd::List { .. })
        | AdminCmd::Nodes(NodesCmd::Credentials { .. })
        | AdminCmd::Status
        | AdminCmd::Projects(_)
        | AdminCmd::Prices { .. }
        | AdminCmd::Report(_)
        | AdminCmd::Discounts { .. }
        | AdminCmd::Invoices { .. } => Ok(()),
        AdminCmd::Audit { limit } => {
            let events = admin
                .list_audit(v1::ListAuditRequest {
                    page_size: *limit,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .events;
            if format == Format::Json {
                let views: Vec<AuditView> = events
                    .iter()
                    .map(|e| AuditView {
                        time: timefmt::ts_rfc3339(e.time.as_ref()),
                        actor: e.actor.clone(),
                        action: e.action.clone(),
                        target: e.target.clone(),
                        outcome: e.outcome.clone(),
                    })
                    .collect();
                return output::json(&views);
            }
            let mut t = Table::new(["time", "actor", "action", "target", "outcome"]);
            for e in &events {
                t.row([
                    timefmt::ts_local(e.time.as_ref()),
                    dash(&e.actor),
                    e.action.clone(),
                    dash(&e.target),
                    e.outcome.clone(),
                ]);
            }
            t.print(format, tr(Msg::EmptyAudit))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_user_json_carries_the_token_once() {
        let v = serde_json::to_value(NewUserView {
            token: "t0k".into(),
            user: "alice".into(),
            user_id: "u1".into(),
            org: "acme".into(),
            role: "user",
            token_id: "tid".into(),
            expires_at: Some("2027-01-01T00:00:00Z".into()),
        })
        .unwrap();
        for key in ["token", "user", "org", "role", "token_id", "expires_at"] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        assert_eq!(v["token"], "t0k");
    }

    #[test]
    fn ttl_must_be_a_positive_duration() {
        assert_eq!(ttl(Some("1h")).unwrap().unwrap().seconds, 3600);
        assert!(ttl(None).unwrap().is_none());
        let e = ttl(Some("0s")).unwrap_err().to_string();
        assert_eq!(e, r#"invalid --ttl "0s": must be positive"#);
    }
}
