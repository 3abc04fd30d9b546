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
  window.doce = window.doce || {};
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
