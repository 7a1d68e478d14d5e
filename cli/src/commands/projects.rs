//! `berth projects ...` and `berth admin projects ...`: projects (과제), their grants of
//! device-hours per class for a period, and what has been drawn on them.

use super::{Ctx, dash, opt};
use crate::error::{Error, tr, trf};
use crate::output::{self, Details, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::time::ms_to_ts;
use berth_proto::v1;
use serde::Serialize;

/// `berth projects` subcommands; none lists.
#[derive(Debug, clap::Subcommand)]
pub enum ProjectsCmd {
    /// List your organisation's projects (admins: every organisation's).
    List {
        /// Only this organisation (admins).
        #[arg(long)]
        org: Option<String>,
    },
    /// Show one project and what is left of its grants.
    Show {
        /// Project id.
        id: String,
    },
    /// Ask for a project for your organisation (org-admins); an admin approves it.
    Request(ProjectArgs),
    /// Charge your bookings and jobs to this project when they name none.
    Use {
        /// Project id; omit with --none.
        #[arg(required_unless_present = "none")]
        id: Option<String>,
        /// Use no default project.
        #[arg(long, conflicts_with = "id")]
        none: bool,
    },
}

/// `berth admin projects` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminProjectsCmd {
    /// Create a project for an organisation, approved at once.
    Create {
        /// The organisation.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Approve a requested project.
    Approve(ActionArgs),
    /// Take a project's grant back: future bookings are cancelled and its jobs stopped.
    Revoke(ActionArgs),
    /// End a project normally: as revoke, recorded as closed.
    Close(ActionArgs),
}

/// The project an admin acts on.
#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    /// Project id.
    pub id: String,
    /// Why (kept on the project and in the audit log).
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// What a project asks for.
#[derive(Debug, clap::Args)]
pub struct ProjectArgs {
    /// Its title.
    #[arg(long)]
    pub title: String,
    /// The public programme it runs under.
    #[arg(long)]
    pub programme: String,
    /// Start of its period: "2027-01-01", now, +7d, RFC 3339.
    #[arg(
        long,
        allow_hyphen_values = true,
        value_name = "TIME",
        default_value = "now"
    )]
    pub start: String,
    /// End of its period (exclusive).
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub end: String,
    /// Device-hours granted per class: CLASS=HOURS[,CLASS=HOURS].
    #[arg(long, value_name = "CLASS=H[,CLASS=H]")]
    pub hours: String,
    /// The user to contact about it (default: you, for a request).
    #[arg(long, value_name = "USER")]
    pub contact: Option<String>,
}

/// One class's grant as printed in JSON.
#[derive(Debug, Serialize, PartialEq)]
pub struct GrantView {
    pub class: String,
    pub hours: f64,
    pub used_hours: f64,
    pub left_hours: f64,
}

/// A project as printed in JSON.
#[derive(Debug, Serialize)]
pub struct ProjectView {
    pub id: String,
    pub org: String,
    pub title: String,
    pub programme: String,
    pub state: &'static str,
    pub start: Option<String>,
    pub end: Option<String>,
    pub grants: Vec<GrantView>,
    pub contact: Option<String>,
    pub reason: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A project state's name.
pub fn project_state(state: i32) -> &'static str {
    use v1::ProjectState as S;
    match S::try_from(state) {
        Ok(S::Requested) => "requested",
        Ok(S::Approved) => "approved",
        Ok(S::Active) => "active",
        Ok(S::Closed) => "closed",
        Ok(S::Expired) => "expired",
        Ok(S::Revoked) => "revoked",
        _ => "unknown",
    }
}

impl From<&v1::Project> for ProjectView {
    fn from(p: &v1::Project) -> Self {
        Self {
            id: p.id.clone(),
            org: p.org.clone(),
            title: p.title.clone(),
            programme: p.programme.clone(),
            state: project_state(p.state),
            start: timefmt::ts_rfc3339(p.start.as_ref()),
            end: timefmt::ts_rfc3339(p.end.as_ref()),
            grants: p
                .grants
                .iter()
                .map(|g| GrantView {
                    class: g.class.clone(),
                    hours: g.hours,
                    used_hours: g.used_hours,
                    left_hours: g.left_hours,
                })
                .collect(),
            contact: opt(&p.contact),
            reason: opt(&p.reason),
            created_at: timefmt::ts_rfc3339(p.created_at.as_ref()),
            updated_at: timefmt::ts_rfc3339(p.updated_at.as_ref()),
        }
    }
}

