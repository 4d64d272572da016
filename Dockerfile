# Builds both binaries: the service (default entrypoint) and the DOKU simulator (/dokusim).
# TestDockerfileCopiesWhatTheBuildNeeds (cmd/o2o/deploy_test.go) runs this build stage's `go build`
# lines on exactly what its COPY lines bring in, so a missing COPY fails `make test`, not the image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# api embeds openapi.yaml (served by the service); migrations embeds the schema.
COPY api ./api
COPY cmd ./cmd
COPY internal ./internal
COPY migrations ./migrations
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/o2o ./cmd/o2o && \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/dokusim ./cmd/dokusim

# Static binaries, no shell, not root. Migrations are embedded in /o2o.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/o2o /o2o
COPY --from=build /out/dokusim /dokusim
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/o2o"]
