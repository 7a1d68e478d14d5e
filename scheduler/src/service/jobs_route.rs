//! `berth.v1.Jobs` on the wire: `ListJobs` answered with a [`JobsPage`] written straight
//! from the rows through its own codec, every other method by the generated server.

use super::jobs_page::JobsPage;
use super::{JobsService, Shared};
use crate::auth::{Charge, caller};
use berth_proto::v1;
use berth_proto::v1::jobs_server::JobsServer;
use prost::bytes::BufMut;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::codegen::{Body, Service, http};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// The path of `ListJobs`.
const LIST_JOBS: &str = "/berth.v1.Jobs/ListJobs";

/// `berth.v1.Jobs`, with `ListJobs` written from the rows.
#[derive(Clone)]
pub struct JobsRoutes {
    engine: Shared,
    generated: JobsServer<JobsService>,
    max_message_bytes: usize,
}

impl JobsRoutes {
    /// The service over `engine`, refusing messages over `max_message_bytes` both ways.
    pub fn new(engine: Shared, max_message_bytes: usize) -> Self {
        JobsRoutes {
            generated: JobsServer::new(JobsService(engine.clone()))
                .max_decoding_message_size(max_message_bytes)
                .max_encoding_message_size(max_message_bytes),
            engine,
            max_message_bytes,
        }
    }
}

impl NamedService for JobsRoutes {
    const NAME: &'static str = <JobsServer<JobsService> as NamedService>::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<B> Service<http::Request<B>> for JobsRoutes
where
    B: Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != LIST_JOBS {
            return Box::pin(self.generated.call(req));
        }
        let list = ListJobs(self.engine.clone());
        let limit = Some(self.max_message_bytes);
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(PageCodec).apply_max_message_size_config(limit, limit);
            Ok(grpc.unary(list, req).await)
        })
    }
}

/// `ListJobs`: the engine's page, charged to the caller by its size.
struct ListJobs(Shared);

impl tonic::server::UnaryService<v1::ListJobsRequest> for ListJobs {
    type Response = JobsPage;
    type Future = BoxFuture<Result<Response<JobsPage>, Status>>;

    fn call(&mut self, req: Request<v1::ListJobsRequest>) -> Self::Future {
        let engine = self.0.clone();
        Box::pin(async move {
            let c = caller(&req)?;
            let page = JobsPage::new(engine.list_jobs(&c, req.get_ref()).await?);
            if let Some(charge) = req.extensions().get::<Charge>() {
                charge.reply(page.encoded_len());
            }
            Ok(Response::new(page))
        })
    }
}

/// Decodes `ListJobsRequest` with prost; encodes a [`JobsPage`] itself.
struct PageCodec;

impl Codec for PageCodec {
    type Encode = JobsPage;
    type Decode = v1::ListJobsRequest;
    type Encoder = PageEncoder;
    type Decoder = <ProstCodec<v1::ListJobsResponse, v1::ListJobsRequest> as Codec>::Decoder;

    fn encoder(&mut self) -> PageEncoder {
        PageEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<v1::ListJobsResponse, v1::ListJobsRequest>::raw_decoder(
            BufferSettings::default(),
        )
    }
}

/// Writes a [`JobsPage`].
struct PageEncoder;

impl Encoder for PageEncoder {
    type Item = JobsPage;
    type Error = Status;

    fn encode(&mut self, page: JobsPage, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // Written to a vector first and copied once: the encode buffer takes each byte of
        // a varint as a slice of its own, which cost more than the rest of the writing.
        let mut bytes = Vec::with_capacity(page.encoded_len());
        page.write(&mut bytes);
        buf.put_slice(&bytes);
        Ok(())
    }
}
