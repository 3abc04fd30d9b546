// Small progressive enhancements shared by every page. Pages work without it.
(function () {
  "use strict";
  function dismiss(toast) {
    toast.classList.add("leaving");
    setTimeout(function () { toast.remove(); }, 300);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest(".toast-close");
    if (button) dismiss(button.closest(".toast"));
  });
  document.querySelectorAll(".toast:not(.toast-error)").forEach(function (toast) {
    setTimeout(function () { dismiss(toast); }, 6000);
  });
  // Forms with data-confirm ask before submitting (delete, revoke, stop…).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
  // Nesting depth (data-depth, e.g. the file tree) indents through a CSS variable set here:
  // the Content-Security-Policy refuses inline style attributes.
  document.querySelectorAll("[data-depth]").forEach(function (node) {
    node.style.setProperty("--depth", node.dataset.depth);
  });
  window.doce = window.doce || {};
  // The one reconnecting WebSocket of every page. `path` is doce's (e.g. "/ws/queue/events/");
  // options: onMessage(data) for each JSON message; resume() -> {param: value} added to the
  // URL of every (re)connection (e.g. {after: lastEventId}); onOpen(); onReconnecting(code);
  // onStop(code). Close codes are doce's (doce/consumers.py): 4400 (bad request), 4401
  // (signed out) and 4404 (not found) stop; anything else reconnects with backoff and jitter
  // (half of 0.5 s doubling to 10 s, plus a random part up to the other half), so a restarted
  // server is not hit by every page at once. Returns {send(object) -> bool, close()}.
  var FINAL_CLOSE_CODES = { 4400: true, 4401: true, 4404: true };
  window.doce.socket = function (path, options) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var attempt = 0;
    var socket = null;
    var stopped = false;
    function url() {
      var params = new URLSearchParams();
      var resume = options.resume ? options.resume() : {};
      Object.keys(resume).forEach(function (name) {
        var value = resume[name];
        if (value !== null && value !== undefined && value !== "") params.set(name, value);
      });
      var query = params.toString();
      return scheme + location.host + path + (query ? "?" + query : "");
    }
    function nextDelay() {
      var ceiling = Math.min(10000, 500 * Math.pow(2, attempt));
      attempt += 1;
      return ceiling / 2 + Math.random() * (ceiling / 2);
    }
    function open() {
      socket = new WebSocket(url());
      socket.addEventListener("open", function () {
        attempt = 0;
        if (options.onOpen) options.onOpen();
      });
      socket.addEventListener("message", function (message) {
        var data;
        try { data = JSON.parse(message.data); } catch (e) { return; }
        options.onMessage(data);
      });
      socket.addEventListener("close", function (event) {
        if (stopped) return;
        if (FINAL_CLOSE_CODES[event.code]) {
          stopped = true;
          if (options.onStop) options.onStop(event.code);
          return;
        }
        if (options.onReconnecting) options.onReconnecting(event.code);
        setTimeout(open, nextDelay());
      });
    }
    open();
    return {
      send: function (message) {
        if (!socket || socket.readyState !== WebSocket.OPEN) return false;
        socket.send(JSON.stringify(message));
        return true;
      },
      close: function () {
        stopped = true;
        if (socket) socket.close();
      }
    };
  };
  // A resumable outbox event stream (doce.consumers.EventStreamConsumer): resumes after the
  // last event id it saw, starting from `after` (the id the page was rendered at).
  window.doce.eventStream = function (path, onEvent, after) {
    var lastId = after || null;
    return window.doce.socket(path, {
      resume: function () { return { after: lastId }; },
      onMessage: function (event) {
        if (event.id) lastId = event.id;
        onEvent(event);
      }
    });
  };
  // Ctrl/Cmd+Enter submits forms marked data-submit-shortcut.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var form = event.target.closest && event.target.closest("form[data-submit-shortcut]");
    if (form) { event.preventDefault(); form.requestSubmit(); }
  });
  // Fields shown only for one value of another field: data-shown-for="<select id>=<value>"
  // on the input hides its .field while the select holds anything else (the provider form:
  // hosted providers have no base URL or provider id).
  document.querySelectorAll("[data-shown-for]").forEach(function (input) {
    var rule = input.dataset.shownFor.split("=");
    var select = document.getElementById(rule[0]);
    var field = input.closest(".field") || input;
    if (!select) return;
    function sync() { field.hidden = select.value !== rule[1]; }
    select.addEventListener("change", sync);
    sync();
  });
  // Copy buttons: data-copy-from="<element id>" copies that element's text.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy-from]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copyFrom);
    if (!source) return;
    var done = function () { window.doce.toast("Copied.", "success"); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.textContent.trim()).then(done, function () { select(source); });
    } else {
      select(source);
    }
  });
  function select(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    window.doce.toast("Selected: press Ctrl+C (or Cmd+C) to copy.", "info");
  }
  // Theme: "light", "dark" or "system" (follows the device), kept in a cookie the server
  // reads to render <html data-theme> (so a page never flashes the other theme).
  window.doce.setTheme = function (theme) {
    if (theme === "light" || theme === "dark") {
      document.documentElement.dataset.theme = theme;
      document.cookie = "doce_theme=" + theme + "; path=/; max-age=31536000; SameSite=Lax";
    } else {
      theme = "system";
      delete document.documentElement.dataset.theme;
      document.cookie = "doce_theme=; path=/; max-age=0; SameSite=Lax";
    }
    document.querySelectorAll("[data-theme-choice]").forEach(function (select) { select.value = theme; });
  };
  document.querySelectorAll("[data-theme-choice]").forEach(function (select) {
    select.value = document.documentElement.dataset.theme || "system";
    select.addEventListener("change", function () { window.doce.setTheme(select.value); });
  });
  // Phones: the main navigation collapses behind a Menu button.
  var navToggle = document.querySelector("[data-nav-toggle]");
  if (navToggle) {
    var nav = document.getElementById(navToggle.getAttribute("aria-controls"));
    navToggle.addEventListener("click", function () {
      var open = navToggle.getAttribute("aria-expanded") !== "true";
      navToggle.setAttribute("aria-expanded", open ? "true" : "false");
      nav.classList.toggle("open", open);
    });
  }
  window.doce.toast = function (text, level) {
    var box = document.querySelector(".toasts");
    if (!box) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-" + (level || "info");
    var span = document.createElement("span");
    span.textContent = text;
    var close = document.createElement("button");
    close.type = "button"; close.className = "toast-close"; close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    toast.append(span, close);
    box.append(toast);
    if (level !== "error") setTimeout(function () { dismiss(toast); }, 6000);
  };
})();