/// `--hours CLASS=H[,CLASS=H]`.
pub fn parse_grants(value: &str) -> Result<Vec<v1::GrantSpec>, Error> {
    let bad = || Error::invalid("--hours", value, tr(Msg::GrantsFormat));
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (class, hours) = part.split_once('=').ok_or_else(bad)?;
        let hours: f64 = hours.trim().parse().map_err(|_| bad())?;
        if !hours.is_finite() || hours <= 0.0 {
            return Err(Error::invalid("--hours", value, tr(Msg::MustBePositive)));
        }
        let class = class.trim();
        if class.is_empty() {
            return Err(bad());
        }
        out.push(v1::GrantSpec {
            class: class.to_owned(),
            hours,
        });
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// The period and grants of `args`, checked before connecting.
struct Checked {
    start: prost_types::Timestamp,
    end: prost_types::Timestamp,
    grants: Vec<v1::GrantSpec>,
}

fn check(args: &ProjectArgs) -> Result<Checked, Error> {
    Ok(Checked {
        start: ms_to_ts(timefmt::time_flag("--start", &args.start)?),
        end: ms_to_ts(timefmt::time_flag("--end", &args.end)?),
        grants: parse_grants(&args.hours)?,
    })
}

fn grants_cell(p: &v1::Project) -> String {
    p.grants
        .iter()
        .map(|g| format!("{} {:.1}/{:.1} h", g.class, g.left_hours, g.hours))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints projects as a table (grants as `class left/granted h`), CSV or JSON.
pub fn print(projects: &[v1::Project], format: Format) -> Result<(), Error> {
    if format == Format::Json {
        let views: Vec<ProjectView> = projects.iter().map(Into::into).collect();
        return output::json(&views);
    }
    let mut t = Table::new([
        "id",
        "org",
        "state",
        "title",
        "programme",
        "start",
        "end",
        "left/granted",
    ]);
    for p in projects {
        t.row([
            p.id.clone(),
            p.org.clone(),
            project_state(p.state).to_owned(),
            p.title.clone(),
            p.programme.clone(),
            timefmt::ts_local(p.start.as_ref()),
            timefmt::ts_local(p.end.as_ref()),
            grants_cell(p),
        ]);
    }
    t.print(format, tr(Msg::EmptyProjects))
}

/// Prints one project: details and a grants table, or JSON.
pub fn print_one(p: &v1::Project, format: Format) -> Result<(), Error> {
    match format {
        Format::Json => output::json(&ProjectView::from(p)),
        Format::Csv => print(std::slice::from_ref(p), format),
        // No page of its own: the table (as `-o html` does for other listings).
        Format::Table | Format::Html => {
            Details::new()
                .field("ID", &p.id)
                .field("State", project_state(p.state))
                .field("Org", &p.org)
                .field("Title", &p.title)
                .field("Programme", &p.programme)
                .field("Start", timefmt::ts_local(p.start.as_ref()))
                .field("End", timefmt::ts_local(p.end.as_ref()))
                .field("Contact", dash(&p.contact))
                .field("Reason", dash(&p.reason))
                .print(format)?;
            println!();
            let mut t = Table::new(["class", "hours", "used", "left"]);
            for g in &p.grants {
                t.row([
                    g.class.clone(),
                    format!("{:.1}", g.hours),
                    format!("{:.1}", g.used_hours),
                    format!("{:.1}", g.left_hours),
                ]);
            }
            t.print(format, "")
        }
    }
}

/// `berth projects ...`.
pub async fn run(ctx: &Ctx, cmd: Option<&ProjectsCmd>) -> Result<(), Error> {
    match cmd {
        None => list(ctx, None).await,
        Some(ProjectsCmd::List { org }) => list(ctx, org.as_deref()).await,
        Some(ProjectsCmd::Show { id }) => {
            let p = ctx
                .api()
                .await?
                .projects()
                .get_project(v1::GetProjectRequest { id: id.clone() })
                .await?
                .into_inner();
            print_one(&p, ctx.format)
        }
        Some(ProjectsCmd::Request(args)) => {
            let c = check(args)?;
            let p = ctx
                .api()
                .await?
                .projects()
                .request_project(v1::RequestProjectRequest {
                    title: args.title.clone(),
                    programme: args.programme.clone(),
                    start: Some(c.start),
                    end: Some(c.end),
                    grants: c.grants,
                    contact: args.contact.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            print_one(&p, ctx.format)
        }
        Some(ProjectsCmd::Use { id, .. }) => {
            let project = ctx
                .api()
                .await?
                .projects()
                .set_default_project(v1::SetDefaultProjectRequest {
                    project: id.clone().unwrap_or_default(),
                })
                .await?
                .into_inner()
                .project;
            if project.is_empty() {
                output::note(tr(Msg::DefaultProjectCleared));
            } else {
                output::note(trf(Msg::DefaultProjectSet, &[("project", &project)]));
            }
            if ctx.format == Format::Json {
                output::json(&serde_json::json!({ "default_project": opt(&project) }))?;
            }
            Ok(())
        }
    }
}

/// `berth admin projects ...`.
pub async fn run_admin(ctx: &Ctx, cmd: &AdminProjectsCmd) -> Result<(), Error> {
    let action = |a: &ActionArgs| v1::ProjectActionRequest {
        id: a.id.clone(),
        reason: a.reason.clone(),
    };
    let p = match cmd {
        AdminProjectsCmd::Create { org, project } => {
            let c = check(project)?;
            let req = v1::CreateProjectRequest {
                org: org.clone(),
                title: project.title.clone(),
                programme: project.programme.clone(),
                start: Some(c.start),
                end: Some(c.end),
                grants: c.grants,
                contact: project.contact.clone().unwrap_or_default(),
            };
            ctx.api().await?.projects().create_project(req).await?
        }
        AdminProjectsCmd::Approve(a) => {
            ctx.api()
                .await?
                .projects()
                .approve_project(action(a))
                .await?
        }
        AdminProjectsCmd::Revoke(a) => {
            ctx.api()
                .await?
                .projects()
                .revoke_project(action(a))
                .await?
        }
        AdminProjectsCmd::Close(a) => ctx.api().await?.projects().close_project(action(a)).await?,
    };
    print_one(&p.into_inner(), ctx.format)
}

async fn list(ctx: &Ctx, org: Option<&str>) -> Result<(), Error> {
    let projects = ctx
        .api()
        .await?
        .projects()
        .list_projects(v1::ListProjectsRequest {
            org: org.unwrap_or_default().to_owned(),
        })
        .await?
        .into_inner()
        .projects;
    print(&projects, ctx.format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_bad_ones_name_the_flag() {
        let g = parse_grants("h100-80gb=100, rngd=24.5").unwrap();
        assert_eq!(
            g.iter()
                .map(|g| (g.class.as_str(), g.hours))
                .collect::<Vec<_>>(),
            [("h100-80gb", 100.0), ("rngd", 24.5)]
        );
        for bad in ["", "h100", "h100=", "=5", "h100=abc", "h100=-1", "h100=0"] {
            let e = parse_grants(bad).unwrap_err().to_string();
            assert!(e.contains("--hours"), "{bad}: {e}");
        }
    }

    #[test]
    fn project_json_has_the_fields_scripts_read() {
        let p = v1::Project {
            id: "p1".into(),
            org: "acme".into(),
            state: v1::ProjectState::Active as i32,
            grants: vec![v1::ProjectGrant {
                class: "h100".into(),
                hours: 100.0,
                used_hours: 30.0,
                left_hours: 70.0,
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(ProjectView::from(&p)).unwrap();
        assert_eq!(v["id"], "p1");
        assert_eq!(v["org"], "acme");
        assert_eq!(v["state"], "active");
        assert_eq!(
            v["grants"],
            serde_json::json!([{"class": "h100", "hours": 100.0, "used_hours": 30.0, "left_hours": 70.0}])
        );
    }
}
