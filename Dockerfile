# syntax=docker/dockerfile:1
# statsync: build with the pinned Cargo.lock, run as a non-root user on slim Debian.
#   docker build --build-arg STATSYNC_REVISION=$(git rev-parse --short HEAD) -t statsync:0.1.0 .
# .ci/run reads ENTRYPOINT and CMD below and runs them against the release build, so
# change them here only.

FROM rust:1-bookworm AS builder
# The `revision` label of statsync_build_info (.git is not sent to the builder); an ARG
# is in the environment of this stage's RUN, where cargo reads it.
ARG STATSYNC_REVISION=unknown
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY sql ./sql
COPY config ./config
# Cache mounts keep the registry and compiled dependencies between builds; the binary
# is copied out because the target cache is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/statsync /out/statsync

FROM debian:bookworm-slim AS runtime
# ca-certificates: outbound HTTPS to GitHub, Linear and the agent API.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 statsync \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin statsync
COPY --from=builder /out/statsync /usr/local/bin/statsync
COPY config /etc/statsync
# In a container the database is always external: set DATABASE_URL (the embedded
# PostgreSQL is for local development and its binaries are not in this image).
ENV STATSYNC__HTTP__HOST=0.0.0.0 \
    STATSYNC__LOG__FORMAT=json
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["statsync"]
CMD ["serve"]
