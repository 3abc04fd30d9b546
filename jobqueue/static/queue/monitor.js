// Live queue monitor: re-fetches the server-rendered fragment when a job changes, and
// appends log lines on a job's page. Reconnects resume after the last event id seen.
(function () {
  "use strict";
  function connect(node, onEvent) {
    window.doce.eventStream(node.dataset.ws, onEvent, node.dataset.after || null);
  }
  function refresher(node, url) {
    var pending = null;
    return function () {
      if (pending) return;
      pending = setTimeout(function () {
        fetch(url(), { credentials: "same-origin" }).then(function (response) {
          return response.ok ? response.text() : null;
        }).then(function (html) {
          pending = null;
          if (html !== null) node.innerHTML = html;
        }).catch(function () { pending = null; });
      }, 300);
    };
  }
  function partialUrl() {
    var params = new URLSearchParams(location.search);
    params.set("partial", "1");
    return location.pathname + "?" + params.toString();
  }
  var rows = document.querySelector("[data-live-rows]");
  if (rows) {
    var refreshRows = refresher(rows, partialUrl);
    connect(rows, function (event) {
      if (event.type.indexOf("queue.") === 0) { location.reload(); return; }
      if (event.type !== "job.log") refreshRows();
    });
  }
  var summary = document.querySelector("[data-live-summary]");
  var log = document.querySelector("[data-live-log]");
  if (summary) {
    var refreshSummary = refresher(summary, partialUrl);
    connect(summary, function (event) {
      if (event.type === "job.log" && log) {
        var entry = event.payload.log;
        var empty = log.querySelector("[data-empty]");
        if (empty) empty.remove();
        var item = document.createElement("li");
        item.className = "job-log-" + entry.level;
        item.textContent = entry.time.slice(11, 19) + " " + entry.level + " attempt " + entry.attempt + " " + entry.message;
        if (entry.traceback) {
          var pre = document.createElement("pre");
          pre.textContent = entry.traceback;
          item.append(pre);
        }
        log.append(item);
      } else {
        refreshSummary();
      }
    });
  }
})();
