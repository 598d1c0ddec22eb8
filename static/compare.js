// compare — the little that htmx does not do. No inline scripts (strict CSP).
(function () {
  "use strict";

  // Keep the "live" timer ticking between pane refreshes so a slow model never looks frozen.
  function tick() {
    document.querySelectorAll(".pane[aria-busy='true'] .timer, [data-ticking]").forEach(function (el) {
      var value = parseFloat(el.textContent);
      if (!isNaN(value)) { el.textContent = (value + 0.1).toFixed(1) + " s"; }
    });
  }
  setInterval(tick, 100);

  // Reference images: drag-and-drop onto the zone, previews of what is picked, and the
  // counts the server needs for its hints (files never leave the browser before submit).
  function countInputs(form) {
    var input = form.querySelector("input[name=references]");
    var files = input && input.files ? input.files.length : 0;
    var reused = form.querySelectorAll("input[data-reuse]:checked").length;
    var count = form.querySelector("[data-reference-count]");
    if (count) { count.value = String(files + reused); }
    var mask = form.querySelector("input[name=mask]");
    var hasMask = form.querySelector("[data-has-mask]");
    if (hasMask) { hasMask.value = mask && mask.files && mask.files.length ? "1" : ""; }
    var markup = form.querySelector("input[name=markup]");
    var hasMarkup = form.querySelector("[data-has-markup]");
    if (hasMarkup) { hasMarkup.value = markup && markup.files && markup.files.length ? "1" : ""; }
  }

  function showPicked(zone, input) {
    var list = zone.querySelector("[data-picked]");
    if (!list) { return; }
    list.querySelectorAll("[data-file-preview]").forEach(function (el) {
      URL.revokeObjectURL(el.querySelector("img").src);
      el.remove();
    });
    Array.prototype.forEach.call(input.files || [], function (file) {
      var item = document.createElement("li");
      item.className = "picked-item";
      item.setAttribute("data-file-preview", "");
      var img = document.createElement("img");
      img.alt = "";
      img.width = 64;
      img.height = 64;
      img.src = URL.createObjectURL(file);
      item.appendChild(img);
      item.appendChild(document.createTextNode(file.name));
      list.appendChild(item);
    });
  }

  function setUpDropzone(zone) {
    var input = zone.querySelector("input[type=file]");
    if (!input || zone.dataset.ready) { return; }
    zone.dataset.ready = "yes";
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      var merged = new DataTransfer();
      Array.prototype.forEach.call(input.files || [], function (f) { merged.items.add(f); });
      Array.prototype.forEach.call(event.dataTransfer.files || [], function (f) {
        if (/^image\//.test(f.type)) { merged.items.add(f); }
      });
      input.files = merged.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    input.addEventListener("change", function () { showPicked(zone, input); });
  }

  function setUp(root) {
    (root || document).querySelectorAll("[data-dropzone]").forEach(setUpDropzone);
  }

  // Keyboard on the run page: 1/2/… pick a side (its place from the left), 0 tie, x all bad,
  // n the next run (of the Judge queue). A vote swaps the verdict in place: nothing moves.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || !document.querySelector("[data-run-page]")) { return; }
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) { return; }
    var key = event.key.toLowerCase();
    if (key === "n") {
      var next = document.querySelector("[data-next-run]");
      if (next) { window.location.href = next.href; }
      return;
    }
    var button = document.querySelector('[data-vote-key="' + key + '"]');
    if (button) { event.preventDefault(); button.click(); }
  });

  // The side the viewer voted better stays marked (and stays where it was) after every vote.
  function markPick() {
    var pressed = document.querySelector("#votes button.vote[aria-pressed='true']");
    var value = pressed ? pressed.value : "";
    document.querySelectorAll(".pane[data-choice]").forEach(function (pane) {
      var picked = value !== "" && pane.getAttribute("data-choice") === value;
      pane.classList.toggle("is-pick", picked);
      var badge = pane.querySelector("[data-pick-badge]");
      if (badge) { badge.hidden = !picked; }
    });
  }
  document.addEventListener("htmx:afterSettle", markPick);

  // --- Live updates of the run page (compare/live.py) ---------------------------------
  // One poll per page (#live-poll, htmx `every 100ms`) sends the stamps of every part the
  // page shows; the server answers 204/286 (nothing new) or the changed parts out of band.
  // Every other request of the page sends the stamps too (X-Live-Since), so its answer
  // can bring the parts it changed. No poll while the tab is hidden, while another request
  // of the page is on its way (its answer is newer), or for a while after a failed poll.
  var live = { busy: 0, busySince: 0, lastAction: 0, pollSent: 0, failures: 0, pausedUntil: 0 };

  function stamps() {
    return Array.prototype.map.call(document.querySelectorAll("[data-run-page] [data-live]"), function (el) {
      return el.getAttribute("data-live");
    }).join(",");
  }

  function isPoll(elt) { return elt && elt.hasAttribute && elt.hasAttribute("data-live-poll"); }

  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (isPoll(elt)) {
      var now = Date.now();
      var stuck = live.busy > 0 && now - live.busySince > 15000;
      if (document.hidden || now < live.pausedUntil || (live.busy > 0 && !stuck)) {
        event.preventDefault();
        return;
      }
      if (stuck) { live.busy = 0; }
      live.pollSent = now;
      event.detail.parameters.since = stamps();
    } else if (elt && elt.closest && elt.closest("[data-run-page]")) {
      event.detail.headers["X-Live-Since"] = stamps();
    }
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (isPoll(elt) || !(elt.closest && elt.closest("[data-run-page]"))) { return; }
    // Hold the poll: an answer it brings now would be older than this request's.
    live.busy += 1;
    live.busySince = live.lastAction = Date.now();
    if (event.detail.xhr) { event.detail.xhr.liveHold = true; }  // its element may be swapped away
  });

  // A poll answer from before the page's last request is dropped: the next poll brings it anew.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (isPoll(event.detail.elt) && (live.busy > 0 || live.lastAction >= live.pollSent)) {
      event.detail.shouldSwap = false;
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (isPoll(elt)) {
      if (event.detail.successful || (event.detail.xhr && event.detail.xhr.status === 286)) {
        live.failures = 0;
      } else if (event.detail.xhr && event.detail.xhr.status !== 0) {
        // The server answered an error: wait longer each time, up to half a minute.
        live.failures += 1;
        live.pausedUntil = Date.now() + Math.min(30000, 500 * Math.pow(2, live.failures));
      }
    } else if (event.detail.xhr && event.detail.xhr.liveHold && live.busy > 0) {
      event.detail.xhr.liveHold = false;
      live.busy -= 1;
    }
  });

  document.addEventListener("htmx:sendError", function (event) {
    if (!isPoll(event.detail.elt)) { return; }
    live.failures += 1;  // the server is unreachable: back off too
    live.pausedUntil = Date.now() + Math.min(30000, 500 * Math.pow(2, live.failures));
  });

  // A note being edited in place is never swapped away by the poll; it takes the new
  // stamp, and its Save or Cancel brings the list anew.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "note-list" && target.querySelector("[data-note-editing]")) {
      event.detail.shouldSwap = false;
      var fresh = event.detail.fragment && event.detail.fragment.firstElementChild;
      if (fresh && fresh.getAttribute("data-live")) { target.setAttribute("data-live", fresh.getAttribute("data-live")); }
    }
  });

  // A disclosure (<details> with an id: the fairness ledger, check details) stays as the
  // person left it when the live poll redraws its part: without this, a side finishing
  // closed the ledger someone had just opened.
  // Only the person's own clicks count (Enter and Space on a summary click it too): a part
  // drawn open by the server (the ledger with warnings) must not overrule them.
  var disclosures = {};
  document.addEventListener("click", function (event) {
    var summary = event.target.closest && event.target.closest("summary");
    var el = summary && summary.parentElement;
    if (el && el.tagName === "DETAILS" && el.id && summary === el.querySelector("summary")) {
      disclosures[el.id] = !el.open;  // the click toggles it after this
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    Object.keys(disclosures).forEach(function (id) {
      var el = document.getElementById(id);
      if (el && el.tagName === "DETAILS" && el.open !== disclosures[id]) { el.open = disclosures[id]; }
    });
  });

  // Escape leaves a note edited in place, as its Cancel does.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.closest) { return; }
    var editing = event.target.closest("[data-note-editing]");
    var cancel = editing && editing.querySelector("[data-note-cancel]");
    if (cancel) { event.preventDefault(); cancel.click(); }
  });

  // Focus stays where it was after every swap. htmx itself finds a focused element again
  // by its id; one without an id (a vote button, a link) is found by what it is, inside
  // the nearest part with an id; if it is gone, that part (or what replaced it) takes focus.
  var focusBefore = null;

  function describe(el) {
    if (el.id) { return "#" + CSS.escape(el.id); }
    var tag = el.tagName.toLowerCase();
    // A disclosure's summary: the first one inside the part with an id (the ledger's own).
    if (tag === "summary") { return "summary"; }
    var attrs = ["name", "value", "href", "data-mode", "data-vote-key"];
    for (var i = 0; i < attrs.length; i++) {
      var value = el.getAttribute(attrs[i]);
      if (value !== null && value !== "") {
        var selector = tag + "[" + attrs[i] + '="' + CSS.escape(value) + '"]';
        if (attrs[i] === "name" && el.hasAttribute("value")) {
          selector += '[value="' + CSS.escape(el.getAttribute("value")) + '"]';
        }
        return selector;
      }
    }
    return null;
  }

  function rememberFocus() {
    var el = document.activeElement;
    if (!el || el === document.body) { focusBefore = null; return; }
    var holder = el.parentElement && el.parentElement.closest("[id]");
    focusBefore = holder ? { holder: holder.id, selector: describe(el), text: el.textContent, at: Date.now() } : null;
  }

  function restoreFocus() {
    var memo = focusBefore;
    if (!memo) { return; }
    if (Date.now() - memo.at > 2000) { focusBefore = null; return; }
    // Still focused: another request's swap settled first (a live poll beside a click), so
    // keep the memo for the swap that takes the focused element away.
    if (document.activeElement && document.activeElement !== document.body) { return; }
    focusBefore = null;
    var holder = document.getElementById(memo.holder);
    if (!holder) { return; }
    var found = memo.selector ? holder.querySelector(memo.selector) : null;
    if (!found) {
      found = Array.prototype.find.call(holder.querySelectorAll("button, a[href]"), function (el) {
        return el.textContent === memo.text;
      });
    }
    if (!found) {
      found = holder;
      if (!holder.hasAttribute("tabindex")) { holder.setAttribute("tabindex", "-1"); }
    }
    found.focus({ preventScroll: true });
  }

  document.addEventListener("htmx:beforeSwap", function (event) { if (event.detail.shouldSwap) { rememberFocus(); } });
  document.addEventListener("htmx:oobBeforeSwap", function () { if (!focusBefore) { rememberFocus(); } });
  document.addEventListener("htmx:afterSettle", restoreFocus);

  document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  // Count before htmx reads the form (capture phase runs before the bubbling handlers).
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form.run-form");
    if (form) { countInputs(form); }
  }, true);
})();
