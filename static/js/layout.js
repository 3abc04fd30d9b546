// Workspace layout: the resizable chat/site split and the collapsible chat (both kept per
// project in localStorage), the phone layout's bottom tabs, and the project menu's actions
// that follow the project's status.
(function () {
  "use strict";
  var root = document.querySelector("[data-workspace]");
  if (!root) return;
  var id = root.dataset.projectId;
  var body = root.querySelector("[data-ws-body]");
  var splitter = root.querySelector("[data-splitter]");
  var chatToggle = root.querySelector("[data-chat-toggle]");
  var storeKey = "doce.layout." + id;
  var MIN = 20, MAX = 70, STEP = 5;  // chat width, percent of the workspace

  function load() {
    try { return JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { return {}; }
  }
  function save(changes) {
    var state = load();
    Object.keys(changes).forEach(function (key) { state[key] = changes[key]; });
    try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }

  // --- split ---------------------------------------------------------------------------------
  function setWidth(percent, persist) {
    percent = Math.round(Math.min(MAX, Math.max(MIN, percent)));
    body.style.setProperty("--chat-width", percent + "%");
    splitter.setAttribute("aria-valuenow", String(percent));
    splitter.setAttribute("aria-valuetext", "Chat " + percent + "% of the width");
    if (persist) save({ width: percent });
  }
  var saved = load();
  setWidth(typeof saved.width === "number" ? saved.width : 40, false);

  splitter.addEventListener("pointerdown", function (event) {
    event.preventDefault();
    splitter.setPointerCapture(event.pointerId);
    body.classList.add("resizing");  // the frames must not swallow the pointer meanwhile
    var rect = body.getBoundingClientRect();
    function move(e) { setWidth(((e.clientX - rect.left) / rect.width) * 100, false); }
    function up() {
      splitter.removeEventListener("pointermove", move);
      splitter.removeEventListener("pointerup", up);
      splitter.removeEventListener("pointercancel", up);
      body.classList.remove("resizing");
      save({ width: Number(splitter.getAttribute("aria-valuenow")) });
    }
    splitter.addEventListener("pointermove", move);
    splitter.addEventListener("pointerup", up);
    splitter.addEventListener("pointercancel", up);
  });
  splitter.addEventListener("keydown", function (event) {
    var now = Number(splitter.getAttribute("aria-valuenow"));
    var keys = { ArrowLeft: now - STEP, ArrowRight: now + STEP, Home: MIN, End: MAX };
    if (!(event.key in keys)) return;
    event.preventDefault();
    setWidth(keys[event.key], true);
  });

  // --- collapsible chat ------------------------------------------------------------------------
  function setCollapsed(collapsed, persist) {
    body.classList.toggle("chat-collapsed", collapsed);
    chatToggle.setAttribute("aria-expanded", collapsed ? "false" : "true");
    chatToggle.textContent = collapsed ? "Show chat" : "Hide chat";
    if (persist) save({ collapsed: collapsed });
  }
  setCollapsed(saved.collapsed === true, false);
  chatToggle.addEventListener("click", function () {
    setCollapsed(!body.classList.contains("chat-collapsed"), true);
  });

  // --- phone: bottom tabs ----------------------------------------------------------------------
  // Below 768 px one view fills the screen: the chat (its composer always at the bottom) or
  // one of the site's tabs, chosen from the bar at the bottom.
  var views = root.querySelectorAll("[data-tabbar] [data-view]");
  function markView(name) {
    body.dataset.view = name;
    views.forEach(function (button) {
      button.setAttribute("aria-pressed", button.dataset.view === name ? "true" : "false");
    });
  }
  function showView(name) {
    markView(name);
    if (name === "chat") {
      setCollapsed(false, false);
      return;
    }
    var tab = root.querySelector('[role=tab][data-tab="' + name + '"]');
    if (tab && tab.getAttribute("aria-selected") !== "true") tab.click();
  }
  views.forEach(function (button) {
    button.addEventListener("click", function () { showView(button.dataset.view); });
  });
  // A tab chosen otherwise (at the top on a wide screen, or by a link in the chat such as a
  // diff's "See the whole file") is the view shown on a phone too.
  root.querySelectorAll("[role=tab][data-tab]").forEach(function (tab) {
    tab.addEventListener("click", function () { markView(tab.dataset.tab); });
  });
  root.addEventListener("doce:show-view", function (event) { showView(event.detail); });
  // The site's tabs: arrow keys, Home and End move between them (the ARIA tabs pattern).
  var tabs = Array.prototype.slice.call(root.querySelectorAll("[role=tab][data-tab]"));
  tabs.forEach(function (tab, index) {
    tab.addEventListener("keydown", function (event) {
      var next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      var target = tabs[(next + tabs.length) % tabs.length];
      target.focus();
      target.click();
    });
  });

  // --- project menu: only the actions valid in the current status ----------------------------
  root.addEventListener("doce:status", function (event) {
    var status = event.detail.status;
    root.querySelectorAll(".menu [data-valid-in]").forEach(function (form) {
      form.hidden = form.dataset.validIn.split(" ").indexOf(status) === -1;
    });
  });
  // The menu closes on Escape and on a click elsewhere.
  var menu = root.querySelector(".menu");
  document.addEventListener("click", function (event) {
    if (menu.open && !menu.contains(event.target)) menu.open = false;
  });
  menu.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && menu.open) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
})();
