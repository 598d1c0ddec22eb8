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

  document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  // Count before htmx reads the form (capture phase runs before the bubbling handlers).
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form.run-form");
    if (form) { countInputs(form); }
  }, true);
})();
