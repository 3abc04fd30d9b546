// Workspace: project status and setup checklist from the project's event stream, the chat,
// a live log tail, and the tabs. The preview is preview.js's, the layout layout.js's.
(function () {
  "use strict";
  var root = document.querySelector("[data-workspace]");
  if (!root) return;
  var id = root.dataset.projectId;
  var base = "/ws/projects/" + id;
  var status = root.dataset.status;

  // --- status ------------------------------------------------------------------------------
  // The preview (preview.js) and the layout (layout.js) follow the status through the
  // "doce:status" event on the workspace root ({detail: the project.status payload}).
  // preview.js reloads the frame (at the page it shows) on "doce:preview-reload", and shows
  // restored files on "doce:preview-files-restored".
  function showStatus(payload) {
    status = payload.status;
    root.dataset.status = status;
    var badge = root.querySelector("[data-status-badge]");
    badge.className = "badge badge-" + status;
    badge.textContent = payload.label;
    // The agent has its own readiness: the preview shows while the agent still starts, and
    // an idle agent sleeps until the next prompt wakes it.
    var agent = root.querySelector("[data-agent-state]");
    if (agent && payload.agent_state) {
      agent.dataset.agentState = payload.agent_state;
      agent.querySelector("[data-agent-label]").textContent = payload.agent_label.toLowerCase();
    }
    var reason = root.querySelector("[data-status-reason]");
    reason.textContent = payload.reason || "";
    reason.hidden = !payload.reason;
    root.dispatchEvent(new CustomEvent("doce:status", { detail: payload }));
    if (status === "deleting") window.doce.toast("This project is being deleted.", "info");
  }

  // --- chat ------------------------------------------------------------------------------
  var chatRoot = root.querySelector("[data-chat]");
  var chat = new window.doce.Chat(chatRoot, {
    path: base + "/chat/",
    projectId: id,
    status: status,
    promptUrl: chatRoot.dataset.promptUrl,
    filesUrl: chatRoot.dataset.filesUrl,
    // The agent has put the files back (its answer comes after): preview.js shows them.
    onRestored: function () { root.dispatchEvent(new CustomEvent("doce:preview-files-restored")); }
  });

  // --- setup checklist ---------------------------------------------------------------------
  var checklist = root.querySelector("[data-checklist]");
  function showJob(job) {
    var step = checklist.querySelector('[data-step="' + CSS.escape(job.type) + '"]');
    if (!step) return;
    step.className = "step step-" + job.state;
    step.querySelector("[data-step-state]").textContent = job.state;
    var error = step.querySelector("[data-step-error]");
    error.textContent = job.state === "failed" ? (job.last_error || "This step failed.") : "";
    error.hidden = job.state !== "failed";
    var retry = step.querySelector("[data-step-retry]");
    retry.hidden = !(job.state === "failed" || job.state === "cancelled");
    retry.action = retry.dataset.actionTemplate.replace(/\/0\/retry$/, "/" + job.id + "/retry");
    // The server marks the chain's last step; when it succeeds the setup is done.
    if (step.hasAttribute("data-step-last") && job.state === "succeeded") {
      setTimeout(function () { checklist.hidden = true; }, 1500);
    }
  }

  // A provider was added, changed or removed: the picker offers what the agent now has.
  function showModels(payload) {
    var select = root.querySelector("#composer-model");
    if (!select || !payload.models) return;
    var chosen = select.value || payload.model;
    select.replaceChildren();
    payload.models.forEach(function (model) {
      var option = document.createElement("option");
      option.value = model;
      option.textContent = model;
      option.selected = model === chosen;
      select.append(option);
    });
  }

  window.doce.eventStream(base + "/events/", function (event) {
    if (event.type === "project.status") { showStatus(event.payload); chat.status = event.payload.status; }
    else if (event.type === "project.model") {
      var picker = root.querySelector("#composer-model");
      if (picker && event.payload.model) picker.value = event.payload.model;
    }
    else if (event.type === "project.renamed") {
      root.querySelector("[data-project-name]").textContent = event.payload.name;
    } else if (event.type === "project.deleted") location.href = "/";
    else if (event.type === "project.models") showModels(event.payload);
    else if (event.type && event.type.indexOf("job.") === 0 && event.payload.job) showJob(event.payload.job);
  }, root.dataset.lastEventId);


  // --- logs ------------------------------------------------------------------------------
  var logView = root.querySelector("[data-log-view]");
  var logOffset = null;
  var logStarted = false;
  var MAX_LOG_CHARS = 400000;
  function appendLog(text) {
    var nearEnd = logView.scrollHeight - logView.scrollTop - logView.clientHeight < 80;
    text.split("\n").forEach(function (line, i, lines) {
      if (i === lines.length - 1 && line === "") return;
      var span = document.createElement("span");
      var kind = /^\[(host|docker|app)\b/.exec(line);
      span.className = "log-line" + (kind ? " log-" + kind[1] : "");
      span.textContent = line + "\n";
      logView.append(span);
    });
    while (logView.textContent.length > MAX_LOG_CHARS && logView.firstChild) logView.firstChild.remove();
    if (nearEnd) logView.scrollTop = logView.scrollHeight;
  }
  function startLogs() {
    if (logStarted) return;
    logStarted = true;
    window.doce.socket(base + "/logs/", {
      resume: function () { return { offset: logOffset }; },
      onMessage: function (data) {
        if (data.type !== "log.chunk") return;
        if (data.skipped) appendLog("… (earlier lines are not shown)\n");
        appendLog(data.text);
        logOffset = data.offset;
      }
    });
  }

  // --- tabs ------------------------------------------------------------------------------
  var tabs = root.querySelectorAll("[data-tab]");
  tabs.forEach(function (tab) {
    tab.addEventListener("click", function () {
      tabs.forEach(function (other) {
        var selected = other === tab;
        other.setAttribute("aria-selected", selected ? "true" : "false");
        var panel = document.getElementById(other.getAttribute("aria-controls"));
        panel.hidden = !selected;
        var embed = panel.querySelector("iframe[data-src]");
        if (selected && embed) embed.src = embed.dataset.src;  // fresh on every visit
      });
      if (tab.dataset.tab === "logs") startLogs();
    });
  });
})();
