# syntax=docker/dockerfile:1
#
# One image for every program a deployment runs: the command picks which.
#   docker build -t pgbackup .
#   docker run pgbackup api          (the default)
#   docker run pgbackup worker
#   docker run pgbackup scheduler
#   docker run pgbackup archiver     (continuous WAL archiving)
#   docker run pgbackup pgbackup --help   (the one-shot CLI)
# cmd/internal/deploy's test checks that every main package under cmd/
# that is not a development tool is built and copied here.
#
# pg_dump refuses to dump a server newer than itself, so the image carries
# the PostgreSQL client of every major version in PG_CLIENT_MAJORS, and
# the programs pick the one matching each server (PG_BIN_DIR unset); an
# older server than all of them is dumped by the oldest newer client.

# The two base images follow their release lines (Go 1.26, Debian
# bookworm) rather than a fixed build: each image build then gets Debian's
# security fixes. The servers in docker-compose.yml, which hold data, are
# pinned to exact versions instead.
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ \
	./cmd/api ./cmd/worker ./cmd/scheduler ./cmd/archiver ./cmd/pgbackup

FROM debian:bookworm-slim
# The majors the PostgreSQL project supports; add one here when a new
# server major comes out (the API reports ErrNoMatchingClient until then).
ARG PG_CLIENT_MAJORS="14 15 16 17 18"
# Debian bookworm ships only PostgreSQL 15; postgresql-common's script adds
# the PostgreSQL project's own apt repository (its key ships in the
# package), which has every supported major version.
RUN set -eux; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		ca-certificates tini postgresql-common; \
	/usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; \
	pkgs=''; for v in $PG_CLIENT_MAJORS; do pkgs="$pkgs postgresql-client-$v"; done; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs; \
	rm -rf /var/lib/apt/lists/*; \
	for v in $PG_CLIENT_MAJORS; do "/usr/lib/postgresql/$v/bin/pg_dump" --version; done

# The user and group 10001, and the directories the compose volumes mount
# (a named volume starts as a copy of the image's directory, owner included).
RUN set -eux; \
	groupadd --system --gid 10001 pgbackup; \
	useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/pgbackup \
		--no-create-home --shell /usr/sbin/nologin pgbackup; \
	install -d -o 10001 -g 10001 -m 0750 \
		/var/lib/pgbackup /var/lib/pgbackup/backups /var/lib/pgbackup/work

COPY --from=build /out/ /usr/local/bin/

# Settings that belong to the image; everything else comes from the
# environment at run time (configs/config.go lists every variable). No
# PG_BIN_DIR: it would turn off picking the client for the server's major.
ENV BACKUP_DIR=/var/lib/pgbackup/backups \
	WORK_DIR=/var/lib/pgbackup/work \
	API_ADDR=:8080

USER 10001:10001
WORKDIR /var/lib/pgbackup
EXPOSE 8080
# tini forwards SIGTERM to the program and reaps pg_dump/pg_restore
# children, so a stopping worker gets its grace period.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["api"]
