// The workspace chat: renders doce's normalized agent events (chat.*) from
// ws/projects/<id>/chat/ and sends the user's prompts, stops and answers back.
// Text from the agent is always set with textContent; the only HTML inserted is the
// server-rendered, nh3-sanitized markdown of a final message (payload.html).
// Prompts with attachments go to the API (POST /api/projects/<id>/prompt): a socket message
// is too small for them. Restore/undo, compaction and the rest travel on the socket.
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

  var MAX_ATTACHMENTS = 5;
  var MAX_IMAGE_BYTES = 5 * 1024 * 1024;
  var MAX_TEXT_BYTES = 1024 * 1024;
  var IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
  var FILE_TOOLS = { write: true, edit: true, patch: true, multiedit: true };

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function shortTokens(n) {
    return n >= 1000 ? (Math.round(n / 100) / 10) + "k" : String(n);
  }

  function Chat(root, options) {
    this.root = root;
    this.path = options.path;
    this.projectId = options.projectId || "";
    this.promptUrl = options.promptUrl || "";
    this.filesUrl = options.filesUrl || "";
    this.status = options.status || "";
    this.onFileChanged = options.onFileChanged || function () {};
    this.onRestored = options.onRestored || function () {};
    this.onStatus = options.onStatus || function () {};
    this.transcript = root.querySelector("[data-chat-transcript]");
    this.jump = root.querySelector("[data-chat-jump]");
    this.usage = root.querySelector("[data-chat-usage]");
    this.attachButton = root.querySelector("[data-chat-attach]");
    this.fileInput = root.querySelector("[data-chat-files]");
    this.chips = root.querySelector("[data-chat-chips]");
    this.attachments = [];   // {name, size, mime, dataUrl}
    this.pending = [];       // user bubbles shown before the agent has them
    this.following = true;   // keep the newest output in view
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
    this.bindScrolling();
    this.bindAttachments();
    this.connect();
  }

  Chat.prototype.reset = function () {
    this.messages = {};   // messageId -> {node, body, parts: {partId -> node}, final}
    this.tools = {};      // toolCallId -> card
    this.revert = null;   // first undone message of a restore
    this.pending = [];
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
      var model = self.modelSelect && self.modelSelect.value ? self.modelSelect.value : null;
      if (self.attachments.length) { self.postPrompt(text, model); return; }
      var message = { type: "prompt", text: text };
      if (model) message.model = model;
      if (self.send(message)) {
        self.input.value = "";
        self.showPending(text, []);
      }
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

  // A prompt appears at once, before the agent has it: "Sending…", then "Queued" (the project
  // is starting) until the agent's own copy of the message replaces it.
  Chat.prototype.showPending = function (text, attachments) {
    var node = el("article", "msg msg-user msg-pending");
    node.append(el("p", "msg-text", text));
    if (attachments.length) node.append(this.attachmentList(attachments));
    var note = el("p", "msg-state", "Sending…");
    node.append(note);
    this.transcript.append(node);
    this.pending.push({ text: text, node: node, note: note });
    this.refreshRestoreButtons();
    this.scrollToEnd(true);
  };

  Chat.prototype.settlePending = function (queued) {
    var item = this.pending.find(function (p) { return !p.acked; });
    if (!item) return;
    item.acked = true;
    if (queued) {
      item.note.textContent = this.status === "running"
        ? "Queued: the agent takes it in a moment."
        : "Queued. Starting your project…";
      item.node.classList.add("msg-queued");
    } else {
      item.note.textContent = "Sent";
    }
  };

  Chat.prototype.failPending = function (message) {
    var item = this.pending.find(function (p) { return !p.acked; }) || this.pending[this.pending.length - 1];
    if (!item) return;
    item.node.remove();
    this.pending.splice(this.pending.indexOf(item), 1);
    this.refreshRestoreButtons();
    if (!this.input.value.trim()) this.input.value = item.text;  // nothing is lost
    if (message) window.doce.toast(message, "error");
  };

  Chat.prototype.postPrompt = function (text, model) {
    var self = this;
    var body = {
      text: text,
      attachments: this.attachments.map(function (a) {
        return { name: a.name, content_base64: a.dataUrl };
      })
    };
    if (model) body.model = model;
    var shown = this.attachments.slice();
    var token = document.querySelector("input[name=csrfmiddlewaretoken]");
    this.input.value = "";
    this.setAttachments([]);
    this.showPending(text, shown);
    fetch(this.promptUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token ? token.value : "" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (response.ok) { self.settlePending(!!data.queued); return; }
        self.setAttachments(shown);  // refused: nothing was sent, nothing is lost
        self.failPending(data.detail || "The message was not sent.");
      });
    }, function () {
      self.setAttachments(shown);
      self.failPending("The message was not sent: doce did not answer.");
    });
  };

  // --- attachments ----------------------------------------------------------------------

  Chat.prototype.bindAttachments = function () {
    var self = this;
    if (!this.fileInput) return;
    this.attachButton.addEventListener("click", function () { self.fileInput.click(); });
    this.fileInput.addEventListener("change", function () {
      self.addFiles(self.fileInput.files);
      self.fileInput.value = "";
    });
    this.input.addEventListener("paste", function (event) {
      var files = event.clipboardData && event.clipboardData.files;
      if (files && files.length) { event.preventDefault(); self.addFiles(files); }
    });
    ["dragenter", "dragover"].forEach(function (kind) {
      self.root.addEventListener(kind, function (event) {
        if (!event.dataTransfer || Array.prototype.indexOf.call(event.dataTransfer.types, "Files") < 0) return;
        event.preventDefault();
        self.root.classList.add("chat-dropping");
      });
    });
    this.root.addEventListener("dragleave", function (event) {
      if (!self.root.contains(event.relatedTarget)) self.root.classList.remove("chat-dropping");
    });
    this.root.addEventListener("drop", function (event) {
      self.root.classList.remove("chat-dropping");
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      event.preventDefault();
      self.addFiles(event.dataTransfer.files);
    });
  };

  // A first check in the browser (the server checks again, by content): count and size.
  Chat.prototype.addFiles = function (fileList) {
    var self = this;
    Array.prototype.forEach.call(fileList, function (file) {
      var image = IMAGE_TYPES.indexOf(file.type) >= 0;
      var limit = image ? MAX_IMAGE_BYTES : MAX_TEXT_BYTES;
      if (self.attachments.length >= MAX_ATTACHMENTS) {
        window.doce.toast("Attach at most " + MAX_ATTACHMENTS + " files to one message.", "warning");
        return;
      }
      if (file.size > limit) {
        window.doce.toast(file.name + ": " + (image ? "images" : "text files") + " can be at most " +
          (limit / 1024 / 1024) + " MB.", "warning");
        return;
      }
      var entry = { name: file.name, size: file.size, mime: file.type || "text/plain", dataUrl: null };
      self.attachments.push(entry);
      var reader = new FileReader();
      reader.addEventListener("load", function () { entry.dataUrl = reader.result; self.renderChips(); });
      reader.readAsDataURL(file);
    });
    this.renderChips();
  };

  Chat.prototype.setAttachments = function (list) {
    this.attachments = list.slice();
    this.renderChips();
  };

  Chat.prototype.renderChips = function () {
    var self = this;
    if (!this.chips) return;
    this.chips.replaceChildren();
    this.chips.hidden = !this.attachments.length;
    this.attachments.forEach(function (a, i) {
      var chip = el("span", "chip");
      if (a.dataUrl && a.mime.indexOf("image/") === 0) {
        var img = el("img", "chip-thumb");
        img.src = a.dataUrl;
        img.alt = "";
        chip.append(img);
      }
      chip.append(el("span", "chip-name", a.name));
      var remove = el("button", "chip-remove", "×");
      remove.type = "button";
      remove.setAttribute("aria-label", "Remove " + a.name);
      remove.addEventListener("click", function () {
        self.attachments.splice(i, 1);
        self.renderChips();
      });
      chip.append(remove);
      self.chips.append(chip);
    });
    var sendButton = this.form.querySelector("button[type=submit]");
    var reading = this.attachments.some(function (a) { return !a.dataUrl; });
    if (sendButton) sendButton.disabled = reading;
  };

  Chat.prototype.attachmentList = function (attachments) {
    var list = el("div", "msg-attachments");
    attachments.forEach(function (a) {
      var url = a.url || (a.mime && a.mime.indexOf("image/") === 0 ? a.dataUrl : null);
      if (url) {
        var img = el("img", "msg-thumb");
        img.src = url;
        img.alt = a.name;
        img.title = a.name;
        list.append(img);
      } else {
        list.append(el("span", "chip", a.name));
      }
    });
    return list;
  };

  // --- scrolling --------------------------------------------------------------------------
  // Follow new output while the reader is at the end; once they scroll up, stay put and offer
  // "Jump to latest".

  Chat.prototype.bindScrolling = function () {
    var self = this;
    var t = this.transcript;
    t.addEventListener("scroll", function () {
      self.following = t.scrollHeight - t.scrollTop - t.clientHeight < 48;
      if (self.following && self.jump) self.jump.hidden = true;
    });
    if (this.jump) {
      this.jump.addEventListener("click", function () { self.scrollToEnd(true); });
    }
    // Late layout (images, fonts, the page settling) must not leave a follower behind.
    if (window.ResizeObserver) {
      new ResizeObserver(function () { if (self.following) t.scrollTop = t.scrollHeight; }).observe(t);
    }
  };

  // --- restore --------------------------------------------------------------------------

  Chat.prototype.userIds = function () {
    return Array.prototype.map.call(
      this.transcript.querySelectorAll(".msg-user[data-message-id]"),
      function (node) { return node.dataset.messageId; });
  };

  // Every user message but the last can be restored to; the buttons follow new messages.
  // While the agent works (or a prompt waits to be sent) they are disabled: the server
  // refuses a restore then (409), and says so.
  Chat.prototype.refreshRestoreButtons = function () {
    var nodes = this.transcript.querySelectorAll(".msg-user[data-message-id]");
    var working = this.busy || this.pending.length > 0;
    var why = "Wait until the agent has finished, then restore";
    nodes.forEach(function (node, i) {
      var button = node.querySelector("[data-restore]");
      if (!button) return;
      button.hidden = i === nodes.length - 1 || node.classList.contains("msg-undone");
      button.disabled = working;
      button.title = working ? why : "Undo everything after this message: later messages and their file changes";
    });
    var undo = this.transcript.querySelector("[data-unrestore]");
    if (undo) { undo.disabled = working; undo.title = working ? why : ""; }
  };

  Chat.prototype.confirmRestore = function (messageId) {
    var start = this.messages[messageId];
    if (!start) return;
    // What is undone starts at the next message of yours: this message's own answer stays.
    var later = [];
    var node = start.node.nextElementSibling;
    while (node && !(node.dataset.messageId && node.classList.contains("msg-user"))) {
      node = node.nextElementSibling;
    }
    while (node) {
      if (node.dataset.messageId) later.push(node);
      node = node.nextElementSibling;
    }
    var files = {};
    later.forEach(function (n) {
      n.querySelectorAll(".tool-card[data-file]").forEach(function (card) { files[card.dataset.file] = true; });
    });
    var names = Object.keys(files);
    var text = "Restore to here?\n\nThis undoes " + plural(later.length, "later message", "later messages") +
      (names.length ? " and their changes to " + plural(names.length, "file", "files") + ": " + names.slice(0, 8).join(", ") +
        (names.length > 8 ? ", …" : "") : " and any file changes they made") +
      ".\n\nYou can undo the restore until you send your next message.";
    if (window.confirm(text)) this.send({ type: "restore", messageId: messageId });
  };

  Chat.prototype.showRevert = function (messageId) {
    var self = this;
    this.revert = messageId || null;
    var banner = this.transcript.querySelector("[data-revert-banner]");
    if (banner) banner.remove();
    var undone = false;
    Array.prototype.forEach.call(this.transcript.children, function (node) {
      if (!node.dataset.messageId) return;
      if (node.dataset.messageId === messageId) undone = true;
      node.classList.toggle("msg-undone", undone);
    });
    if (messageId && this.messages[messageId]) {
      banner = el("div", "revert-banner");
      banner.dataset.revertBanner = "";
      banner.setAttribute("role", "status");
      banner.append(el("span", "", "Restored to an earlier message. The messages below are undone; your next message makes it final."));
      var undo = el("button", "btn", "Undo restore");
      undo.type = "button";
      undo.dataset.unrestore = "";
      undo.addEventListener("click", function () { self.send({ type: "unrestore" }); });
      banner.append(undo);
      this.messages[messageId].node.before(banner);
    }
    this.refreshRestoreButtons();
  };

  // The agent deletes the undone messages with the next prompt; drop them here too, whether
  // or not its removal events arrive.
  Chat.prototype.finalizeRevert = function () {
    var self = this;
    this.transcript.querySelectorAll(".msg-undone[data-message-id]").forEach(function (node) {
      delete self.messages[node.dataset.messageId];
      node.remove();
    });
    this.showRevert(null);
  };

  // --- usage ------------------------------------------------------------------------------

  Chat.prototype.showUsage = function (p) {
    if (!this.usage || !p.tokens) return;
    var self = this;
    this.usage.hidden = false;
    this.usage.replaceChildren();
    var text = shortTokens(p.tokens) + (p.limit ? " / " + shortTokens(p.limit) : "") + " tokens";
    var label = el("span", "usage-text", text);
    label.title = "How much of the model's context this conversation fills" + (p.model ? " (" + p.model + ")" : "");
    if (p.limit) {
      var meter = el("meter", "usage-meter");
      meter.min = 0; meter.max = p.limit; meter.value = Math.min(p.tokens, p.limit);
      meter.low = p.limit * 0.6; meter.high = p.limit * 0.85; meter.optimum = 0;
      meter.setAttribute("aria-label", "Context used");
      this.usage.append(meter);
    }
    var compact = el("button", "btn btn-ghost btn-small", "Compact conversation");
    compact.type = "button";
    compact.addEventListener("click", function () {
      if (self.send({ type: "compact" })) window.doce.toast("Compacting the conversation…", "info");
    });
    this.usage.append(label, compact);
  };

  // --- events ---------------------------------------------------------------------------------

  Chat.prototype.handle = function (event) {
    var handler = this.handlers[event.type];
    if (!handler) return;
    handler.call(this, event.payload || {}, event);
    // Whatever grew (a diff, a final answer's markdown), a follower stays at the end.
    if (this.following) this.transcript.scrollTop = this.transcript.scrollHeight;
  };

  Chat.prototype.handlers = {
    "chat.history": function (payload) {
      var pending = this.pending;
      this.reset();
      var events = payload.events || [];
      for (var i = 0; i < events.length; i++) this.handle(events[i]);
      // Prompts still on their way stay shown after a reconnect.
      var self = this;
      var said = Array.prototype.map.call(
        this.transcript.querySelectorAll(".msg-user .msg-text"), function (n) { return n.textContent; });
      pending.forEach(function (item) {
        if (said.indexOf(item.text) >= 0) return;
        self.transcript.append(item.node);
        self.pending.push(item);
      });
      this.scrollToEnd(true);
    },
    "chat.message.user": function (p) {
      var self = this;
      var existing = this.messages[p.messageId];
      if (existing) {  // said again: an attachment arrived after the text
        var old = existing.node.querySelector(".msg-attachments");
        if (old) old.remove();
        if (p.attachments && p.attachments.length) existing.node.querySelector(".msg-text").after(this.attachmentList(p.attachments));
        return;
      }
      if (this.revert) this.finalizeRevert();  // a new prompt makes the restore final
      var waiting = this.pending.find(function (item) { return item.text === p.text; });
      if (waiting) { waiting.node.remove(); this.pending.splice(this.pending.indexOf(waiting), 1); }
      var node = el("article", "msg msg-user");
      node.dataset.messageId = p.messageId;
      node.append(el("p", "msg-text", p.text));
      if (p.attachments && p.attachments.length) node.append(this.attachmentList(p.attachments));
      var restore = el("button", "msg-restore", "Restore to here");
      restore.type = "button";
      restore.dataset.restore = "";
      restore.addEventListener("click", function () { self.confirmRestore(p.messageId); });
      node.append(restore);
      this.messages[p.messageId] = { node: node, body: node, parts: {}, final: true };
      this.append(node);
      if (this.revert) this.showRevert(this.revert);
      this.refreshRestoreButtons();
    },
    "chat.ack": function (p) {
      if (p.action === "prompt") this.settlePending(!!p.queued);
      else if (p.action === "restore" || p.action === "unrestore") {
        this.showRevert(p.undoneFrom || null);
        this.onRestored(p.action);
      }
    },
    "chat.session.revert": function (p) { this.showRevert(p.messageId); },
    "chat.usage": function (p) { this.showUsage(p); },
    "chat.session.compacted": function () {
      window.doce.toast("The conversation was compacted: the agent now works from a summary.", "info");
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
      this.busy = busy;
      this.refreshRestoreButtons();
      this.onStatus(p.status);
    },
    "chat.session.title": function (p) {
      var title = this.root.querySelector("[data-chat-title]");
      if (title && p.title) title.textContent = p.title;
    },
    "chat.diagnostic": function (p) {
      if (this.pending.some(function (item) { return !item.acked; })) this.failPending("");
      var node = el("article", "msg msg-system");
      this.diagnosticCard(node, p.diagnostic || {});
      this.append(node);
    },
    "chat.error": function (p) {
      if (p.code === "rejected" && this.pending.some(function (item) { return !item.acked; })) {
        this.failPending(p.message);
        return;
      }
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
      if (this.revert === p.messageId) this.showRevert(null);
      this.refreshRestoreButtons();
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
    if (force) this.following = true;
    if (this.following) {
      t.scrollTop = t.scrollHeight;
      if (this.jump) this.jump.hidden = true;
    } else if (this.jump) {
      this.jump.hidden = false;
    }
  };

  Chat.prototype.message = function (messageId) {
    var message = this.messages[messageId];
    if (!message) {
      var node = el("article", "msg msg-assistant");
      node.dataset.messageId = messageId;
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
      summary.append(el("span", "tool-name", p.name || "tool"), el("span", "tool-input"),
        el("span", "tool-stat"), el("span", "tool-status"));
      // The output and the diff scroll inside the card: keyboard users reach them (tabindex).
      var output = el("pre", "tool-output");
      output.tabIndex = 0;
      output.setAttribute("aria-label", "Tool output");
      card.append(summary, el("div", "tool-body"), output);
      this.tools[p.toolCallId] = card;
      var message = this.message(p.messageId);
      message.parts[p.partId || p.toolCallId] = card;
      message.body.append(card);
      this.scrollToEnd();
    }
    if (card.dataset.state === "done" || card.dataset.state === "error") {
      if (state === "running") return;  // a late start never undoes an end
    }
    card.dataset.state = state;
    card.querySelector(".tool-status").textContent = { running: "running…", done: "done", error: "failed" }[state];
    var input = p.input || {};
    var file = input.filePath || input.path;
    if (FILE_TOOLS[p.name] && typeof file === "string") card.dataset.file = file;
    var summaryText = FILE_TOOLS[p.name] ? file : (p.title || summarizeInput(p.name, input));
    if (p.name === "todowrite") summaryText = this.todoSummary(input.todos);
    if (summaryText) card.querySelector(".tool-input").textContent = summaryText;
    if (state === "done" && p.name === "todowrite" && Array.isArray(input.todos)) {
      card.querySelector(".tool-body").replaceChildren(this.todoList(input.todos));
      card.querySelector(".tool-output").textContent = "";
    } else if (state === "done" && p.diff) {
      this.renderDiff(card, p.diff, !!p.diffTruncated, file, p.diffHtml);
      card.querySelector(".tool-output").textContent = "";
    } else if (state === "done" && p.output) {
      card.querySelector(".tool-output").textContent = p.output;
    }
    if (state === "error") card.querySelector(".tool-output").textContent = p.error || "The tool failed.";
  };

  Chat.prototype.todoSummary = function (todos) {
    if (!Array.isArray(todos)) return "Plan";
    var done = todos.filter(function (t) { return t.status === "completed"; }).length;
    return "Plan: " + done + " of " + plural(todos.length, "step", "steps") + " done";
  };

  // A unified diff, line by line. `diffHtml` is the same diff highlighted on the server
  // (doce.highlight: Pygments classes, every character of the agent's text escaped there);
  // without it the lines are text only.
  Chat.prototype.renderDiff = function (card, diff, truncated, file, diffHtml) {
    var pre = el("pre", "tool-diff hl");
    pre.tabIndex = 0;
    pre.setAttribute("aria-label", "Changes" + (file ? " to " + file : ""));
    var added = 0, removed = 0;
    diff.split("\n").forEach(function (line) {
      var kind = "ctx";
      if (line.indexOf("+++ ") === 0 || line.indexOf("--- ") === 0) kind = "file";
      else if (line.indexOf("@@") === 0) kind = "hunk";
      else if (line[0] === "+") { kind = "add"; added++; }
      else if (line[0] === "-") { kind = "del"; removed++; }
      if (!diffHtml) pre.append(el("span", "diff-line diff-" + kind, line + "\n"));
    });
    if (diffHtml) pre.innerHTML = diffHtml;
    var body = card.querySelector(".tool-body");
    body.replaceChildren(pre);
    if (truncated) {
      var more = el("p", "tool-more");
      more.append(document.createTextNode("The change is longer than shown. "));
      var link = el("a", "", "See the whole file in the Files tab");
      link.href = this.filesUrl + (file ? "?path=" + encodeURIComponent(file) : "");
      link.addEventListener("click", function (event) {
        var tab = document.querySelector('[data-tab="files"]');
        if (!tab) return;
        event.preventDefault();
        tab.click();
        var frame = document.querySelector("#panel-files iframe");
        if (frame) frame.src = link.href + (link.href.indexOf("?") >= 0 ? "&" : "?") + "embed=1";
      });
      more.append(link);
      body.append(more);
    }
    card.querySelector(".tool-stat").textContent = "+" + added + " −" + removed;
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

  Chat.prototype.todoList = function (todos) {
    var list = el("ul", "todo-list");
    todos.forEach(function (todo) {
      list.append(el("li", "todo todo-" + (todo.status || "pending"), todo.content));
    });
    return list;
  };

  Chat.prototype.renderTodos = function (todos) {
    if (!this.todos) return;
    this.todos.replaceChildren();
    this.todos.hidden = todos.length === 0;
    if (!todos.length) return;
    this.todos.append(el("h2", "small", this.todoSummary(todos)), this.todoList(todos));
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
