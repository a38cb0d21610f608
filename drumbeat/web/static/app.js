/* Drumbeat dashboard script: forms that answer in place, the cancel dialog, and live
   updates of the campaign page. User text only ever reaches the DOM as text nodes
   (textContent / createTextNode / attribute values), never as HTML. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* el("span", {class: "chip", title: "..."}, "text", childNode, ...) */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      node.setAttribute(key, value === true ? "" : String(value));
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" || typeof child === "number"
        ? document.createTextNode(String(child)) : child);
    }
    return node;
  }

  function replaceChildren(parent, children) {
    while (parent.firstChild) parent.removeChild(parent.firstChild);
    children.forEach(function (c) { if (c) parent.appendChild(c); });
  }

  /* --- the action alert ------------------------------------------------------------ */

  function gateLine(g) {
    var where = g.channel ? " (" + g.channel + ")" : "";
    /* A key that failed its connection test links to its page, where it is updated. */
    var fix = !g.ok && g.gate === "key_pool" && g.integration_id
      ? el("a", {href: "/integrations/" + encodeURIComponent(g.integration_id), "data-testid": "gate-key-link"},
           "Open the key") : null;
    return el("li", {class: g.ok ? "gate-ok" : "gate-failed", "data-gate": g.gate},
      (g.ok ? "✓ " : "✗ ") + g.gate + where + ": " + (g.ok ? "ok" : (g.reason || "closed")),
      fix ? " " : null, fix);
  }

  function showAlert(error) {
    var box = document.getElementById("action-alert");
    if (!box) { window.alert(error.message || "The action failed."); return; }
    var children = [el("p", {class: "alert-title"}, error.message || "The action failed.")];
    var gates = (error.details && error.details.gates) || [];
    if (gates.length) children.push(el("ul", {class: "gates"}, null));
    replaceChildren(box, children);
    var list = box.querySelector("ul.gates");
    gates.forEach(function (g) { list.appendChild(gateLine(g)); });
    box.hidden = false;
  }

  function hideAlert() {
    var box = document.getElementById("action-alert");
    if (box) { box.hidden = true; replaceChildren(box, []); }
  }

  /* --- forms that answer in place ----------------------------------------------------- */

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-async")) return;
    ev.preventDefault();
    var buttons = Array.prototype.slice.call(form.querySelectorAll("button"));
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: {"X-Requested-With": "fetch", "X-CSRF-Token": csrfToken(), "Accept": "application/json"}
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        var dialog = form.closest("dialog");
        if (dialog && dialog.open) dialog.close();
        if (resp.status === 401) {
          window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
        } else if (resp.ok) {
          hideAlert();
          /* The form's one-time nonce is used: the next press of its button needs a new one. */
          var nonce = form.querySelector('input[name="form_nonce"]');
          if (nonce && data.form_nonce) nonce.value = data.form_nonce;
          if (data.redirect) { window.location.assign(data.redirect); return; }
          if (data.message) showToast(data.message);
          return refresh();
        } else {
          showAlert(data.error || {message: "The action failed (HTTP " + resp.status + ")."});
        }
      });
    }).catch(function () {
      showAlert({message: "The server could not be reached; try again."});
    }).then(function () {
      buttons.forEach(function (b) { b.disabled = b.hasAttribute("data-keep-disabled"); });
      syncCancelButton();
    });
  });

  /* --- a chooser that shows its choice at once (its form's button does the same without JS) --- */

  document.addEventListener("change", function (ev) {
    if (ev.target.matches && ev.target.matches("select[data-autosubmit]")) ev.target.form.submit();
  });

  /* --- the cancel dialog: type the campaign's exact name ------------------------------ */

  function syncCancelButton() {
    var dialog = document.getElementById("cancel-dialog");
    if (!dialog) return;
    var input = dialog.querySelector('input[name="confirm"]');
    var submit = dialog.querySelector('button[type="submit"]');
    submit.disabled = input.value !== dialog.getAttribute("data-expected");
  }

  /* The opener is a button of a GET form (the confirmation page, without JavaScript); here it
     opens the dialog instead. A modal dialog makes the page behind it inert; Tab and
     Shift+Tab also cycle inside it, Escape closes it (the browser's cancel event), and focus
     goes back to the button that opened it. */
  var lastOpener = null;

  document.addEventListener("click", function (ev) {
    var opener = ev.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-open-dialog"));
      if (dialog) {
        ev.preventDefault();
        dialog.querySelector("form").reset();
        syncCancelButton();
        lastOpener = opener;
        dialog.showModal();
      }
      return;
    }
    var closer = ev.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
    var dismiss = ev.target.closest("[data-dismiss-toast]");
    if (dismiss) { ev.preventDefault(); hideToast(); }
  });

  function focusable(dialog) {
    return Array.prototype.filter.call(
      dialog.querySelectorAll("a[href], button, input, select, textarea, [tabindex]:not([tabindex='-1'])"),
      function (node) { return !node.disabled && !node.hidden && node.offsetParent !== null; });
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Tab") return;
    var dialog = ev.target.closest && ev.target.closest("dialog[open]");
    if (!dialog) return;
    var nodes = focusable(dialog);
    if (!nodes.length) return;
    var first = nodes[0], last = nodes[nodes.length - 1];
    if (ev.shiftKey && document.activeElement === first) { ev.preventDefault(); last.focus(); }
    else if (!ev.shiftKey && document.activeElement === last) { ev.preventDefault(); first.focus(); }
  });

  document.querySelectorAll("dialog").forEach(function (dialog) {
    dialog.addEventListener("close", function () {
      if (lastOpener && document.contains(lastOpener) && !lastOpener.closest("[hidden]")) lastOpener.focus();
      lastOpener = null;
    });
  });

  document.addEventListener("input", function (ev) {
    if (ev.target.closest && ev.target.closest("#cancel-dialog")) syncCancelButton();
  });

  /* --- live campaign page ----------------------------------------------------------- */

  var root = document.getElementById("campaign");
  var timer = null;

  function slot(name) { return root.querySelector('[data-slot="' + name + '"]'); }
  function field(name) { return root.querySelector('[data-field="' + name + '"]'); }

  function statusChip(c) {
    return el("span", {class: "chip status-" + c.status, "data-testid": "status-chip"}, c.status_label);
  }

  function leadLink(campaignId, leadId, text) {
    return el("a", {href: "/campaigns/" + encodeURIComponent(campaignId) + "/leads/" + encodeURIComponent(leadId)}, text);
  }

  function resolveForm(c, lead, value, label) {
    return el("form", {method: "post", class: "inline", "data-async": true,
                       action: "/campaigns/" + encodeURIComponent(c.id) + "/leads/" + encodeURIComponent(lead.id) + "/resolve"},
      el("input", {type: "hidden", name: "csrf", value: csrfToken()}),
      el("input", {type: "hidden", name: "resolution", value: value}),
      el("button", {type: "submit", class: "btn btn-small"}, label));
  }

  function render(c) {
    replaceChildren(slot("status"), [statusChip(c)]);

    var paused = slot("paused");
    if (c.paused) {
      replaceChildren(paused, [
        el("span", {class: "chip reason", title: c.paused.text, "data-testid": "reason-chip", tabindex: "0"}, c.paused.reason),
        document.createTextNode(" "),
        el("span", {class: "muted", "data-testid": "paused-meta"}, "paused ", timeNode(c.paused.at), " by " + c.paused.by),
        document.createTextNode(" "),
        el("span", {class: "pause-explanation", "data-testid": "pause-explanation"}, c.paused.explanation),
        document.createTextNode(" "),
        c.paused.fix ? el("a", {href: c.paused.fix.href, "data-testid": "pause-fix"}, c.paused.fix.text) : null
      ]);
    } else {
      replaceChildren(paused, []);
    }
    paused.hidden = !c.paused;

    root.querySelectorAll(".actions [data-action]").forEach(function (node) {
      node.hidden = c.actions.indexOf(node.getAttribute("data-action")) < 0;
    });

    var holds = slot("holds");
    replaceChildren(holds, [el("span", {class: "muted"}, "Held channels:")].concat(c.holds.map(function (h) {
      return el("span", {class: "chip hold", title: h.text, tabindex: "0", "data-testid": "hold-chip"},
        h.channel + ": " + h.reason);
    })));
    holds.hidden = c.holds.length === 0;

    var bar = slot("progress").querySelector(".progress");
    bar.setAttribute("aria-valuenow", String(c.percent));
    bar.querySelector(".progress-fill").style.width = c.percent + "%";
    field("percent").textContent = c.percent_text;
    field("done").textContent = String(c.done);
    field("total").textContent = String(c.total);
    var canceledCount = field("canceled");
    if (canceledCount) { canceledCount.textContent = c.canceled_text; canceledCount.hidden = !c.canceled_text; }

    replaceChildren(slot("segments"), c.bar.filter(function (s) { return s.count > 0; }).map(function (s) {
      var seg = el("span", {class: "seg seg-" + s.state, title: s.label + ": " + s.count});
      seg.style.width = s.pct + "%";
      return seg;
    }));
    c.numbers.forEach(function (n) {
      var dd = root.querySelector('[data-number="' + n.key + '"]');
      if (dd) dd.textContent = String(n.value);
    });

    var next = slot("next-send");
    if (c.next_send) {
      replaceChildren(next, [document.createTextNode("Next send "), el("strong", {}, timeNode(c.next_send.at)),
                             document.createTextNode(" — " + c.next_send.why)]);
    } else {
      next.textContent = c.status === "sending"
        ? "Nothing due: every remaining lead waits for a person or a hold." : "Not sending.";
    }

    replaceChildren(slot("in-doubt"), c.in_doubt.length ? c.in_doubt.map(function (lead) {
      return el("tr", {},
        el("td", {}, leadLink(c.id, lead.id, lead.who)), el("td", {}, lead.address), el("td", {}, lead.step),
        el("td", {}, timeNode(lead.since)),
        c.can_operate ? el("td", {}, resolveForm(c, lead, "retry", "Retry"), resolveForm(c, lead, "mark_sent", "Mark as sent")) : null);
    }) : [el("tr", {}, el("td", {colspan: "5", class: "muted"}, "None."))]);

    replaceChildren(slot("errors"), c.errors.length ? c.errors.map(function (e) {
      var samples = el("td", {});
      e.samples.forEach(function (id) { samples.appendChild(leadLink(c.id, id, "#" + id)); samples.appendChild(document.createTextNode(" ")); });
      var code = el("td", {}, e.scope ? el("span", {class: "chip", "data-testid": "error-scope"}, e.scope) : null,
        e.scope ? document.createTextNode(" ") : null, el("code", {}, e.code));
      return el("tr", {}, code, el("td", {}, e.message),
        el("td", {class: "num"}, e.count), samples);
    }) : [el("tr", {}, el("td", {colspan: "4", class: "muted"}, "No errors."))]);

    replaceChildren(slot("timeline"), c.timeline.map(function (t) {
      return el("tr", {}, el("td", {}, timeNode(t.at)), el("td", {}, t.action), el("td", {}, t.change),
        el("td", {}, t.reason ? el("span", {class: "chip reason", title: t.reason_text}, t.reason) : null),
        el("td", {}, t.actor), el("td", {class: "details"}, t.details));
    }));

    var missing = slot("missing");
    replaceChildren(slot("missing-list"), c.missing_variables.map(function (m) {
      var item = el("li", {}, m.text + " ");
      m.samples.forEach(function (id) {
        item.appendChild(el("a", {href: "/campaigns/" + encodeURIComponent(c.id) + "/preview?lead_id=" + encodeURIComponent(id)}, "#" + id));
        item.appendChild(document.createTextNode(" "));
      });
      return item;
    }));
    missing.hidden = c.missing_variables.length === 0;

    localTimes(root);
    root.setAttribute("data-live", c.live ? "true" : "false");
    root.setAttribute("data-status", c.status);
  }

  function refresh() {
    if (!root) return Promise.resolve();
    return fetch(root.getAttribute("data-live-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (c) { if (c) render(c); })
      .catch(function () { /* the next poll tries again */ });
  }

  function poll() {
    refresh().then(function () {
      var live = root.getAttribute("data-live") === "true";
      var delay = live ? 1000 : 5000;
      timer = window.setTimeout(poll, document.hidden ? Math.max(delay, 5000) : delay);
    });
  }

  if (root && root.getAttribute("data-live-url")) {
    root.setAttribute("data-status", root.querySelector('[data-testid="status-chip"]').className.replace(/.*status-/, ""));
    timer = window.setTimeout(poll, root.getAttribute("data-live") === "true" ? 1000 : 5000);
  }

  /* --- live campaign list: each row's cells refreshed in place (issue 19) ----------------- */

  var list = document.getElementById("campaign-list");

  function renderListRow(tr, c) {
    function cell(name) { return tr.querySelector('[data-cell="' + name + '"]'); }
    tr.setAttribute("data-status", c.status);
    replaceChildren(cell("status"), [statusChip(c), c.paused_reason ? document.createTextNode(" ") : null,
      c.paused_reason ? el("span", {class: "chip reason", title: c.reason_text, "data-testid": "reason-chip", tabindex: "0"},
        c.paused_reason) : null]);
    var bar = cell("progress").querySelector(".progress");
    bar.setAttribute("aria-valuenow", String(c.percent));
    bar.querySelector(".progress-fill").style.width = c.percent + "%";
    cell("progress").querySelector('[data-field="percent"]').textContent = c.percent_text;
    var canceled = cell("progress").querySelector('[data-field="canceled"]');
    canceled.textContent = c.canceled_text;
    canceled.hidden = !c.canceled_text;
    var channels = [];
    c.channels.forEach(function (ch, i) {
      if (i) channels.push(document.createTextNode(" "));
      channels.push(el("span", {class: "channel channel-" + ch.channel}, el("span", {"aria-hidden": "true"}, ch.icon), " " + ch.word));
    });
    replaceChildren(cell("channels"), channels);
    replaceChildren(cell("next-send"), c.next_send
      ? [timeNode(c.next_send.at), el("br", {}), el("span", {class: "muted small"}, c.next_send.why)]
      : [document.createTextNode("—")]);
    cell("replies").textContent = String(c.replies);
    cell("leads").textContent = String(c.total_leads);
  }

  function renderList(data) {
    data.items.forEach(function (c) {
      var tr = list.querySelector('tr[data-campaign-id="' + CSS.escape(c.id) + '"]');
      if (tr) renderListRow(tr, c);
    });
    document.querySelectorAll('[data-testid="status-filters"] a').forEach(function (link) {
      var key = link.getAttribute("data-status"), count = link.querySelector(".count");
      if (count) count.textContent = String(key ? (data.status_counts[key] || 0) : data.all_count);
    });
    localTimes(list);
    list.setAttribute("data-live", data.items.some(function (c) { return c.live; }) ? "true" : "false");
  }

  function pollList() {
    fetch(list.getAttribute("data-live-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (data) { if (data) renderList(data); })
      .catch(function () { /* the next poll tries again */ })
      .then(function () {
        /* Every 2 s while a campaign on the page sends or waits to start, else every 10 s. */
        var delay = list.getAttribute("data-live") === "true" ? 2000 : 10000;
        window.setTimeout(pollList, document.hidden ? Math.max(delay, 10000) : delay);
      });
  }

  if (list && list.getAttribute("data-live-url")) {
    window.setTimeout(pollList, list.getAttribute("data-live") === "true" ? 2000 : 10000);
  }

  /* --- polish (issue 19): toasts and times in the viewer's zone --------------------------- */

  /* The answer to an action, in the page's role=status region (read out politely). */
  function showToast(text) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    var frame = box.parentNode, close = frame.querySelector("[data-dismiss-toast]");
    if (close) close.hidden = !text;
    frame.classList.remove("toast-faded");
    window.clearTimeout(showToast.timer);
    showToast.timer = window.setTimeout(function () { frame.classList.add("toast-faded"); }, 8000);
  }

  function hideToast() {
    var box = document.getElementById("toast");
    if (!box) return;
    window.clearTimeout(showToast.timer);
    box.textContent = "";
    var close = box.parentNode.querySelector("[data-dismiss-toast]");
    if (close) close.hidden = true;
  }

  /* "2026-12-04 18:37:14 UTC" as the server sends it, as a <time> app.js localises. */
  function timeNode(text) {
    var m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) UTC$/.exec(text || "");
    if (!m) return document.createTextNode(text || "");
    return el("time", {datetime: m[1] + "T" + m[2] + "Z", title: text}, text);
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  /* Each <time datetime> in the viewer's time zone; its title keeps the UTC value. */
  function localTimes(scope) {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* older browsers */ }
    scope.querySelectorAll("time[datetime]").forEach(function (node) {
      if (node.hasAttribute("data-local")) return;
      var d = new Date(node.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      if (!node.title) node.title = node.textContent;
      node.textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
        pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + (zone ? " " + zone : "");
      node.setAttribute("data-local", "");
    });
  }

  localTimes(document);
  var toastBox = document.getElementById("toast");
  if (toastBox && toastBox.textContent) {
    showToast(toastBox.textContent);
    /* A reload must not repeat the toast: drop ?done= from the address. */
    if (window.history.replaceState && /[?&]done=/.test(window.location.search)) {
      window.history.replaceState(null, "", window.location.pathname);
    }
  }
})();

/* --- the campaign builder (issue 19) ----------------------------------------------------
   Enhances web/templates/builder.html, which works without it: shows each step's inputs for
   its channel, counts SMS segments as the operator types (the server's own count, from
   /campaigns/builder/sms-size), adds and removes step rows in place, asks the server for a
   WhatsApp template's parameter form as soon as one is picked, and inserts variables. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-builder]");
  if (!form) return;
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var lastField = null;

  function rows() { return Array.prototype.slice.call(form.querySelectorAll(".step-row")); }
  function rowOf(node) { return node.closest(".step-row"); }

  function showChannel(row) {
    var select = row.querySelector("[data-channel-select]");
    var channel = select ? select.value : row.getAttribute("data-channel");
    row.setAttribute("data-channel", channel);
    row.querySelectorAll(".channel-group[data-channels]").forEach(function (group) {
      group.hidden = group.getAttribute("data-channels").split(" ").indexOf(channel) < 0;
    });
    var size = row.querySelector("[data-sms-size]");
    if (size) size.hidden = channel !== "sms";
    if (channel === "sms") countSegments(row);
  }

  var timers = new WeakMap();
  function countSegments(row) {
    var text = row.querySelector("[data-sms-text]");
    var out = row.querySelector("[data-sms-size]");
    if (!text || !out) return;
    window.clearTimeout(timers.get(row));
    timers.set(row, window.setTimeout(function () {
      var body = new URLSearchParams({text: text.value});
      fetch("/campaigns/builder/sms-size", {method: "POST", credentials: "same-origin", body: body,
        headers: {"X-CSRF-Token": csrf, "X-Requested-With": "fetch", "Accept": "application/json"}})
        .then(function (resp) { return resp.ok ? resp.json() : null; })
        .then(function (size) {
          if (!size) return;
          out.textContent = text.value ? size.text : "";
          out.classList.toggle("too-long", size.too_long);
        })
        .catch(function () { /* the server counts again on save */ });
    }, 150));
  }

  function renumber() {
    rows().forEach(function (row, n) {
      var number = row.querySelector("[data-step-number]");
      if (number) number.textContent = String(n + 1);
      var remove = row.querySelector("[data-remove-step]");
      if (remove) remove.textContent = "Remove step " + (n + 1);
      var delay = row.querySelector("[data-delay-label]");
      if (delay) delay.textContent = n === 0 ? "Wait before sending" : "Wait after the previous step";
      var unit = row.querySelector("[data-delay-unit]");
      if (unit) unit.setAttribute("aria-label", "Step " + (n + 1) + " delay unit");
    });
  }

  function addStep() {
    var all = rows();
    var last = all[all.length - 1];
    var from = last.getAttribute("data-step");
    var to = String(Math.max.apply(null, all.map(function (r) { return Number(r.getAttribute("data-step")); })) + 1);
    var row = last.cloneNode(true);
    var names = new RegExp("^steps\\." + from + "\\.");
    var ids = new RegExp("^f-steps-" + from + "-");
    row.setAttribute("data-step", to);
    row.id = "f-steps-" + to;
    row.querySelectorAll(".field-error").forEach(function (e) { e.remove(); });
    row.querySelectorAll("[name],[id],[for]").forEach(function (node) {
      ["name", "id", "for"].forEach(function (attr) {
        var value = node.getAttribute(attr);
        if (value) node.setAttribute(attr, value.replace(names, "steps." + to + ".").replace(ids, "f-steps-" + to + "-"));
      });
      node.removeAttribute("aria-invalid");
      node.removeAttribute("aria-describedby");
      if (node.matches("textarea, input[type=text]")) node.value = node.name.slice(-6) === ".delay" ? "0" : "";
      if (node.matches("select[data-catalogue]")) node.value = "";
    });
    var remove = row.querySelector("[data-remove-step]");
    if (remove) remove.value = "remove:" + to;
    var sms = row.querySelector("[data-sms-size]");
    if (sms) sms.textContent = "";
    var params = row.querySelector("[data-catalogue-parameters]");
    if (params) params.textContent = "";
    last.parentNode.appendChild(row);
    renumber();
    showChannel(row);
    var channel = row.querySelector("[data-channel-select]");
    if (channel) channel.focus();
  }

  form.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button) return;
    if (button.hasAttribute("data-add-step")) {
      var all = rows();
      /* A row with a parameter form is not a blank to copy: the server adds the step. */
      if (all[all.length - 1].querySelector("[data-testid=template-parameters]")) return;
      event.preventDefault();
      addStep();
    } else if (button.hasAttribute("data-remove-step") && rows().length > 1) {
      event.preventDefault();  // the last row goes through the server, which can add one back
      rowOf(button).remove();
      renumber();
    } else if (button.hasAttribute("data-variable")) {
      var variable = button.getAttribute("data-variable").replace("<name>", "");
      var field = lastField || form.querySelector("[data-sms-text]");
      if (!field) return;
      var start = field.selectionStart || 0, end = field.selectionEnd || 0;
      var text = "{{" + variable + "}}";
      field.value = field.value.slice(0, start) + text + field.value.slice(end);
      var caret = start + (variable.slice(-1) === "." ? text.length - 2 : text.length);
      field.focus();
      field.setSelectionRange(caret, caret);
      field.dispatchEvent(new Event("input", {bubbles: true}));
    }
  });

  form.addEventListener("focusin", function (event) {
    if (event.target.matches("textarea, input[type=text]")) lastField = event.target;
  });

  form.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-channel-select]")) showChannel(rowOf(target));
    if (target.matches("select[data-catalogue]")) {
      /* The template's parameter form comes from the server, as "Use template" without JS. */
      var use = rowOf(target).querySelector("[data-use-template]");
      if (use) {
        rowOf(target).querySelector("[data-catalogue-parameters]").textContent = target.value
          ? "Parameters: " + target.selectedOptions[0].getAttribute("data-parameters") + " — loading the form…" : "";
        form.requestSubmit(use);
      }
    }
  });

  form.addEventListener("input", function (event) {
    if (event.target.matches("[data-sms-text]")) {
      var row = rowOf(event.target);
      if (row.getAttribute("data-channel") === "sms") countSegments(row);
    }
  });

  rows().forEach(showChannel);
  if (document.activeElement && document.activeElement.matches("input[type=text]")) lastField = document.activeElement;
  var summary = document.querySelector('[data-testid="error-summary"]');
  if (summary) summary.focus();
})();

