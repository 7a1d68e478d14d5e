//! `berth`: the command line for companies booking accelerators and for centre admins.
//!
//! Data goes to stdout (table, JSON or CSV), messages to stderr. Errors print as
//! `error: <message>` and exit with a code by kind (see [`error::Kind`]): 2 bad usage or
//! input, 3 not found, 4 permission denied or not signed in, 5 refused by policy, 6 server
//! unavailable, 1 anything else.

mod client;
mod commands;
mod config;
mod docs;
mod error;
mod output;
mod paging;
mod safe;
mod timefmt;
mod up;

use clap::{Parser, Subcommand};
use commands::admin::AdminCmd;
use commands::capacity::AvailabilityArgs;
use commands::jobs::{JobsCmd, SubmitArgs};
use commands::ledger::LedgerArgs;
use commands::reserve::{ReservationsCmd, ReserveArgs};
use commands::usage::UsageArgs;
use commands::{Ctx, GlobalArgs};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Book accelerators, run jobs on them, and see what they cost",
    after_help = concat!(
        "Times: now, +2h, \"2026-12-01 09:00\" (local), 2026-12-01, RFC 3339. ",
        "Durations: 8h, 90m, 1h30m, 45s, 2d.\n\n",
        error::exit_codes_help!()
    )
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole local centre in one process: scheduler (SQLite) and an agent with 8 simulated GPUs.
    Up(up::UpArgs),
    /// Check a token with the server and save it with the server URL.
    Login {
        /// Print a single-use link (valid for 5 minutes) that signs you in to the web
        /// portal, instead.
        #[arg(long)]
        web: bool,
    },
    /// Show who the token belongs to.
    Whoami,
    /// List nodes and their devices.
    Nodes,
    /// List device classes and how many devices each has.
    Classes,
    /// Free devices of a class over time.
    Availability(AvailabilityArgs),
    /// Book devices of a class for a time window.
    Reserve(ReserveArgs),
    /// List your organisation's reservations, or show / cancel one.
    Reservations {
        /// Include completed and cancelled reservations.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        list: paging::ListArgs,
        #[command(subcommand)]
        cmd: Option<ReservationsCmd>,
    },
    /// Submit a job into a reservation or to the queue of a class.
    Submit(SubmitArgs),
    /// List your organisation's jobs, or show one.
    Jobs {
        /// Include finished jobs.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        list: paging::ListArgs,
        #[command(subcommand)]
        cmd: Option<JobsCmd>,
    },
    /// Print a job's output (stdout to stdout, stderr to stderr). On a terminal, control
    /// characters other than newline and tab are shown escaped (\x1b); into a file or a
    /// pipe, or with --raw, the job's own bytes.
    Logs {
        /// Job id.
        id: String,
        /// Keep following until the job ends.
        #[arg(short, long)]
        follow: bool,
        /// Write the job's own bytes even to a terminal.
        #[arg(long)]
        raw: bool,
    },
    /// Cancel a job.
    Cancel {
        /// Job id.
        id: String,
    },
    /// Device-hours per job and reservation, with totals.
    Usage(UsageArgs),
    /// Budget charges, refunds and top-ups.
    Ledger(LedgerArgs),
    /// Your organisation's projects (과제) and their grants; lists them without a
    /// subcommand.
    Projects {
        #[command(subcommand)]
        cmd: Option<commands::projects::ProjectsCmd>,
    },
    /// Prices per device-hour per class, in whole won.
    Prices,
    /// Your organisation's monthly invoices (admins: every org's), or show one.
    #[command(args_conflicts_with_subcommands = true)]
    Invoices {
        #[command(flatten)]
        filter: commands::billing::InvoiceFilter,
        #[command(subcommand)]
        cmd: Option<commands::billing::InvoicesCmd>,
    },
    /// Your notification deliveries and failures (your mail; your org's webhook posts
    /// too for org-admins; every one for admins), or where and what is mailed to you.
    Notifications {
        /// Most deliveries shown (default 100, at most 500).
        #[arg(long)]
        limit: Option<u32>,
        #[command(subcommand)]
        cmd: Option<commands::notify::NotificationsCmd>,
    },
    /// Your account's settings.
    #[command(subcommand)]
    Account(commands::notify::AccountCmd),
    /// Centre administration.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Print a shell completion script: `berth completions bash > /etc/bash_completion.d/berth`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: docs::Shell,
    },
    /// Print the manual page (roff) to stdout, or write one page per command to --dir.
    Man {
        /// Write berth.1 and a page per subcommand (berth-jobs.1, ...) into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

async fn run(cli: Cli) -> Result<u8, error::Error> {
    use commands::{account, admin, billing, capacity, jobs, ledger, projects, reserve, usage};
    let done = |r: Result<(), error::Error>| r.map(|()| 0);
    // `up` and `login` make their own connection; the rest use the resolved config.
    let ctx = || Ctx::resolve(&cli.global);
    match &cli.command {
        Command::Up(args) => done(up::run(args).await),
        Command::Login { web: false } => done(account::login(&cli.global).await),
        Command::Login { web: true } => done(account::login_web(&ctx()?).await),
        Command::Whoami => done(account::whoami(&ctx()?).await),
        Command::Nodes => done(capacity::nodes(&ctx()?).await),
        Command::Classes => done(capacity::classes(&ctx()?).await),
        Command::Availability(a) => done(capacity::availability(&ctx()?, a).await),
        Command::Reserve(a) => done(reserve::reserve(&ctx()?, a).await),
        Command::Reservations { all, list, cmd } => {
            done(reserve::reservations(&ctx()?, *all, list, cmd.as_ref()).await)
        }
        Command::Submit(a) => jobs::submit(&ctx()?, a).await,
        Command::Jobs { all, list, cmd } => {
            done(jobs::jobs(&ctx()?, *all, list, cmd.as_ref()).await)
        }
        Command::Logs { id, follow, raw } => done(jobs::logs(&ctx()?, id, *follow, *raw).await),
        Command::Cancel { id } => done(jobs::cancel(&ctx()?, id).await),
        Command::Usage(a) => done(usage::usage(&ctx()?, a).await),
        Command::Ledger(a) => done(ledger::ledger(&ctx()?, a).await),
        Command::Projects { cmd } => done(projects::run(&ctx()?, cmd.as_ref()).await),
        Command::Prices => done(billing::prices(&ctx()?, None).await),
        Command::Invoices { filter, cmd } => {
            done(billing::invoices(&ctx()?, filter, cmd.as_ref()).await)
        }
        Command::Notifications { limit, cmd } => {
            done(commands::notify::notifications(&ctx()?, *limit, cmd.as_ref()).await)
        }
        Command::Account(cmd) => done(commands::notify::account(&ctx()?, cmd).await),
        Command::Admin(cmd) => done(admin::run(&ctx()?, cmd).await),
        Command::Completions { shell } => done(docs::completions(*shell)),
        Command::Man { dir } => done(docs::man(dir.as_deref())),
    }
}

/// The language of this run: the user's setting saved by `berth login`, then the locale
/// (`LC_ALL`, `LC_MESSAGES`, `LANG`), then English.
fn pick_language() -> berth_i18n::Lang {
    let saved = config::path()
        .ok()
        .and_then(|p| config::load(&p).ok())
        .and_then(|c| c.language)
        .and_then(|l| berth_i18n::Lang::parse(&l));
    berth_i18n::Lang::negotiate([saved, berth_i18n::Lang::from_env()])
}

fn main() -> ExitCode {
    error::set_lang(pick_language());
    let cli = Cli::parse();
    // `berth up` runs a whole centre in this process and wants every core; any other
    // command makes a call or a few and waits on the network, on one thread: starting
    // worker threads would cost more than the call itself.
    let mut builder = if matches!(cli.command, Command::Up(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Do not wait for stray blocking reads (stdin) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Server messages may echo other people's text: escape control characters.
            eprintln!(
                "{}: {}",
                error::tr(berth_i18n::cli::Msg::ErrorPrefix),
                safe::text(&e.to_string())
            );
            ExitCode::from(e.kind().code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
    }

    #[test]
    fn submit_takes_the_command_after_double_dash() {
        let cli = parse(&[
            "submit",
            "--reservation",
            "r1",
            "--count",
            "2",
            "--wait",
            "--",
            "sh",
            "-c",
            "exit 7",
        ])
        .unwrap();
        let Command::Submit(a) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(a.command, ["sh", "-c", "exit 7"]);
        assert_eq!(a.count, 2);
        assert!(a.wait);
    }

    #[test]
    fn submit_needs_exactly_one_target() {
        assert!(parse(&["submit", "--", "true"]).is_err());
        assert!(parse(&["submit", "--class", "a", "--reservation", "r", "--", "true"]).is_err());
        let cli = parse(&["submit", "--class", "a", "--", "true"]).unwrap();
        let Command::Submit(a) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(a.count, 1);
    }

    #[test]
    fn reserve_takes_duration_or_end_and_negative_values() {
        assert!(parse(&["reserve", "--class", "a", "--count", "1"]).is_err());
        assert!(
            parse(&[
                "reserve",
                "--class",
                "a",
                "--count",
                "1",
                "--duration",
                "1h",
                "--end",
                "+2h"
            ])
            .is_err()
        );
        let cli = parse(&[
            "reserve",
            "--class",
            "a",
            "--count",
            "1",
            "--duration",
            "-1h",
        ])
        .unwrap();
        let Command::Reserve(a) = cli.command else {
            panic!("not reserve")
        };
        assert_eq!(a.duration.as_deref(), Some("-1h"));
        assert_eq!(a.start, "now");
    }

    #[test]
    fn submit_takes_priority_preemptible_and_nodes() {
        let cli = parse(&[
            "submit",
            "--class",
            "a",
            "--priority",
            "-5",
            "--preemptible",
            "--nodes",
            "2",
            "--",
            "true",
        ])
        .unwrap();
        let Command::Submit(a) = cli.command else {
            panic!("not submit")
        };
        assert_eq!((a.priority, a.preemptible, a.nodes), (-5, true, 2));
        let req = commands::jobs::request(&a).unwrap();
        assert_eq!((req.priority, req.preemptible, req.nodes), (-5, true, 2));
        let cli = parse(&["submit", "--class", "a", "--priority=-1000", "--", "x"]).unwrap();
        let Command::Submit(a) = cli.command else {
            panic!("not submit")
        };
        assert_eq!((a.priority, a.preemptible, a.nodes), (-1000, false, 1));
        assert!(parse(&["submit", "--class", "a", "--priority", "high", "--", "x"]).is_err());
    }

    #[test]
    fn budgets_list_without_a_subcommand() {
        use commands::admin::AdminCmd;
        use commands::budgets::BudgetsCmd;
        let cli = parse(&["admin", "budgets", "--org", "acme"]).unwrap();
        let Command::Admin(AdminCmd::Budgets { org, cmd: None }) = cli.command else {
            panic!("not budgets")
        };
        assert_eq!(org.as_deref(), Some("acme"));
        let cli = parse(&["admin", "budgets", "list"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Admin(AdminCmd::Budgets {
                cmd: Some(BudgetsCmd::List { org: None }),
                ..
            })
        ));
        let cli = parse(&[
            "admin", "budgets", "set", "--org", "acme", "--class", "*", "--hours", "100",
        ])
        .unwrap();
        let Command::Admin(AdminCmd::Budgets {
            cmd: Some(BudgetsCmd::Set(a)),
            ..
        }) = cli.command
        else {
            panic!("not budgets set")
        };
        assert_eq!((a.class.as_str(), a.hours.as_str()), ("*", "100"));
        assert_eq!(a.period, commands::budgets::PeriodArg::Month);
        assert!(parse(&["admin", "budgets", "set", "--org", "acme", "--class", "a"]).is_err());
        assert!(
            parse(&[
                "admin", "budgets", "top-up", "--org", "a", "--class", "b", "--hours", "5",
                "--note", "x"
            ])
            .is_ok()
        );
        assert!(parse(&["admin", "budgets", "delete", "--org", "a", "--class", "b"]).is_ok());
    }

    #[test]
    fn policy_set_needs_a_flag() {
        use commands::admin::AdminCmd;
        assert!(matches!(
            parse(&["admin", "policy"]).unwrap().command,
            Command::Admin(AdminCmd::Policy { cmd: None })
        ));
        let e = parse(&["admin", "policy", "set"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert_eq!(e.exit_code(), 2);
        assert!(
            parse(&[
                "admin",
                "policy",
                "set",
                "--backfill",
                "conservative",
                "--reserve-depth",
                "3"
            ])
            .is_ok()
        );
        assert!(parse(&["admin", "policy", "set", "--backfill", "greedy"]).is_err());
        assert!(parse(&["admin", "policy", "set", "--refund-fault", "150"]).is_err());
        assert!(parse(&["admin", "policy", "set", "--idle-threshold", "5%"]).is_ok());
    }

    #[test]
    fn org_weight_class_rate_and_ledger_parse() {
        assert!(parse(&["admin", "orgs", "weight", "--org", "a", "--weight", "2"]).is_ok());
        assert!(parse(&["admin", "orgs"]).is_ok());
        assert!(
            parse(&[
                "admin", "classes", "rate", "--class", "h100", "--rate", "1.5"
            ])
            .is_ok()
        );
        assert!(parse(&["admin", "classes"]).is_ok());
        let cli = parse(&["ledger", "--org", "acme", "--from", "-7d", "-o", "csv"]).unwrap();
        let Command::Ledger(a) = cli.command else {
            panic!("not ledger")
        };
        assert_eq!(a.from.as_deref(), Some("-7d"));
        assert_eq!(cli.global.output, output::Format::Csv);
    }

    #[test]
    fn help_lists_the_exit_codes() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains(error::exit_codes_help!()), "{help}");
    }

    #[test]
    fn logs_and_docs_commands_parse() {
        let cli = parse(&["logs", "j1", "--raw", "-f"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Logs {
                raw: true,
                follow: true,
                ..
            }
        ));
        assert!(parse(&["completions", "bash"]).is_ok());
        assert!(parse(&["completions", "zsh"]).is_ok());
        assert!(parse(&["completions", "fish"]).is_ok());
        assert!(parse(&["completions", "tcsh"]).is_err());
        assert!(parse(&["man", "--dir", "/tmp/x"]).is_ok());
        let cli = parse(&["--ca-cert", "/etc/berth/ca.pem", "whoami"]).unwrap();
        assert_eq!(
            cli.global.ca_cert.as_deref(),
            Some(std::path::Path::new("/etc/berth/ca.pem"))
        );
    }

    #[test]
    fn output_is_global() {
        let cli = parse(&["reservations", "show", "x", "-o", "json"]).unwrap();
        assert_eq!(cli.global.output, output::Format::Json);
        let cli = parse(&["-o", "csv", "usage"]).unwrap();
        assert_eq!(cli.global.output, output::Format::Csv);
    }
}
