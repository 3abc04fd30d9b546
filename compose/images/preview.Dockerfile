# The preview image: Debian, Node.js, npm, git, and the `doce-preview` entry point that runs
# a project's dev server. Built by `manage.py build_images`, which fills the build context:
#   rootfs/usr/local/lib/node_modules/npm/   npm (pinned NPM_VERSION), always
#   rootfs/usr/local/bin/node                Node.js (pinned NODE_VERSION), offline builds only
#   rootfs/usr/local/bin/doce-preview        compose/images/doce-preview.sh
# BASE_IMAGE is the debootstrap base (offline; git, tini, ripgrep already in it) or the
# public Node image (default; those three come from apt).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG NODE_VERSION
COPY rootfs/ /
RUN set -eu; \
    if ! command -v git >/dev/null || ! command -v tini >/dev/null || ! command -v rg >/dev/null; then \
        apt-get update; \
        apt-get install -y --no-install-recommends git tini ripgrep ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm; \
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx; \
    test "$(node --version)" = "v${NODE_VERSION}"; \
    npm --version; \
    mkdir -p /app /home/doce; \
    chmod 1777 /home/doce
# Containers run as the doce host user's uid, which has no passwd entry: HOME must be
# writable by anyone, and git needs a committer identity of its own.
ENV HOME=/home/doce \
    GIT_AUTHOR_NAME=doce GIT_AUTHOR_EMAIL=doce@localhost \
    GIT_COMMITTER_NAME=doce GIT_COMMITTER_EMAIL=doce@localhost \
    NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false \
    ASTRO_TELEMETRY_DISABLED=1
WORKDIR /app
EXPOSE 4321
# tini as PID 1 forwards SIGTERM and reaps children, so `compose stop` is quick.
ENTRYPOINT ["tini", "--"]
CMD ["doce-preview"]
