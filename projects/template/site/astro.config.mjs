// @ts-check
import { defineConfig } from "astro/config";

// doce's preview bridge, in the dev server only (never in a build): each page loads
// /.doce/bridge.js from the preview host, which tells the doce workspace around the preview
// which page is shown and which errors happened (by postMessage, to doce's origin only).
// Errors thrown before it loads are queued for it.
const BRIDGE_LOADER = `(function () {
  var early = (window.__doceEarlyErrors = []);
  window.addEventListener("error", function (e) {
    if (e.message) early.push([e.message, (e.error && e.error.stack) || ""]);
  });
  var script = document.createElement("script");
  script.src = "/.doce/bridge.js";
  script.async = true;
  document.head.appendChild(script);
})();`;

/** @type {import("astro").AstroIntegration} */
const docePreviewBridge = {
  name: "doce-preview-bridge",
  hooks: {
    "astro:config:setup": ({ command, injectScript }) => {
      if (command === "dev") injectScript("head-inline", BRIDGE_LOADER);
    },
  },
};

// The dev server runs inside the preview container and is reached through a published
// port (or a proxy in front of doce), so it listens on every interface and accepts any
// Host header. The dev toolbar would cover the preview frame, so it stays off.
export default defineConfig({
  server: { host: true, port: 4321, allowedHosts: true },
  devToolbar: { enabled: false },
  integrations: [docePreviewBridge],
});
