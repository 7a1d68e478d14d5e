//! The language a gRPC request is answered in: the client's `accept-language` metadata
//! (the CLI sends the user's setting, else its locale), else English. A tower layer
//! keeps it for the length of the call, so errors converted to `tonic::Status` anywhere
//! in the handler are worded in it (see [`crate::error::localized`]).

use axum::http;
use berth_i18n::Lang;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

tokio::task_local! {
    static LANG: Lang;
}

/// The language of the call being handled (English outside one).
pub fn current() -> Lang {
    LANG.try_with(|l| *l).unwrap_or_default()
}

/// Runs `f` answering in `lang` (tests, the portal).
pub async fn scoped<F: Future>(lang: Lang, f: F) -> F::Output {
    LANG.scope(lang, f).await
}

/// Keeps each call's language.
#[derive(Clone, Copy, Debug, Default)]
pub struct LangLayer;

impl<S> tower::Layer<S> for LangLayer {
    type Service = WithLang<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithLang { inner }
    }
}

/// A service whose calls run in their client's language.
#[derive(Clone, Debug)]
pub struct WithLang<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for WithLang<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let lang = req
            .headers()
            .get(berth_proto::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Lang::from_accept_language)
            .unwrap_or_default();
        // The interceptors run inside `call`, the handler inside its future: both in `lang`.
        let fut = LANG.sync_scope(lang, || self.inner.call(req));
        Box::pin(LANG.scope(lang, fut))
    }
}
