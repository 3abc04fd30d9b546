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
  // A resumable outbox event stream: reconnects with backoff and resumes after the last id.
  window.doce.eventStream = function (url, onEvent, after) {
    var lastId = after || null;
    var delay = 500;
    function open() {
      var socket = new WebSocket(lastId ? url + "?after=" + lastId : url);
      socket.addEventListener("open", function () { delay = 500; });
      socket.addEventListener("message", function (message) {
        var event;
        try { event = JSON.parse(message.data); } catch (e) { return; }
        if (event.id) lastId = event.id;
        onEvent(event);
      });
      socket.addEventListener("close", function (event) {
        if (event.code === 4401 || event.code === 4404) return;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      });
    }
    open();
  };
  // Ctrl/Cmd+Enter submits forms marked data-submit-shortcut.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var form = event.target.closest && event.target.closest("form[data-submit-shortcut]");
    if (form) { event.preventDefault(); form.requestSubmit(); }
  });
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
