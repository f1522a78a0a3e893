# syntax=docker/dockerfile:1.7
#
# Images of the operator and of the sink runtime, from one build of the workspace.
#
#   docker buildx build --target operator -t ghcr.io/adbsink/adbsink-operator:0.1.0 .
#   docker buildx build --target runtime  -t ghcr.io/adbsink/adbsink-runtime:0.1.0 .
#
# Reproducible builds: pass the commit time and let BuildKit clamp layer timestamps to it:
#
#   docker buildx build --target operator \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" \
#     --output type=image,name=ghcr.io/adbsink/adbsink-operator:0.1.0,rewrite-timestamp=true .
#
# The runtime images are distroless (no shell, no package manager), run as 65532:65532 and
# need no network access other than what the program itself uses.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder

# rdkafka builds a bundled librdkafka with cmake and links OpenSSL; the other -dev packages cover
# the optional librdkafka features (SASL, zlib, curl) should they be switched on.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake g++ pkg-config libssl-dev libsasl2-dev zlib1g-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*

ENV CARGO_INCREMENTAL=0 \
    CARGO_TERM_COLOR=never \
    CARGO_NET_RETRY=5 \
    RUSTFLAGS="--remap-path-prefix=/src=/build --remap-path-prefix=/usr/local/cargo=/cargo"

WORKDIR /src
COPY . .

# Commit time (seconds since the epoch); normalises file times in the output.
ARG SOURCE_DATE_EPOCH

# Build both binaries against the committed Cargo.lock, then stage one root filesystem per image:
# the binary plus the shared libraries it links that the distroless cc image does not ship
# (everything except glibc and the GCC runtime), at their Debian multiarch path.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eux; \
    cargo build --release --locked --bin adbsink-operator --bin adbsink-runtime; \
    multiarch="$(gcc -print-multiarch)"; \
    for pair in operator:adbsink-operator runtime:adbsink-runtime; do \
      image="${pair%%:*}"; bin="${pair#*:}"; root="/out/${image}"; \
      install -D -m 0755 "target/release/${bin}" "${root}/usr/local/bin/${bin}"; \
      if ldd "target/release/${bin}" | grep 'not found'; then exit 1; fi; \
      ldd "target/release/${bin}" \
        | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' \
        | grep -Ev '/(ld-linux[^/]*|libc|libm|libdl|libpthread|librt|libresolv|libutil|libgcc_s|libstdc\+\+)\.so' \
        | while read -r lib; do \
            install -D -m 0644 "$(readlink -f "${lib}")" "${root}/usr/lib/${multiarch}/$(basename "${lib}")"; \
          done; \
    done; \
    if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then \
      find /out -exec touch -h -d "@${SOURCE_DATE_EPOCH}" {} +; \
    fi; \
    find /out -type f | sort

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS operator
LABEL org.opencontainers.image.title="adbsink-operator" \
      org.opencontainers.image.description="Kubernetes operator reconciling AnalyticDBSink resources" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/operator/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/adbsink-operator"]

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="adbsink-runtime" \
      org.opencontainers.image.description="Kafka topic to AnalyticDB sink runtime" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/runtime/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/adbsink-runtime"]
