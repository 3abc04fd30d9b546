# The agent image: the preview image plus the pinned OpenCode server binary (build context:
# `opencode`, from the npm package opencode-linux-x64@OPENCODE_VERSION).
ARG PREVIEW_IMAGE
FROM ${PREVIEW_IMAGE}
ARG OPENCODE_VERSION
COPY opencode /usr/local/bin/opencode
RUN set -eu; \
    version="$(opencode --version)"; \
    test "${version}" = "${OPENCODE_VERSION}" || { echo "opencode is ${version}"; exit 1; }; \
    rm -rf /home/doce/.local /home/doce/.cache /home/doce/.config
ENV OPENCODE_DISABLE_AUTOUPDATE=1
EXPOSE 3000
CMD ["opencode", "serve", "--hostname", "0.0.0.0", "--port", "3000"]
