// The Deploy tab: production state from the project's event stream, the build log live from
// the project's log stream (its "[app] build:" lines), URL copy. The page reloads itself when
// a deploy settles, so the release history is always the server's.
(function () {
  "use strict";
  var root = document.querySelector("[data-deploy]");
  if (!root) return;
  var base = "/ws/projects/" + root.dataset.projectId;
  var status = root.dataset.status;
  var ACTIVE = { queued: true, building: true, starting: true };
  var logView = root.querySelector("[data-build-log]");
  var logOffset = null;
  var following = false;

  function show(payload) {
    var badge = root.querySelector("[data-production-badge]");
    badge.className = "badge badge-site-" + payload.status;
    badge.textContent = payload.label;
    root.querySelector("[data-deploy-button]").disabled = !!ACTIVE[payload.status];
    var error = root.querySelector("[data-production-error]");
    error.hidden = !(payload.status === "failed" && payload.error);
    error.firstElementChild.textContent = payload.error || "";
    if (ACTIVE[payload.status]) followLog();
    var settled = ACTIVE[status] && !ACTIVE[payload.status];
    status = payload.status;
    root.dataset.status = status;
    if (settled) location.reload();
  }

  function followLog() {
    if (following) return;
    following = true;
    logView.closest("details").open = true;
    logView.textContent = "";
    window.doce.socket(base + "/logs/", {
      resume: function () { return { offset: logOffset }; },
      onMessage: function (data) {
        if (data.type !== "log.chunk") return;
        logOffset = data.offset;
        data.text.split("\n").forEach(function (line) {
          var build = /^\[app\] build: (.*)$/.exec(line);
          if (build) logView.append(build[1] + "\n");
        });
        logView.scrollTop = logView.scrollHeight;
      }
    });
  }

  var copy = root.querySelector("[data-copy-url]");
  if (copy) copy.addEventListener("click", function () {
    var url = root.querySelector("[data-production-open]").href;
    navigator.clipboard.writeText(url).then(function () { window.doce.toast("Copied " + url, "info"); });
  });

  window.doce.eventStream(base + "/events/", function (event) {
    if (event.type === "production.status") show(event.payload);
  }, root.dataset.lastEventId);
  if (ACTIVE[status]) followLog();
})();
