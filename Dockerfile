# syntax=docker/dockerfile:1
#
# One image for all three programs: the command picks which one runs.
#   docker build -t pgbackup .
#   docker run pgbackup api          (the default)
#   docker run pgbackup worker
#   docker run pgbackup scheduler
#   docker run pgbackup pgbackup --help   (the one-shot CLI)
#
# pg_dump refuses to dump a server newer than itself, so the image carries
# the PostgreSQL client of the server's major version: build with
# --build-arg PG_MAJOR=17 for a PostgreSQL 17 server. Older servers work
# with a newer client.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ \
	./cmd/api ./cmd/worker ./cmd/scheduler ./cmd/pgbackup

FROM debian:bookworm-slim
ARG PG_MAJOR=16
# Debian bookworm ships only PostgreSQL 15; postgresql-common's script adds
# the PostgreSQL project's own apt repository (its key ships in the
# package), which has every supported major version.
RUN set -eux; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		ca-certificates tini postgresql-common; \
	/usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"postgresql-client-${PG_MAJOR}"; \
	rm -rf /var/lib/apt/lists/*; \
	"/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump" --version

RUN set -eux; \
	useradd --system --uid 10001 --user-group --home-dir /var/lib/pgbackup \
		--no-create-home --shell /usr/sbin/nologin pgbackup; \
	install -d -o pgbackup -g pgbackup -m 0750 \
		/var/lib/pgbackup /var/lib/pgbackup/backups /var/lib/pgbackup/work

COPY --from=build /out/ /usr/local/bin/

# Settings that belong to the image; everything else comes from the
# environment at run time (configs/config.go lists every variable).
ENV PG_BIN_DIR=/usr/lib/postgresql/${PG_MAJOR}/bin \
	BACKUP_DIR=/var/lib/pgbackup/backups \
	WORK_DIR=/var/lib/pgbackup/work \
	API_ADDR=:8080

USER 10001:10001
WORKDIR /var/lib/pgbackup
EXPOSE 8080
# tini forwards SIGTERM to the program and reaps pg_dump/pg_restore
# children, so a stopping worker gets its grace period.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["api"]
