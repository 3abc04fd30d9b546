#!/bin/sh
# Entry point of a project's preview container: install the site's dependencies when they
# are missing (through the shared npm cache, so a prewarmed cache needs no network), then run
# the dev server on 0.0.0.0:4321 in the foreground.
set -eu
cd /app
if [ ! -f node_modules/.package-lock.json ]; then
    echo "doce-preview: installing dependencies"
    if [ -f package-lock.json ]; then
        npm ci --prefer-offline --no-audit --no-fund
    else
        npm install --prefer-offline --no-audit --no-fund
    fi
fi
# A lock file left by the previous container names a process that no longer exists; this
# container runs the only dev server of the site.
rm -f .astro/dev.json
if [ -f node_modules/astro/bin/astro.mjs ]; then
    exec node node_modules/astro/bin/astro.mjs dev --host 0.0.0.0 --port 4321 --ignore-lock
fi
exec npm run dev -- --host 0.0.0.0 --port 4321
