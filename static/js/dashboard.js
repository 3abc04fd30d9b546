// Dashboard: live status badges from one stream of all the user's projects' events.
(function () {
  "use strict";
  var list = document.querySelector("[data-project-cards]");
  if (!list) return;
  var after = list.dataset.lastEventId || null;
  window.doce.eventStream("/ws/projects/events/", function (event) {
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
