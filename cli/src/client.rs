//! The connection to the scheduler: one channel, and a bearer-token interceptor that
//! puts `authorization: Bearer <token>` on every call.

use crate::error::{Error, chain};
use berth_proto::tls::ClientTls;
use berth_proto::v1::{
    admin_client::AdminClient, billing_client::BillingClient, capacity_client::CapacityClient,
    identity_client::IdentityClient, jobs_client::JobsClient,
    notifications_client::NotificationsClient, projects_client::ProjectsClient,
    reservations_client::ReservationsClient, usage_client::UsageClient,
};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Adds the bearer token to each request, and the language the server should word its
/// errors in (`accept-language`; the user's own setting on the server wins).
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>, MetadataValue<Ascii>);

impl Bearer {
    /// The metadata value for `token`; refuses characters a header cannot carry.
    pub fn new(token: &str) -> Result<Self, Error> {
        let token = token.trim();
        let lang = MetadataValue::from_static(crate::error::lang().code());
        format!("Bearer {token}")
            .parse()
            .map(|t| Bearer(t, lang))
            .map_err(|_| {
                Error::Usage(crate::error::tr(berth_i18n::cli::Msg::BadTokenCharacters).into())
            })
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut()
            .insert(berth_proto::AUTHORIZATION, self.0.clone());
        req.metadata_mut()
            .insert(berth_proto::ACCEPT_LANGUAGE, self.1.clone());
        Ok(req)
    }
}

/// The channel type every client uses.
pub type Svc = InterceptedService<Channel, Bearer>;

/// A connected, authenticated API handle.
#[derive(Clone)]
pub struct Api {
    channel: Channel,
    bearer: Bearer,
}

impl Api {
    /// Connects to the scheduler at `servers`: one URL (`http://127.0.0.1:7070`, or
    /// `https://` for TLS, verified as `tls` says), or several separated by commas, of
    /// which the leader is found: a standby's answer names the leader (`berth-leader`),
    /// an unreachable one is skipped. The TLS handshake happens here, so a refused
    /// certificate is reported before any call, in plain words.
    pub async fn connect(servers: &str, token: &str, tls: &ClientTls) -> Result<Self, Error> {
        let mut queue: std::collections::VecDeque<String> = servers
            .split(',')
            .map(|s| crate::config::normalize_server(s.trim()))
            .filter(|s| !s.is_empty())
            .collect();
        if queue.len() <= 1 {
            let one = queue.pop_front().unwrap_or_default();
            return Self::connect_one(&one, token, tls).await;
        }
        let mut tried = std::collections::HashSet::new();
        let mut last = None;
        while let Some(server) = queue.pop_front() {
            if !tried.insert(server.clone()) {
                continue;
            }
            let api = match Self::connect_one(&server, token, tls).await {
                Ok(api) => api,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match api
                .identity()
                .who_am_i(berth_proto::v1::WhoAmIRequest {})
                .await
            {
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    if let Some(leader) = s
                        .metadata()
                        .get("berth-leader")
                        .and_then(|v| v.to_str().ok())
                    {
                        queue.push_front(crate::config::normalize_server(leader));
                    }
                    last = Some(Error::Rpc(s));
                }
                // The leader answered (a refused token is the command's to report).
                _ => return Ok(api),
            }
        }
        Err(last.unwrap_or_else(|| Error::invalid("--server", servers, "no scheduler URL")))
    }

    async fn connect_one(server: &str, token: &str, tls: &ClientTls) -> Result<Self, Error> {
        let bearer = Bearer::new(token)?;
        let connect_error = |reason: String| Error::Connect {
            server: server.to_owned(),
            reason,
        };
        let endpoint = Endpoint::from_shared(server.to_owned())
            .map_err(|_| Error::invalid("--server", server, "not a valid URL"))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        let endpoint = tls.apply(endpoint)?;
        let channel = endpoint.connect().await.map_err(|e| {
            connect_error(berth_proto::tls::explain(&e).unwrap_or_else(|| chain(&e)))
        })?;
        Ok(Self { channel, bearer })
    }

    /// Identity service.
    pub fn identity(&self) -> IdentityClient<Svc> {
        IdentityClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// Capacity service.
    pub fn capacity(&self) -> CapacityClient<Svc> {
        CapacityClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// Reservations service.
    pub fn reservations(&self) -> ReservationsClient<Svc> {
        ReservationsClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// Jobs service.
    pub fn jobs(&self) -> JobsClient<Svc> {
        JobsClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// Usage service.
    pub fn usage(&self) -> UsageClient<Svc> {
        UsageClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// Admin service.
    pub fn admin(&self) -> AdminClient<Svc> {
        AdminClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// Projects service.
    pub fn projects(&self) -> ProjectsClient<Svc> {
        ProjectsClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// The `Billing` service.
    pub fn billing(&self) -> BillingClient<Svc> {
        BillingClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// Notifications service.
    pub fn notifications(&self) -> NotificationsClient<Svc> {
        NotificationsClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn bearer_sets_the_authorization_header() {
        let mut b = Bearer::new(" abc.def \n").unwrap();
        let req = b.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            req.metadata().get("authorization").unwrap(),
            "Bearer abc.def"
        );
        assert!(Bearer::new("bad\u{7f}token").is_err());
    }
}
