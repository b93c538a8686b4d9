# Multi-stage build: compile in the Rust image, run in a slim Debian image as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY migrations ./migrations
COPY scim-schemas ./scim-schemas
COPY src ./src
# The manifest names the bench targets; cargo refuses a manifest whose targets are missing.
COPY benches ./benches
RUN cargo build --release --locked --bin seatbridge \
 && strip target/release/seatbridge

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
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
