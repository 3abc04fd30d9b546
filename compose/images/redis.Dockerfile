# Redis from Debian's packages, for `scripts/scale-up --offline` (hosts without a container
# registry); compose/docker-compose.scale.yml gives the command line either image runs.
ARG BASE_IMAGE=doce-base:bookworm
FROM ${BASE_IMAGE}
RUN set -eu; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; \
    rm -rf /var/lib/apt/lists/*
EXPOSE 6379
ENTRYPOINT ["tini", "--"]
CMD ["redis-server", "--protected-mode", "no"]
