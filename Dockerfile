# engauge container image: a static-ish Rust build on Debian, run as an unprivileged user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p engauge && cp target/release/engauge /engauge

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 engauge
COPY --from=build /engauge /usr/local/bin/engauge
COPY config.example.toml /etc/engauge/engauge.toml
USER engauge
EXPOSE 9898
ENV ENGAUGE__HTTP__LISTEN=0.0.0.0:9898
ENTRYPOINT ["engauge"]
CMD ["run", "--config", "/etc/engauge/engauge.toml"]
