# berth-agent: runs on every accelerator server, reports its devices and runs jobs in
# containers on the host's Docker engine (mount /var/run/docker.sock).
#
# The binary is built outside Docker (`cargo build --release -p berth-agent`) and copied
# in by scripts/build-images.sh. It needs glibc, libm and libgcc_s; NVML
# (libnvidia-ml.so.1) comes from the host through the NVIDIA container toolkit, and
# rbln-smi / furiosa-smi are mounted from the host (--npu-tool-dir).
ARG BASE=gcr.io/distroless/cc-debian12
FROM ${BASE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="berth-agent" \
      org.opencontainers.image.description="Berth node agent: device discovery, health, DCGM-named metrics and jobs in hardened containers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY berth-agent /usr/local/bin/berth-agent
# Root, for the Docker socket and the host state directory; the Helm chart drops every
# capability and makes the root filesystem read-only.
USER 0:0
# The NVIDIA container toolkit then gives the agent NVML and every GPU to read.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility \
    BERTH_STATE_DIR=/var/lib/berth-agent \
    BERTH_METRICS_ADDR=0.0.0.0:9400
EXPOSE 9400
ENTRYPOINT ["/usr/local/bin/berth-agent"]
