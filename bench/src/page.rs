//! `ListJobs` read the way a load generator needs it: each page's jobs are counted, and
//! their fields left undecoded. Decoding 500 jobs cost the client about as much CPU as
//! the server spent answering, on the same cores.

use crate::ops::Authed;
use berth_proto::v1;
use prost::bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_key, skip_field};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Request, Status};
use tonic_prost::ProstCodec;

/// A page of `berth.v1.ListJobsResponse`, its jobs counted.
#[derive(Debug, Default, PartialEq)]
pub struct JobCount {
    /// Jobs on the page.
    pub jobs: usize,
    /// The next page's token (empty on the last page).
    pub next_page_token: String,
}

/// Calls `berth.v1.Jobs/ListJobs` and counts the page's jobs.
pub async fn list_jobs(channel: Authed, req: v1::ListJobsRequest) -> Result<JobCount, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/berth.v1.Jobs/ListJobs");
    Ok(grpc
        .unary(Request::new(req), path, CountCodec)
        .await?
        .into_inner())
}

/// Encodes the request with prost; reads the answer as a [`JobCount`].
struct CountCodec;

impl Codec for CountCodec {
    type Encode = v1::ListJobsRequest;
    type Decode = JobCount;
    type Encoder = <ProstCodec<v1::ListJobsRequest, v1::ListJobsResponse> as Codec>::Encoder;
    type Decoder = CountDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<v1::ListJobsRequest, v1::ListJobsResponse>::raw_encoder(
            BufferSettings::default(),
        )
    }

    fn decoder(&mut self) -> CountDecoder {
        CountDecoder
    }
}

/// Counts a page's jobs.
struct CountDecoder;

impl Decoder for CountDecoder {
    type Item = JobCount;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<JobCount>, Status> {
        count(buf)
            .map(Some)
            .map_err(|e| Status::internal(format!("ListJobsResponse: {e}")))
    }
}

/// Reads a `ListJobsResponse`: field 1 (a job) is counted and skipped, field 2 read,
/// anything else skipped.
fn count(buf: &mut impl Buf) -> Result<JobCount, prost::DecodeError> {
    let mut page = JobCount::default();
    while buf.has_remaining() {
        match decode_key(buf)? {
            (1, WireType::LengthDelimited) => {
                skip_field(WireType::LengthDelimited, 1, buf, DecodeContext::default())?;
                page.jobs += 1;
            }
            (2, wire) => {
                prost::encoding::string::merge(
                    wire,
                    &mut page.next_page_token,
                    buf,
                    DecodeContext::default(),
                )?;
            }
            (tag, wire) => skip_field(wire, tag, buf, DecodeContext::default())?,
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn counts_what_the_generated_types_decode() {
        let job = |id: &str| v1::Job {
            id: id.into(),
            command: vec!["sleep".into(), "1".into()],
            env: [("A".to_owned(), "x".repeat(300))].into_iter().collect(),
            ..Default::default()
        };
        for (jobs, token) in [
            (vec![job("a"), job("b"), v1::Job::default()], "next"),
            (vec![], ""),
            (vec![job("c")], ""),
        ] {
            let page = v1::ListJobsResponse {
                jobs,
                next_page_token: token.into(),
            };
            let bytes = page.encode_to_vec();
            assert_eq!(
                count(&mut &bytes[..]).expect("reads"),
                JobCount {
                    jobs: page.jobs.len(),
                    next_page_token: token.into(),
                }
            );
        }
    }

    #[test]
    fn a_page_cut_inside_a_field_is_an_error() {
        let page = v1::ListJobsResponse {
            jobs: vec![v1::Job {
                id: "a".into(),
                ..Default::default()
            }],
            next_page_token: "next".into(),
        };
        let bytes = page.encode_to_vec();
        // The job ends where the token's key and length (2 bytes) and "next" begin.
        let between = bytes.len() - 6;
        for cut in 1..bytes.len() {
            let read = count(&mut &bytes[..cut]);
            if cut == between {
                let p = read.expect("a page cut between fields reads");
                assert_eq!((p.jobs, p.next_page_token.as_str()), (1, ""));
            } else {
                assert!(read.is_err(), "cut at {cut} of {}: {read:?}", bytes.len());
            }
        }
    }
}
