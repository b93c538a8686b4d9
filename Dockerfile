# Multi-stage build: compile in the Rust image, run in a slim Debian image as a non-root user.
# The base images are build arguments so that a registry mirror can stand in for Docker Hub:
#   docker build --build-arg RUST_IMAGE=mirror.example/rust:1.95-bookworm ...
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY migrations ./migrations
COPY scim-schemas ./scim-schemas
COPY src ./src
# The manifest names the bench targets; cargo refuses a manifest whose targets are missing.
COPY benches ./benches
RUN cargo build --release --locked --bin seatbridge \
 && strip target/release/seatbridge

FROM ${RUNTIME_IMAGE} AS runtime
# `apt-get clean` and /var/cache/apt: a base without Docker's apt hook would keep about 80 MB of
# package caches in this layer (seen with a debootstrap base: 92.5 MB before, 10.7 MB after).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && useradd --system --uid 10001 --home-dir /data --create-home seatbridge
COPY --from=build /src/target/release/seatbridge /usr/local/bin/seatbridge
USER seatbridge
WORKDIR /data
ENV DATABASE_URL="sqlite:///data/seatbridge.db?mode=rwc" \
    SEATBRIDGE_LISTEN="0.0.0.0:8080" \
    SEATBRIDGE_LOG_FORMAT="json"
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["seatbridge"]
CMD ["serve"]
