// The workspace chat: renders doce's normalized agent events (chat.*) from
// ws/projects/<id>/chat/ and sends the user's prompts, stops and answers back.
// Text from the agent is always set with textContent; the only HTML inserted is the
// server-rendered, nh3-sanitized markdown of a final message (payload.html).
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function summarizeInput(name, input) {
    if (!input || typeof input !== "object") return "";
    var keys = ["filePath", "path", "command", "pattern", "url", "description", "query"];
    for (var i = 0; i < keys.length; i++) {
      if (typeof input[keys[i]] === "string" && input[keys[i]]) return input[keys[i]];
    }
    var text = JSON.stringify(input);
    return text.length > 120 ? text.slice(0, 117) + "…" : text;
  }

  function Chat(root, options) {
    this.root = root;
    this.path = options.path;
    this.onFileChanged = options.onFileChanged || function () {};
    this.onStatus = options.onStatus || function () {};
    this.transcript = root.querySelector("[data-chat-transcript]");
    this.docks = root.querySelector("[data-chat-docks]");
    this.todos = root.querySelector("[data-chat-todos]");
    this.form = root.querySelector("[data-chat-composer]");
    this.input = this.form.querySelector("textarea");
    this.modelSelect = this.form.querySelector("select[name=model]");
    this.stopButton = root.querySelector("[data-chat-stop]");
    this.busyIndicator = root.querySelector("[data-chat-busy]");
    this.connection = root.querySelector("[data-chat-connection]");
    this.reset();
    this.bindComposer();
    this.connect();
  }

  Chat.prototype.reset = function () {
    this.messages = {};   // messageId -> {node, body, parts: {partId -> node}, final}
    this.tools = {};      // toolCallId -> card
    this.transcript.replaceChildren();
    this.docks.replaceChildren();
    if (this.todos) this.todos.replaceChildren();
  };

  // --- connection -----------------------------------------------------------------------

  Chat.prototype.connect = function () {
    var self = this;
    this.socket = window.doce.socket(this.path, {
      onOpen: function () { self.setConnection(""); },
      onMessage: function (data) { self.handle(data); },
      onReconnecting: function () { self.setConnection("Reconnecting to the agent…"); },
      onStop: function (code) {
        self.setConnection(code === 4401
          ? "You are signed out. Sign in again to keep chatting."
          : "This project is not available. Reload the page.");
      }
    });
  };

  Chat.prototype.setConnection = function (text) {
    if (!this.connection) return;
    this.connection.textContent = text;
    this.connection.hidden = !text;
  };

  Chat.prototype.send = function (message) {
    if (!this.socket.send(message)) {
      window.doce.toast("Not connected to the agent yet; try again in a moment.", "warning");
      return false;
    }
    return true;
  };

  // --- composer ---------------------------------------------------------------------------

  Chat.prototype.bindComposer = function () {
    var self = this;
    this.form.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = self.input.value.trim();
      if (!text) return;
      var message = { type: "prompt", text: text };
      if (self.modelSelect && self.modelSelect.value) message.model = self.modelSelect.value;
      if (self.send(message)) self.input.value = "";
    });
    this.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        self.form.requestSubmit();
      }
    });
    if (this.stopButton) {
      this.stopButton.addEventListener("click", function () { self.send({ type: "abort" }); });
    }
  };

  // --- events ---------------------------------------------------------------------------------

  Chat.prototype.handle = function (event) {
    var handler = this.handlers[event.type];
    if (handler) handler.call(this, event.payload || {}, event);
  };

  Chat.prototype.handlers = {
    "chat.history": function (payload) {
      this.reset();
      var events = payload.events || [];
      for (var i = 0; i < events.length; i++) this.handle(events[i]);
      this.scrollToEnd(true);
    },
    "chat.message.user": function (p) {
      if (this.messages[p.messageId]) return;
      var node = el("article", "msg msg-user");
      node.append(el("p", "msg-text", p.text));
      this.messages[p.messageId] = { node: node, body: node, parts: {}, final: true };
      this.append(node);
    },
    "chat.message.part.added": function (p) {
      var part = this.part(p.messageId, p.partId, "msg-text streaming");
      if (typeof p.text === "string") part.textContent = p.text;
      else if (p.deltaText) part.textContent += p.deltaText;
      // Joined mid-answer: the start of this text arrives when the part is complete.
      part.classList.toggle("partial", !!p.partial);
      if (p.partial) part.title = "The beginning of this answer appears when it is complete.";
      else part.removeAttribute("title");
      this.scrollToEnd();
    },
    "chat.reasoning.part": function (p) {
      var message = this.message(p.messageId);
      var box = message.parts[p.partId];
      if (!box) {
        box = el("details", "reasoning");
        box.append(el("summary", "", "Thinking"), el("p", "reasoning-text"));
        message.parts[p.partId] = box;
        message.body.append(box);
      }
      var text = box.querySelector(".reasoning-text");
      if (typeof p.text === "string") text.textContent = p.text;
      else if (p.deltaText) text.textContent += p.deltaText;
    },
    "chat.tool.start": function (p) { this.toolCard(p, "running"); },
    "chat.tool.finish": function (p) { this.toolCard(p, "done"); },
    "chat.tool.error": function (p) { this.toolCard(p, "error"); },
    "chat.message.final": function (p) {
      var message = this.message(p.messageId);
      message.final = true;
      var texts = message.body.querySelectorAll(".msg-text");
      if (p.html && texts.length) {
        texts[0].innerHTML = p.html;  // sanitized on the server (markdown-it + nh3)
        texts[0].classList.remove("streaming");
        texts[0].classList.add("markdown");
        for (var i = 1; i < texts.length; i++) texts[i].remove();
      } else {
        texts.forEach(function (t) { t.classList.remove("streaming"); });
      }
      if (p.aborted) message.body.append(el("p", "msg-note", "Stopped before it finished."));
      if (p.error) this.diagnosticCard(message.body, p.error.diagnostic || { title: p.error.name || "The agent failed", message: p.error.message });
      this.scrollToEnd();
    },
    "chat.session.status": function (p) {
      var busy = p.status === "busy" || p.status === "retry";
      if (this.busyIndicator) {
        this.busyIndicator.hidden = !busy;
        this.busyIndicator.textContent = p.status === "retry"
          ? "The model is busy; retrying" + (p.message ? ": " + p.message : "…")
          : "The agent is working…";
      }
      if (this.stopButton) this.stopButton.disabled = !busy;
      this.onStatus(p.status);
    },
    "chat.session.title": function (p) {
      var title = this.root.querySelector("[data-chat-title]");
      if (title && p.title) title.textContent = p.title;
    },
    "chat.diagnostic": function (p) {
      var node = el("article", "msg msg-system");
      this.diagnosticCard(node, p.diagnostic || {});
      this.append(node);
    },
    "chat.error": function (p) {
      window.doce.toast(p.message || "That did not work.", "error");
    },
    "chat.file.changed": function (p) { this.onFileChanged(p.path); },
    "chat.todo.updated": function (p) { this.renderTodos(p.todos || []); },
    "chat.permission.requested": function (p) { this.permissionDock(p); },
    "chat.permission.resolved": function (p) { this.removeDock(p.requestId); },
    "chat.question.requested": function (p) { this.questionDock(p); },
    "chat.question.resolved": function (p) { this.removeDock(p.requestId); },
    "chat.message.removed": function (p) {
      var message = this.messages[p.messageId];
      if (message) { message.node.remove(); delete this.messages[p.messageId]; }
    },
    "chat.message.part.removed": function (p) {
      var message = this.messages[p.messageId];
      if (message && message.parts[p.partId]) {
        message.parts[p.partId].remove();
        delete message.parts[p.partId];
      }
    }
  };

  // --- rendering helpers ----------------------------------------------------------------

  Chat.prototype.append = function (node) {
    this.transcript.append(node);
    this.scrollToEnd();
  };

  Chat.prototype.scrollToEnd = function (force) {
    var t = this.transcript;
    var nearEnd = t.scrollHeight - t.scrollTop - t.clientHeight < 120;
    if (force || nearEnd) t.scrollTop = t.scrollHeight;
  };

  Chat.prototype.message = function (messageId) {
    var message = this.messages[messageId];
    if (!message) {
      var node = el("article", "msg msg-assistant");
      message = { node: node, body: node, parts: {}, final: false };
      this.messages[messageId] = message;
      this.append(node);
    }
    return message;
  };

  Chat.prototype.part = function (messageId, partId, className) {
    var message = this.message(messageId);
    var node = message.parts[partId];
    if (!node) {
      node = el("div", className);
      message.parts[partId] = node;
      message.body.append(node);
    }
    return node;
  };

  Chat.prototype.toolCard = function (p, state) {
    var card = this.tools[p.toolCallId];
    if (!card) {
      card = el("details", "tool-card");
      var summary = el("summary");
      summary.append(el("span", "tool-name", p.name || "tool"), el("span", "tool-input"), el("span", "tool-status"));
      card.append(summary, el("pre", "tool-output"));
      this.tools[p.toolCallId] = card;
      var message = this.message(p.messageId);
      message.parts[p.partId || p.toolCallId] = card;
      message.body.append(card);
      this.scrollToEnd();
    }
    card.dataset.state = state;
    card.querySelector(".tool-status").textContent = { running: "running…", done: "done", error: "failed" }[state];
    var summaryText = p.title || summarizeInput(p.name, p.input);
    if (summaryText) card.querySelector(".tool-input").textContent = summaryText;
    if (state === "done" && p.output) card.querySelector(".tool-output").textContent = p.output;
    if (state === "error") card.querySelector(".tool-output").textContent = p.error || "The tool failed.";
  };

  Chat.prototype.diagnosticCard = function (container, d) {
    var card = el("div", "diagnostic-card");
    card.setAttribute("role", "alert");
    card.append(el("strong", "", d.title || "Something went wrong"));
    if (d.message) card.append(el("p", "", d.message));
    if (d.remediation && d.remediation.length) {
      var list = el("ul");
      d.remediation.forEach(function (step) {
        var item = el("li");
        var label = el("strong", "", step.label + ": ");
        if (step.href) {
          var link = el("a", "", step.label);
          link.href = step.href;
          label = el("strong");
          label.append(link, document.createTextNode(": "));
        }
        item.append(label, document.createTextNode(step.description || ""));
        list.append(item);
      });
      card.append(list);
    }
    container.append(card);
  };

  Chat.prototype.renderTodos = function (todos) {
    if (!this.todos) return;
    this.todos.replaceChildren();
    this.todos.hidden = todos.length === 0;
    if (!todos.length) return;
    var list = el("ul", "todo-list");
    todos.forEach(function (todo) {
      var item = el("li", "todo todo-" + (todo.status || "pending"), todo.content);
      list.append(item);
    });
    this.todos.append(el("h3", "small", "Plan"), list);
  };

  Chat.prototype.removeDock = function (requestId) {
    var dock = this.docks.querySelector('[data-request-id="' + CSS.escape(requestId) + '"]');
    if (dock) dock.remove();
  };

  Chat.prototype.permissionDock = function (p) {
    var self = this;
    this.removeDock(p.requestId);
    var dock = el("div", "dock");
    dock.dataset.requestId = p.requestId;
    dock.setAttribute("role", "group");
    dock.append(el("strong", "", "The agent asks permission: " + (p.permission || "")));
    if (p.patterns && p.patterns.length) dock.append(el("code", "dock-detail", p.patterns.join(", ")));
    var row = el("div", "dock-actions");
    [["once", "Allow once"], ["always", "Always allow"], ["reject", "Deny"]].forEach(function (choice) {
      var button = el("button", "btn" + (choice[0] === "once" ? " btn-primary" : ""), choice[1]);
      button.type = "button";
      button.addEventListener("click", function () {
        self.send({ type: "permission.reply", requestId: p.requestId, reply: choice[0] });
      });
      row.append(button);
    });
    dock.append(row);
    this.docks.append(dock);
  };

  Chat.prototype.questionDock = function (p) {
    var self = this;
    this.removeDock(p.requestId);
    var form = el("form", "dock");
    form.dataset.requestId = p.requestId;
    (p.questions || []).forEach(function (q, qi) {
      var set = el("fieldset", "dock-question");
      set.append(el("legend", "", q.question || q.header || "Question"));
      (q.options || []).forEach(function (option, oi) {
        var id = "q-" + p.requestId + "-" + qi + "-" + oi;
        var input = el("input");
        input.type = q.multiple ? "checkbox" : "radio";
        input.name = "q" + qi;
        input.value = option.label;
        input.id = id;
        var label = el("label", "check");
        label.htmlFor = id;
        label.append(input, el("span", "", option.label + (option.description ? " — " + option.description : "")));
        set.append(label);
      });
      if (q.custom !== false) {
        var custom = el("input");
        custom.type = "text";
        custom.name = "custom" + qi;
        custom.placeholder = "Or type an answer";
        custom.setAttribute("aria-label", "Your own answer");
        set.append(custom);
      }
      form.append(set);
    });
    var row = el("div", "dock-actions");
    var submit = el("button", "btn btn-primary", "Answer");
    submit.type = "submit";
    var reject = el("button", "btn", "Skip");
    reject.type = "button";
    reject.addEventListener("click", function () {
      self.send({ type: "question.reject", requestId: p.requestId });
    });
    row.append(submit, reject);
    form.append(row);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var answers = (p.questions || []).map(function (q, qi) {
        var picked = Array.prototype.map.call(
          form.querySelectorAll('input[name="q' + qi + '"]:checked'), function (i) { return i.value; });
        var custom = form.querySelector('input[name="custom' + qi + '"]');
        if (custom && custom.value.trim()) picked.push(custom.value.trim());
        return picked;
      });
      self.send({ type: "question.reply", requestId: p.requestId, answers: answers });
    });
    this.docks.append(form);
  };

  window.doce = window.doce || {};
  window.doce.Chat = Chat;
})();
