// @ts-check
import { defineConfig } from "astro/config";

// The dev server runs inside the preview container and is reached through a published
// port (or a proxy in front of doce), so it listens on every interface and accepts any
// Host header. The dev toolbar would cover the preview frame, so it stays off.
export default defineConfig({
  server: { host: true, port: 4321, allowedHosts: true },
  devToolbar: { enabled: false },
});
