//! A tower layer that counts and times every gRPC request by method and status code.
//!
//! The `method` label is one of the methods the server was compiled with, read from the
//! file descriptor sets of the Berth API, the health service and both reflection
//! services (`berth.v1.Jobs/SubmitJob`, `grpc.health.v1.Health/Check`, ...); any other
//! path is `other`, so no caller, signed in or not, can create label values. The `code`
//! label is a gRPC status code name. A request is recorded when its response ends (its
//! trailers carry the status), or as `CANCELLED` when the client goes away first.

use crate::metrics::Metrics;
use http_body::{Body, Frame, SizeHint};
use prost::Message;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::http;

/// The label of every path that is not one of the API's methods.
pub const OTHER: &str = "other";

/// The gRPC methods a server serves, as `package.Service/Method`.
#[derive(Debug, Clone)]
pub struct MethodSet {
    methods: HashSet<Arc<str>>,
    other: Arc<str>,
}

impl MethodSet {
    /// The methods of every service in the encoded `FileDescriptorSet`s.
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Result<Self, prost::DecodeError> {
        let mut methods = HashSet::new();
        for bytes in sets {
            let set = prost_types::FileDescriptorSet::decode(*bytes)?;
            for file in &set.file {
                let package = file.package();
                for service in &file.service {
                    for method in &service.method {
                        let name = if package.is_empty() {
                            format!("{}/{}", service.name(), method.name())
                        } else {
                            format!("{package}.{}/{}", service.name(), method.name())
                        };
                        methods.insert(Arc::from(name));
                    }
                }
            }
        }
        Ok(Self {
            methods,
            other: Arc::from(OTHER),
        })
    }

    /// The methods this scheduler serves: the Berth API (`berth_proto`), gRPC health
    /// and server reflection (v1 and v1alpha).
    pub fn standard() -> Self {
        Self::from_descriptor_sets(&[
            berth_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ])
        .expect("the compiled-in file descriptor sets decode")
    }

    /// The label for a request path: the method when it is one of ours, else `other`.
    pub fn label(&self, path: &str) -> Arc<str> {
        let name = path.strip_prefix('/').unwrap_or(path);
        self.methods
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.other.clone())
    }

    /// Every method, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.methods.iter().map(|m| &**m).collect();
        v.sort_unstable();
        v
    }
}

/// Wraps a service with [`RpcMetrics`].
#[derive(Clone)]
pub struct RpcMetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// Records `berth_rpc_requests_total` and `berth_rpc_duration_seconds`.
#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// Records one request once: with the code it ended with, or `CANCELLED` when dropped
/// before it ended.
struct Recorder {
    metrics: Arc<Metrics>,
    method: Arc<str>,
    started: Instant,
    done: bool,
}

impl Recorder {
    fn record(&mut self, code: tonic::Code) {
        if !self.done {
            self.done = true;
            self.metrics.rpc(&self.method, code, self.started.elapsed());
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.record(tonic::Code::Cancelled);
    }
}

/// The status in a `grpc-status` header or trailer, if any.
fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|v| tonic::Code::from_bytes(v.as_bytes()))
}

impl<S, B, RB> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: Body + Unpin,
{
    type Response = http::Response<MeteredBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut recorder = Recorder {
            method: self.metrics.methods.label(req.uri().path()),
            metrics: self.metrics.clone(),
            started: Instant::now(),
            done: false,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            match fut.await {
                Ok(response) => {
                    // A trailers-only response (most errors) has its status in the headers.
                    if let Some(code) = grpc_status(response.headers()) {
                        recorder.record(code);
                    }
                    Ok(response.map(|inner| MeteredBody { inner, recorder }))
                }
                Err(e) => {
                    recorder.record(tonic::Code::Unknown);
                    Err(e)
                }
            }
        })
    }
}

/// A response body that records its request when its trailers arrive or it ends.
pub struct MeteredBody<B> {
    inner: B,
    recorder: Recorder,
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    this.recorder.record(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.recorder.record(tonic::Code::Unknown),
            // Ended without a status: not a gRPC response (a gRPC one always has one).
            Poll::Ready(None) => this.recorder.record(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_come_only_from_the_compiled_api() {
        let m = MethodSet::standard();
        assert_eq!(
            &*m.label("/berth.v1.Jobs/SubmitJob"),
            "berth.v1.Jobs/SubmitJob"
        );
        assert_eq!(
            &*m.label("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health/Check"
        );
        for reflection in [
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(&*m.label(reflection), &reflection[1..]);
        }
        // Anything a caller invents is `other`, however plausible it looks.
        for path in [
            "/berth.v1.Jobs/NoSuchMethod",
            "/berth.v1.Jobs/SubmitJob/",
            "/berth.v1.Jobs/submitjob",
            "/evil/../x",
            "/",
            "",
            "/berth.v1.Jobs/a b",
        ] {
            assert_eq!(&*m.label(path), OTHER, "{path:?}");
        }
    }

    #[test]
    fn every_service_of_the_api_is_in_the_set() {
        let m = MethodSet::standard();
        let names = m.names();
        for service in [
            "Identity",
            "Capacity",
            "Reservations",
            "Jobs",
            "Usage",
            "Admin",
            "Agent",
        ] {
            let prefix = format!("berth.v1.{service}/");
            assert!(
                names.iter().any(|n| n.starts_with(&prefix)),
                "no method of {service} in {names:?}"
            );
        }
        assert!(names.len() < 500, "a bounded set: {}", names.len());
    }

    #[test]
    fn a_bad_descriptor_set_is_an_error() {
        assert!(MethodSet::from_descriptor_sets(&[&[0xff, 0xff, 0xff]]).is_err());
    }
}
