// compare — on a phone (below 900 px, where the sides would otherwise stack) the sides of
// a run are tabs. static/phone.css lays the panes out in a row that scrolls sideways and
// snaps to one side; this adds the tab buttons above it: a tab scrolls to its side, a
// swipe selects the tab of the side in view, arrow keys move between tabs. From 900 px
// phone.css hides the tabs and the sides stand side by side. The labels follow the panes'
// headings, so they change when blind names appear; the side voted better gets a ✓.
// No inline script or style (strict CSP).
(function () {
  "use strict";

  var reduced = window.matchMedia("(prefers-reduced-motion: reduce)");

  function panesOf(row) {
    return Array.prototype.filter.call(row.children, function (el) { return el.classList.contains("pane"); });
  }

  function nameOf(pane, index) {
    var heading = pane.querySelector(".pane-head h2");
    var name = heading ? heading.textContent.replace(/\s+/g, " ").trim() : "";
    return name || "Side " + String.fromCharCode(65 + index);
  }

  // The side the viewer voted better shows its "Your pick" badge.
  function picked(pane) {
    var badge = pane.querySelector("[data-pick-badge]");
    return !!badge && !badge.hidden;
  }

  // The pane whose left edge is nearest the row's left edge: the side in view.
  function current(row) {
    var left = row.getBoundingClientRect().left;
    var best = 0;
    var distance = Infinity;
    panesOf(row).forEach(function (pane, index) {
      var d = Math.abs(pane.getBoundingClientRect().left - left);
      if (d < distance) { distance = d; best = index; }
    });
    return best;
  }

  function select(list, index) {
    Array.prototype.forEach.call(list.children, function (tab, i) {
      var on = i === index;
      if (tab.getAttribute("aria-selected") !== String(on)) { tab.setAttribute("aria-selected", String(on)); }
      tab.tabIndex = on ? 0 : -1;
    });
  }

  function show(row, index) {
    var pane = panesOf(row)[index];
    if (!pane) { return; }
    // Remembered until the row gets there: a pane swapped in by a live update while the row
    // scrolls can stop a smooth scroll half-way, and `sync` then scrolls on to this side.
    row.dataset.target = String(index);
    var left = pane.getBoundingClientRect().left - row.getBoundingClientRect().left + row.scrollLeft;
    row.scrollTo({ left: left, behavior: reduced.matches ? "auto" : "smooth" });
  }

  // Make or update the tab list in front of a row of panes.
  function sync(row) {
    // Slots still waiting for an image (the image picker) are not sides yet.
    var panes = panesOf(row).some(function (pane) { return !pane.classList.contains("pane-missing"); }) ? panesOf(row) : [];
    var list = row.previousElementSibling;
    var made = list && list.classList.contains("side-tabs");
    if (panes.length < 2) {  // one side is not a choice
      if (made) { list.remove(); }
      return;
    }
    if (!made) {
      list = document.createElement("div");
      list.className = "side-tabs";
      list.setAttribute("role", "tablist");
      list.setAttribute("aria-label", "Sides");
      row.parentNode.insertBefore(list, row);
      list.addEventListener("click", function (event) {
        var tab = event.target.closest("[role=tab]");
        if (!tab) { return; }
        var index = Array.prototype.indexOf.call(list.children, tab);
        select(list, index);
        show(row, index);
      });
      list.addEventListener("keydown", function (event) {
        var tabs = list.children;
        var index = Array.prototype.indexOf.call(tabs, document.activeElement);
        if (index < 0) { return; }
        var next = { ArrowLeft: index - 1, ArrowRight: index + 1, Home: 0, End: tabs.length - 1 }[event.key];
        if (next === undefined) { return; }
        event.preventDefault();
        next = (next + tabs.length) % tabs.length;
        tabs[next].focus();
        select(list, next);
        show(row, next);
      });
    }
    while (list.children.length > panes.length) { list.lastChild.remove(); }
    panes.forEach(function (pane, index) {
      var tab = list.children[index];
      if (!tab) {
        tab = document.createElement("button");
        tab.type = "button";
        tab.setAttribute("role", "tab");
        list.appendChild(tab);
      }
      if (!pane.id) { pane.id = "side-" + (index + 1); }
      tab.setAttribute("aria-controls", pane.id);
      var label = nameOf(pane, index) + (picked(pane) ? " ✓" : "");
      if (tab.textContent !== label) { tab.textContent = label; }
      tab.title = picked(pane) ? nameOf(pane, index) + " — your pick" : nameOf(pane, index);
    });
    var target = row.dataset.target ? Number(row.dataset.target) : -1;
    if (target >= 0 && target < panes.length && current(row) !== target) {
      select(list, target);
      show(row, target);
    } else {
      select(list, current(row));
    }
    if (!row.dataset.sideTabs) {
      row.dataset.sideTabs = "on";
      // A person's own swipe takes over from a tab's scroll.
      ["touchstart", "pointerdown", "wheel"].forEach(function (type) {
        row.addEventListener(type, function () { delete row.dataset.target; }, { passive: true });
      });
      var pending = false;
      row.addEventListener("scroll", function () {
        if (pending) { return; }
        pending = true;
        window.requestAnimationFrame(function () {
          pending = false;
          var at = current(row);
          if (row.dataset.target && Number(row.dataset.target) !== at) { return; }  // still on its way
          delete row.dataset.target;
          var tabs = row.previousElementSibling;
          if (tabs && tabs.classList.contains("side-tabs")) { select(tabs, at); }
        });
      }, { passive: true });
    }
  }

  function syncAll() {
    document.querySelectorAll(".panes").forEach(sync);
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", syncAll); }
  else { syncAll(); }
  // Panes are swapped in by htmx as a run progresses, and again when the names are revealed.
  document.addEventListener("htmx:afterSettle", syncAll);
})();
