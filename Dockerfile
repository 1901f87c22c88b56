# syntax=docker/dockerfile:1
# The one Osprey image: every role (`osprey up`, `operator`, `collector`, ...) is a subcommand
# of the same binary.
#   docker build -t osprey .
#   docker run --rm -p 9201:9201 -p 4317:4317 -p 4318:4318 -v osprey-data:/var/lib/osprey osprey
# The default command is the all-in-one server listening on every interface, its data in
# /var/lib/osprey; Kubernetes manifests (`osprey install`, the Helm chart) set their own args.

# ---------------------------------------------------------------- build
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The registry, git checkouts and target dir are cache mounts (kept between builds, never in
# a layer), so the binary is copied out of target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p osprey --bin osprey \
    && install -D -m 0755 target/release/osprey /out/usr/local/bin/osprey \
    && mkdir -p /out/var/lib/osprey

# ---------------------------------------------------------------- runtime
# glibc + libgcc only (TLS is rustls, the allocator is linked in); nonroot is uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/osprey /usr/local/bin/osprey
COPY --from=build --chown=65532:65532 /out/var/lib/osprey /var/lib/osprey
USER 65532:65532
WORKDIR /var/lib/osprey
VOLUME ["/var/lib/osprey"]
# OTLP gRPC, OTLP HTTP, query + UI, OTLP gRPC (Promscale's port), Jaeger thrift HTTP, Jaeger
# gRPC, Zipkin, PostgreSQL wire, the operator's webhook.
EXPOSE 4317 4318 9201 9202 14268 14250 9411 5433 9443
ENTRYPOINT ["osprey"]
CMD ["up", "--listen-all", "--data-dir", "/var/lib/osprey"]
