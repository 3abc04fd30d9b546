# Postgres from Debian's packages, for `scripts/scale-up --offline` (hosts without a
# container registry). Takes the official image's settings (POSTGRES_USER, POSTGRES_DB,
# POSTGRES_PASSWORD; data in /var/lib/postgresql/data), so compose/docker-compose.scale.yml
# runs either image unchanged.
ARG BASE_IMAGE=doce-base:bookworm
FROM ${BASE_IMAGE}
RUN set -eu; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 gosu; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /var/lib/postgresql/data /var/run/postgresql; \
    chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY doce-postgres.sh /usr/local/bin/doce-postgres
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["tini", "--", "doce-postgres"]
