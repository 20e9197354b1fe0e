# syntax=docker/dockerfile:1
# Multi-stage build: static binaries (CGO_ENABLED=0; the embedded SQLite
# driver is pure Go) on a distroless, non-root runtime with no shell.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
COPY worker ./worker
COPY producer ./producer
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/worker ./cmd/worker \
 && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/producer ./cmd/producer

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="sixpotify-top-tracks" \
      org.opencontainers.image.description="Drains an SQS queue of Spotify artist IDs into a DynamoDB table of top tracks" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/worker /out/producer /usr/local/bin/
USER nonroot:nonroot
WORKDIR /home/nonroot
ENV HTTP_ADDR=:9090
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/worker", "healthcheck"]
# ECS sends SIGTERM and waits stopTimeout (30s by default); the worker exits within 25s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/worker"]
