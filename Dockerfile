# qqbridge: the one binary (bridge run | demo | tail | send) in a static image.
#   docker build -t qqbridge .
#   docker run --rm qqbridge demo
#   docker run --rm -e QQBRIDGE_NATS=nats://nats:4222 -e QQBRIDGE_SESSION_KEY=… -p 8081:8081 qqbridge
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/bridge ./cmd/bridge

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="qqbridge" \
      org.opencontainers.image.description="SmartQQ account bridged onto NATS JetStream" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/bridge /usr/local/bin/bridge
COPY LICENSE /usr/share/doc/qqbridge/LICENSE
# The HTTP port (probes, /metrics, the status page) must be reachable from
# outside the container.
# Without QQBRIDGE_NATS the embedded nats-server keeps its store under the
# working directory: mount a volume there (or set QQBRIDGE_DATA_DIR) to keep it.
ENV QQBRIDGE_HTTP=0.0.0.0:8081
WORKDIR /home/nonroot
USER nonroot:nonroot
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/bridge"]
CMD ["run"]
