# berth-scheduler: the Berth control plane.
#
# The binary is built outside Docker (`cargo build --release -p berth-scheduler`) and
# copied in: scripts/build-images.sh prepares the build context. It needs only glibc,
# libm and libgcc_s (TLS is rustls, SQLite is compiled in), so any glibc base works:
# BASE must provide those and a user 65532.
ARG BASE=gcr.io/distroless/cc-debian12:nonroot
FROM ${BASE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="berth-scheduler" \
      org.opencontainers.image.description="Berth scheduler: bookings, queue, budgets and the agent protocol over gRPC" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY berth-scheduler /usr/local/bin/berth-scheduler
# The data directory (SQLite for small installs, the bootstrap admin token), owned by
# the unprivileged user; mount a volume here, or PostgreSQL makes it near-empty.
COPY --chown=65532:65532 data/ /var/lib/berth/
USER 65532:65532
ENV BERTH_DATA_DIR=/var/lib/berth
# gRPC API, and HTTP /metrics /healthz /readyz.
EXPOSE 7070 7071
ENTRYPOINT ["/usr/local/bin/berth-scheduler"]
CMD ["--grpc-addr=0.0.0.0:7070", "--http-addr=0.0.0.0:7071"]
