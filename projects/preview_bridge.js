// doce's preview bridge, served at /.doce/bridge.js on every preview host and loaded by the
// site template's dev server (astro.config.mjs). It tells the workspace around the preview
// which page is shown and which runtime errors happened, and posts to doce's origin only
// (filled in when served); the workspace checks the sender's origin in turn.
//   {type: "doce:preview-location", path, load}      on load (load: true) and on every
//                                                      navigation
//   {type: "doce:preview-error", message, detail, path}  uncaught errors, rejected promises,
//                                                      and the dev server's error overlay
(function () {
  "use strict";
  var DOCE_ORIGIN = "__DOCE_ORIGIN__";
  if (window.parent === window || window.__doceBridge) return;
  window.__doceBridge = true;
  var MAX = 4000;

  function send(message) {
    try { window.parent.postMessage(message, DOCE_ORIGIN); } catch (e) { /* detached */ }
  }
  function here() { return location.pathname + location.search + location.hash; }
  function reportLocation(loaded) {
    send({ type: "doce:preview-location", path: here(), load: loaded === true });
  }
  var lastError = "";
  function reportError(message, detail) {
    message = String(message || "Unknown error").slice(0, MAX);
    detail = String(detail || "").slice(0, MAX);
    if (message + detail === lastError) return;  // the same error once, not per frame
    lastError = message + detail;
    send({ type: "doce:preview-error", message: message, detail: detail, path: here() });
  }

  window.addEventListener("error", function (event) {
    if (!event.message) return;  // a resource failed to load: not a script error
    var where = event.filename ? event.filename + ":" + event.lineno + ":" + event.colno : "";
    reportError(event.message, (event.error && event.error.stack) || where);
  });
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    reportError("Unhandled promise rejection: " + (reason && reason.message ? reason.message : reason),
      reason && reason.stack);
  });
  // The page first, then the errors seen before this script loaded (the template's inline
  // part queues them).
  reportLocation(true);
  (window.__doceEarlyErrors || []).forEach(function (e) { reportError(e[0], e[1]); });

  // The dev server shows build and render errors in its own overlay element.
  function overlayText(node) {
    var root = node.shadowRoot || node;
    var message = root.querySelector(".message, #message-content, [data-message]");
    return (message ? message.textContent : root.textContent || "").trim();
  }
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      record.addedNodes.forEach(function (node) {
        if (node.nodeType === 1 && /error-overlay$/i.test(node.tagName)) {
          setTimeout(function () { reportError(overlayText(node) || "The page failed to build.", ""); }, 50);
        }
      });
    });
  }).observe(document.documentElement, { childList: true, subtree: true });

  ["pushState", "replaceState"].forEach(function (name) {
    var original = history[name];
    history[name] = function () {
      var result = original.apply(this, arguments);
      reportLocation(false);
      return result;
    };
  });
  window.addEventListener("popstate", function () { reportLocation(); });
  window.addEventListener("hashchange", function () { reportLocation(); });
  document.addEventListener("astro:page-load", function () { reportLocation(); });
})();
