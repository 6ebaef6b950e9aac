# syntax=docker/dockerfile:1
#
# The `epp` image: a release build of the Endpoint Picker on Debian 12, run on
# distroless (no shell, no package manager) as the non-root user 65532, which the
# manifests' securityContext expects. Build and load it, e.g.
#
#   docker build -t epp:latest .
#   kind load docker-image epp:latest      # or push it and set the image in an overlay
#
# The binary links glibc dynamically (distroless/cc carries glibc, libgcc_s and CA
# certificates; about 25 MB in all) rather than being a static musl build: musl's
# allocator is markedly slower under the many small, multi-threaded allocations of
# the ext_proc path, and the crate sets no other global allocator. Builder and
# runtime are both Debian 12 (bookworm), so the glibc versions match.
# Multi-arch: `docker buildx build --platform linux/amd64,linux/arm64 ...` builds
# natively per platform (the vendored protoc of build.rs exists for both).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# BuildKit cache mounts keep the crate registry and incremental artifacts between
# builds; the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin epp \
    && install -D -m 0755 target/release/epp /out/epp

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/epp /epp
USER 65532:65532
# ext_proc (gRPC), gRPC health, metrics.
EXPOSE 9002 9003 9090
ENTRYPOINT ["/epp"]
