// compare — the little that htmx does not do. No inline scripts (strict CSP).
(function () {
  "use strict";
  // Keep the "live" timer ticking between pane refreshes so a slow model never looks frozen.
  function tick() {
    document.querySelectorAll(".pane[aria-busy='true'] .timer").forEach(function (el) {
      var value = parseFloat(el.textContent);
      if (!isNaN(value)) { el.textContent = (value + 0.1).toFixed(1) + " s"; }
    });
  }
  setInterval(tick, 100);
})();