/* --- secrets shown once, and the sign-in link (issue 23) ---------------------------------
   Users and API tokens pages: a new token or sign-in link sits in a read-only field the
   person can select and copy without JavaScript; here a Copy button appears beside it and
   a click in the field selects it whole. The sign-in page: a link /login#token=… (the
   fragment never reaches the server) fills the token form; the person presses the button
   (never submitted by itself, so a link crafted by someone else cannot quietly sign a
   person into another account). */
(function () {
  "use strict";
  function say(text) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    var close = box.parentNode.querySelector("[data-dismiss-toast]");
    if (close) close.hidden = false;
  }

  function copyFrom(input) {
    input.focus();
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(input.value).then(function () { return true; },
        function () { return document.execCommand("copy"); });
    }
    return Promise.resolve(document.execCommand("copy"));
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      copyFrom(input).then(function (ok) {
        say(ok ? "Copied to the clipboard." : "Select the text and copy it with Ctrl+C (⌘C).");
      });
    });
  });

  document.addEventListener("focusin", function (ev) {
    if (ev.target.matches && ev.target.matches("input[data-select-all]")) ev.target.select();
  });

  var match = /^#token=([^&]+)/.exec(window.location.hash);
  var tokenForm = document.getElementById("token-form");
  if (match && tokenForm) {
    if (window.history.replaceState) window.history.replaceState(null, "", window.location.pathname + window.location.search);
    tokenForm.querySelector('input[name="token"]').value = decodeURIComponent(match[1]);
    tokenForm.querySelector('button[type="submit"]').focus();
    say("Your sign-in link filled in the token: press Sign in with token.");
  }
})();
