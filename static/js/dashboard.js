// Dashboard: live status badges from one stream of all the user's projects' events, and
// cards for projects created elsewhere (another tab, the API).
(function () {
  "use strict";
  var list = document.querySelector("[data-project-cards]");
  var empty = document.querySelector("[data-no-projects]");
  if (!list && !empty) return;
  var after = (list || empty).dataset.lastEventId || null;

  function addCard(project) {
    if (!list) {  // the first project: the list takes the empty notice's place
      list = document.createElement("ul");
      list.className = "cards";
      list.dataset.projectCards = "";
      empty.replaceWith(list);
    }
    if (list.querySelector('[data-project-id="' + CSS.escape(project.id) + '"]')) return;
    var card = document.createElement("li");
    card.className = "card project-card";
    card.dataset.projectId = project.id;
    var head = document.createElement("div");
    head.className = "project-card-head";
    var title = document.createElement("h2");
    title.className = "card-title";
    var link = document.createElement("a");
    link.href = "/projects/" + project.id + "/";
    link.textContent = project.name;
    title.append(link);
    var badge = document.createElement("span");
    badge.className = "badge badge-" + project.status;
    badge.dataset.statusBadge = "";
    badge.textContent = project.status.charAt(0).toUpperCase() + project.status.slice(1);
    head.append(title, badge);
    var edited = document.createElement("p");
    edited.className = "muted small";
    edited.textContent = "Created just now";
    var actions = document.createElement("div");
    actions.className = "card-actions";
    var open = document.createElement("a");
    open.className = "btn";
    open.href = link.href;
    open.textContent = "Open";
    actions.append(open);
    card.append(head, edited, actions);
    list.prepend(card);
  }

  window.doce.eventStream("/ws/projects/events/", function (event) {
    if (event.type === "project.created") { addCard(event.payload); return; }
    if (!list) return;
    var id = (event.topic || "").replace(/^project:/, "");
    var card = list.querySelector('[data-project-id="' + CSS.escape(id) + '"]');
    if (!card) return;
    if (event.type === "project.status") {
      var badge = card.querySelector("[data-status-badge]");
      badge.className = "badge badge-" + event.payload.status;
      badge.textContent = event.payload.label;
      var stop = card.querySelector("[data-stop]");
      if (stop) stop.disabled = !(event.payload.status === "running" || event.payload.status === "starting");
    } else if (event.type === "project.renamed") {
      card.querySelector(".card-title a").textContent = event.payload.name;
    } else if (event.type === "project.deleted") {
      card.remove();
    }
  }, after);
})();
