// Command palette (Ctrl+K or Cmd+K, or the Search button): jump to a project, a settings
// section or the queue, run an action of the project shown, or switch the theme. Projects
// come from doce's own API (GET /api/projects, with the browser's session), read when the
// palette opens. Arrow keys move, Enter runs, Escape closes.
(function () {
  "use strict";
  var dialog = null, input, list, items = [], shown = [], active = 0;

  function staticItems() {
    var result = [
      { group: "Go to", label: "Projects", href: "/" },
      { group: "Go to", label: "Queue", href: "/queue/" },
      { group: "Go to", label: "Settings: model providers", href: "/settings/#providers" },
      { group: "Go to", label: "Settings: default model", href: "/settings/#default-model" },
      { group: "Go to", label: "Settings: API tokens", href: "/settings/#tokens" },
      { group: "Go to", label: "Settings: password", href: "/settings/#password" },
      { group: "Theme", label: "Theme: light", run: function () { window.doce.setTheme("light"); } },
      { group: "Theme", label: "Theme: dark", run: function () { window.doce.setTheme("dark"); } },
      { group: "Theme", label: "Theme: system", run: function () { window.doce.setTheme("system"); } }
    ];
    // The project shown: its menu's actions that are valid now (forms keep their confirmations).
    var menu = document.querySelector("[data-workspace] .menu-body");
    if (menu) {
      menu.querySelectorAll("form:not([hidden])").forEach(function (form) {
        var button = form.querySelector("button[type=submit]");
        if (!button || form.classList.contains("inline-form")) return;
        result.push({ group: "This project", label: "Project: " + button.textContent.trim(),
          run: function () { form.requestSubmit(); } });
      });
      menu.querySelectorAll("a[href]").forEach(function (link) {
        result.push({ group: "This project", label: "Project: " + link.textContent.trim(), href: link.href });
      });
      var rename = document.getElementById("rename-project");
      if (rename) result.push({ group: "This project", label: "Project: Rename", run: function () {
        rename.closest("details").open = true;
        rename.focus();
        rename.select();
      } });
    }
    return result;
  }

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "palette";
    dialog.setAttribute("aria-label", "Command palette");
    var label = document.createElement("label");
    label.className = "visually-hidden";
    label.htmlFor = "palette-input";
    label.textContent = "Search projects, pages and actions";
    input = document.createElement("input");
    input.id = "palette-input";
    input.type = "text";
    input.autocomplete = "off";
    input.placeholder = "Search projects, pages and actions…";
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-expanded", "true");
    input.setAttribute("aria-controls", "palette-list");
    list = document.createElement("ul");
    list.id = "palette-list";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Results");
    dialog.append(label, input, list);
    document.body.append(dialog);
    input.addEventListener("input", function () { active = 0; render(); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (!shown.length) return;
        active = (active + (event.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
        render();
      } else if (event.key === "Enter") {
        event.preventDefault();
        if (shown[active]) choose(shown[active]);
      }
    });
    list.addEventListener("click", function (event) {
      var option = event.target.closest("[role=option]");
      if (option) choose(shown[Number(option.dataset.index)]);
    });
    dialog.addEventListener("click", function (event) { if (event.target === dialog) dialog.close(); });
  }

  function render() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    shown = items.filter(function (item) {
      var text = (item.group + " " + item.label).toLowerCase();
      return words.every(function (word) { return text.indexOf(word) !== -1; });
    }).slice(0, 50);
    if (active >= shown.length) active = 0;
    list.replaceChildren();
    shown.forEach(function (item, index) {
      var option = document.createElement("li");
      option.id = "palette-option-" + index;
      option.setAttribute("role", "option");
      option.dataset.index = String(index);
      option.setAttribute("aria-selected", index === active ? "true" : "false");
      var group = document.createElement("span");
      group.className = "palette-group";
      group.textContent = item.group;
      option.append(document.createTextNode(item.label), group);
      list.append(option);
    });
    if (!shown.length) {
      var empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "Nothing matches.";
      list.append(empty);
    }
    input.setAttribute("aria-activedescendant", shown.length ? "palette-option-" + active : "");
    var current = document.getElementById("palette-option-" + active);
    if (current) current.scrollIntoView({ block: "nearest" });
  }

  function choose(item) {
    dialog.close();
    if (item.href) location.href = item.href;
    else if (item.run) item.run();
  }

  function open() {
    if (!dialog) build();
    items = staticItems();
    input.value = "";
    active = 0;
    render();
    if (!dialog.open) dialog.showModal();
    input.focus();
    fetch("/api/projects", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) { return answer.ok ? answer.json() : []; })
      .then(function (projects) {
        if (!Array.isArray(projects)) return;
        items = projects.map(function (project) {
          return { group: "Project", label: project.name + " (" + project.status + ")",
            href: "/projects/" + encodeURIComponent(project.id) + "/" };
        }).concat(staticItems());
        if (dialog.open) render();
      })
      .catch(function () { /* offline: pages and actions still work */ });
  }

  document.addEventListener("keydown", function (event) {
    if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k") {
      event.preventDefault();
      if (dialog && dialog.open) dialog.close();
      else open();
    }
  });
  document.querySelectorAll("[data-palette-open]").forEach(function (button) {
    button.addEventListener("click", open);
  });
})();
