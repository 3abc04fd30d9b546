// Workspace preview: the frame on the preview's own origin (p-<id>.<preview domain>, behind
// the edge), its address field, device sizes, and the runtime-error overlay.
//
// The site template loads doce's preview bridge (/.doce/bridge.js on the preview host), which
// posts {type: "doce:preview-location", path, load} and {type: "doce:preview-error", message,
// detail, path} to doce's origin; messages from any other origin or window are ignored.
// The frame is (re)loaded only through /projects/<id>/preview/enter?path=<path> (a fresh
// single-use entry token), always at the path last shown, so a reload, a restart or a moved
// preview port returns to the same page. Agent edits reach the page through the dev server's
// HMR, which keeps its path by itself; so do restores (with a late reload as a fallback).
(function () {
  "use strict";
  var root = document.querySelector("[data-workspace]");
  if (!root) return;
  var id = root.dataset.projectId;
  var frame = root.querySelector("[data-preview-frame]");
  var box = root.querySelector(".preview-frame");
  var overlay = root.querySelector("[data-preview-overlay]");
  var overlayText = root.querySelector("[data-preview-overlay-text]");
  var pathInput = root.querySelector("[data-preview-path]");
  var openLink = root.querySelector("[data-preview-open]");
  var errorBox = root.querySelector("[data-preview-error]");
  var errorText = root.querySelector("[data-preview-error-text]");
  var enter = root.dataset.previewEnter;
  var status = root.dataset.status;
  var previewPort = null;
  var storeKey = "doce.preview." + id;
  var saved = load();
  var path = typeof saved.path === "string" && saved.path.charAt(0) === "/" ? saved.path : "/";
  var lastError = null;

  function load() {
    try { return JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { return {}; }
  }
  function save(changes) {
    var state = load();
    Object.keys(changes).forEach(function (key) { state[key] = changes[key]; });
    try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }
  function enterUrl(at) {
    return at && at !== "/" ? enter + "?path=" + encodeURIComponent(at) : enter;
  }
  function showPath(at) {
    path = at;
    if (document.activeElement !== pathInput) pathInput.value = at;
    openLink.href = enterUrl(at);
    save({ path: at });
  }
  function load_(at) {
    if (status !== "running") return;
    hideError();
    frame.src = enterUrl(at);
  }
  showPath(path);
  // The server rendered the frame at "/": go where the user was instead.
  if (frame.getAttribute("src") && path !== "/") frame.src = enterUrl(path);

  root.querySelector("[data-preview-reload]").addEventListener("click", function () { load_(path); });
  root.addEventListener("doce:preview-reload", function () { load_(path); });

  // A restore (or its undo) put files back. The page's HMR socket is open already, so the
  // dev server reloads the page itself once it has seen the change. Reloading from here at
  // once raced it: a page fetched before the dev server saw the files came back stale, and
  // its reload message went out before the new page listened (seen stale for minutes under
  // load). So the frame is reloaded only when no page load is reported for a while.
  var RESTORE_SETTLE_MS = 3000;
  var settleTimer = null;
  root.addEventListener("doce:preview-files-restored", function () {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(function () { settleTimer = null; load_(path); }, RESTORE_SETTLE_MS);
  });
  root.querySelector("[data-preview-address-form]").addEventListener("submit", function (event) {
    event.preventDefault();
    var wanted = pathInput.value.trim() || "/";
    if (wanted.charAt(0) !== "/") wanted = "/" + wanted;
    showPath(wanted);
    load_(wanted);
    pathInput.blur();
  });
  pathInput.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { pathInput.value = path; pathInput.blur(); }
  });

  // --- device sizes ----------------------------------------------------------------------
  var devices = root.querySelectorAll("[data-device]");
  function showDevice(name) {
    if (!/^(desktop|tablet|phone)$/.test(name)) name = "desktop";
    box.dataset.previewDevice = name;
    devices.forEach(function (button) {
      button.setAttribute("aria-pressed", button.dataset.device === name ? "true" : "false");
    });
    save({ device: name });
  }
  devices.forEach(function (button) {
    button.addEventListener("click", function () { showDevice(button.dataset.device); });
  });
  showDevice(saved.device || "desktop");

  // --- messages from the preview bridge ----------------------------------------------------
  // Only from this frame's window, and only from the preview's exact origin.
  var previewOrigin = root.dataset.previewOrigin;
  function fromPreview(event) {
    return event.source === frame.contentWindow && event.origin === previewOrigin;
  }
  window.addEventListener("message", function (event) {
    if (!fromPreview(event) || !event.data || typeof event.data !== "object") return;
    var data = event.data;
    if (data.type === "doce:preview-location" && typeof data.path === "string" && data.path.charAt(0) === "/") {
      if (data.load === true) { clearTimeout(settleTimer); settleTimer = null; }
      var moved = data.path !== path;
      showPath(data.path.slice(0, 2000));
      if (moved || data.load === true) hideError();  // a new page: errors are reported anew
    } else if (data.type === "doce:preview-error" && typeof data.message === "string") {
      showError(data.message, typeof data.detail === "string" ? data.detail : "",
        typeof data.path === "string" ? data.path : path);
    }
  });

  // --- runtime-error overlay ---------------------------------------------------------------
  function showError(message, detail, at) {
    lastError = { message: message.slice(0, 4000), detail: detail.slice(0, 4000), path: at.slice(0, 2000) };
    errorText.textContent = lastError.message + (lastError.detail ? "\n\n" + lastError.detail : "");
    errorBox.hidden = false;
  }
  function hideError() {
    errorBox.hidden = true;
    lastError = null;
  }
  root.querySelector("[data-preview-error-dismiss]").addEventListener("click", hideError);
  // "Fix with doce" sends the error through the chat's own composer (the one prompt path).
  root.querySelector("[data-preview-fix]").addEventListener("click", function () {
    if (!lastError) return;
    var composer = root.querySelector("[data-chat-composer]");
    var text = composer && composer.querySelector("textarea");
    if (!text) return;
    text.value = "The preview shows an error on " + lastError.path + ". Please fix it.\n\n" +
      lastError.message + (lastError.detail ? "\n\n" + lastError.detail : "");
    hideError();
    root.dispatchEvent(new CustomEvent("doce:show-view", { detail: "chat" }));
    composer.requestSubmit();
  });

  // --- status ------------------------------------------------------------------------------
  var OVERLAY_TEXT = {
    created: "Preparing the project…", starting: "Starting the preview…",
    stopping: "Stopping…", stopped: "The project is stopped. Start it from the Project menu.",
    error: "The project could not start.", deleting: "Deleting the project…"
  };
  root.addEventListener("doce:status", function (event) {
    var payload = event.detail;
    var moved = previewPort !== null && payload.preview_port !== previewPort;
    previewPort = payload.preview_port;
    var wasRunning = status === "running";
    status = payload.status;
    overlay.hidden = status === "running";
    overlayText.textContent = OVERLAY_TEXT[status] || "";
    if (status === "running" && (!wasRunning || moved || !frame.getAttribute("src"))) load_(path);
  });
})();
