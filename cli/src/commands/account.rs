//! `berth login` and `berth whoami`.

use super::{Ctx, GlobalArgs, opt, role};
use crate::client::Api;
use crate::config::{self, Config};
use crate::error::{Error, tr, trf};
use crate::output::{self, Details, Format};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::v1;
use serde::Serialize;

/// Who a token belongs to, as printed.
#[derive(Debug, Serialize)]
pub struct WhoAmIView {
    pub id: String,
    pub name: String,
    pub org: String,
    pub role: &'static str,
    pub node: Option<String>,
    pub token_expires_at: Option<String>,
    pub server: String,
    /// The project bookings and jobs that name none are charged to.
    pub default_project: Option<String>,
    #[serde(skip)]
    expires_ms: Option<i64>,
}

impl WhoAmIView {
    fn new(resp: &v1::WhoAmIResponse, server: &str) -> Self {
        let user = resp.user.clone().unwrap_or_default();
        Self {
            id: user.id,
            name: user.name,
            org: user.org,
            role: role(user.role),
            node: opt(&resp.node),
            token_expires_at: timefmt::ts_rfc3339(resp.token_expires_at.as_ref()),
            server: server.to_owned(),
            default_project: opt(&resp.default_project),
            expires_ms: timefmt::ts_ms(resp.token_expires_at.as_ref()),
        }
    }

    fn details(&self) -> Details {
        let mut d = Details::new()
            .field("User", &self.name)
            .field("Org", &self.org)
            .field("Role", self.role);
        if let Some(node) = &self.node {
            d = d.field("Node", node);
        }
        if let Some(p) = &self.default_project {
            d = d.field("Project", p);
        }
        let expires = self
            .expires_ms
            .map_or_else(|| "-".to_owned(), timefmt::local);
        d.field("Token expires", expires)
            .field("Server", &self.server)
    }

    fn print(&self, format: Format) -> Result<(), Error> {
        match format {
            Format::Json => output::json(self),
            _ => self.details().print(format),
        }
    }
}

/// `berth login`: checks the token with the server, then saves server, token and the
/// CA certificate the server was verified with (as an absolute path).
pub async fn login(global: &GlobalArgs) -> Result<(), Error> {
    let path = config::path()?;
    let saved = config::load(&path).unwrap_or_default();
    let server = config::normalize_server(
        global
            .server
            .as_deref()
            .or(saved.server.as_deref())
            .unwrap_or(config::DEFAULT_SERVER),
    );
    let token = match global.token.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(t) => t.trim().to_owned(),
        None => read_token()?,
    };
    let ca_cert = super::ca_cert_for(&server, global.ca_cert.as_deref(), &saved)
        .map(|p| std::path::absolute(&p).unwrap_or(p));
    let tls = berth_proto::tls::ClientTls {
        ca_cert: ca_cert.clone(),
        identity: None,
    };
    let api = Api::connect(&server, &token, &tls).await?;
    let resp = api
        .identity()
        .who_am_i(v1::WhoAmIRequest {})
        .await?
        .into_inner();
    let me = WhoAmIView::new(&resp, &server);
    config::save(
        &path,
        &Config {
            server: Some(server.clone()),
            token: Some(token),
            ca_cert,
            language: opt(&resp.language),
        },
    )?;
    if let Some(l) = berth_i18n::Lang::parse(&resp.language) {
        crate::error::set_lang(l);
    }
    output::note(trf(
        Msg::LoggedIn,
        &[
            ("server", &server),
            ("user", &me.name),
            ("org", &me.org),
            ("role", &me.role),
            ("path", &path.display()),
        ],
    ));
    if global.output == Format::Json {
        output::json(&me)?;
    }
    Ok(())
}

fn read_token() -> Result<String, Error> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("token: ");
    }
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| Error::io(tr(Msg::ReadingToken), e))?;
    let token = line.trim().to_owned();
    if token.is_empty() {
        return Err(Error::Usage(tr(Msg::NoTokenGiven).into()));
    }
    Ok(token)
}

/// `berth login --web`: a single-use link, valid for five minutes, that signs the user in
/// to the web portal. The link goes to stdout (it is the command's data).
pub async fn login_web(ctx: &Ctx) -> Result<(), Error> {
    let resp = ctx
        .api()
        .await?
        .identity()
        .create_web_login(v1::CreateWebLoginRequest {})
        .await?
        .into_inner();
    let expires =
        timefmt::ts_ms(resp.expires_at.as_ref()).map_or_else(|| "-".to_owned(), timefmt::local);
    if ctx.format == Format::Json {
        #[derive(Serialize)]
        struct Link<'a> {
            url: &'a str,
            expires_at: Option<String>,
        }
        return output::json(&Link {
            url: &resp.url,
            expires_at: timefmt::ts_rfc3339(resp.expires_at.as_ref()),
        });
    }
    output::note(trf(Msg::WebLink, &[("expires", &expires)]));
    output::emit(&format!("{}\n", resp.url))
}

/// `berth whoami`.
pub async fn whoami(ctx: &Ctx) -> Result<(), Error> {
    let resp = ctx
        .api()
        .await?
        .identity()
        .who_am_i(v1::WhoAmIRequest {})
        .await?
        .into_inner();
    WhoAmIView::new(&resp, &ctx.server).print(ctx.format)
}
