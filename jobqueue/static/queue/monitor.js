// Live queue monitor: updates the job table from each job event (the event carries the
// job's row), adds newly enqueued jobs on the first page, and appends log lines on a job's
// page. Reconnects resume after the last event id seen.
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
  var ACTIVE = { queued: true, running: true };
  var RETRYABLE = { failed: true, cancelled: true };

  function part(name, id) {
    var parts = document.querySelector("template[data-row-parts]");
    var node = parts.content.querySelector('[data-part="' + name + '"]').cloneNode(true);
    var attribute = node.tagName === "A" ? "href" : "action";
    node.setAttribute(attribute, node.getAttribute(attribute).replace("/0/", "/" + id + "/"));
    if (node.tagName === "A") node.textContent = "#" + id;
    return node;
  }
  function cell(row, column) {
    var found = row.querySelector('[data-col="' + column + '"]');
    if (found) return found;
    found = document.createElement("td");
    found.dataset.col = column;
    row.append(found);
    return found;
  }
  function timeOf(iso, text) {
    var node = document.createElement("time");
    node.setAttribute("datetime", iso || "");
    node.textContent = text;
    return node;
  }
  function fillRow(row, job) {
    var badge = document.createElement("span");
    badge.className = "badge badge-" + job.state;
    badge.textContent = job.state.charAt(0).toUpperCase() + job.state.slice(1);
    var state = cell(row, "state");
    state.replaceChildren(badge);
    if (job.cancel_requested && ACTIVE[job.state]) {
      var note = document.createElement("span");
      note.className = "muted small";
      note.textContent = "cancelling";
      state.append(" ", note);
    }
    cell(row, "attempts").textContent = job.attempts + "/" + job.max_attempts;
    cell(row, "run_at").replaceChildren(timeOf(job.run_at, (job.run_at || "").slice(11, 19)));
    cell(row, "updated").replaceChildren(timeOf(new Date().toISOString(), "just now"));
    var actions = cell(row, "actions");
    actions.replaceChildren();
    if (ACTIVE[job.state]) actions.append(part("cancel", job.id));
    else if (RETRYABLE[job.state]) actions.append(part("retry", job.id));
  }
  function matchesFilters(rows, job) {
    var filters = rows.dataset;
    if (filters.filterState && filters.filterState !== job.state) return false;
    if (filters.filterType && filters.filterType !== job.type) return false;
    var query = (filters.filterQ || "").toLowerCase();
    if (!query) return true;
    if (/^[0-9]+$/.test(query)) return String(job.id) === query;
    return [job.dedupe_key, job.serial_key].some(function (key) {
      return (key || "").toLowerCase().indexOf(query) !== -1;
    });
  }
  function newRow(job) {
    var row = document.createElement("tr");
    row.id = "job-" + job.id;
    row.dataset.jobRow = "";
    var link = document.createElement("td");
    link.append(part("link", job.id));
    var type = document.createElement("td");
    var code = document.createElement("code");
    code.textContent = job.type;
    type.append(code);
    row.append(link, type);
    cell(row, "state");
    cell(row, "attempts");
    var key = document.createElement("td");
    if (job.serial_key) {
      var keyCode = document.createElement("code");
      keyCode.textContent = job.serial_key;
      key.append(keyCode);
    } else {
      var none = document.createElement("span");
      none.className = "muted";
      none.textContent = "-";
      key.append(none);
    }
    row.append(key);
    ["run_at", "updated", "actions"].forEach(function (column) { cell(row, column); });
    return row;
  }
  function showJob(rows, job) {
    var row = document.getElementById("job-" + job.id);
    if (!row) {
      // Newest first: a job not on this page appears only at the top of the first page.
      if (!rows.dataset.firstPage || !matchesFilters(rows, job)) return;
      var previous = rows.querySelector("[data-job-row]");
      if (previous && Number(previous.id.slice(4)) > job.id) return;
      row = newRow(job);
      var empty = rows.querySelector("[data-empty]");
      if (empty) empty.remove();
      rows.prepend(row);
      var shown = rows.querySelectorAll("[data-job-row]");
      if (shown.length > Number(rows.dataset.pageSize || 25)) shown[shown.length - 1].remove();
    }
    fillRow(row, job);
  }

  var rows = document.querySelector("[data-live-rows]");
  if (rows) {
    connect(rows, function (event) {
      if (event.type.indexOf("queue.") === 0) { location.reload(); return; }
      if (event.type.indexOf("job.") === 0 && event.payload.job) showJob(rows, event.payload.job);
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
