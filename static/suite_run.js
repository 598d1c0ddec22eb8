// The suite run page (templates/suite_run.html): keep "Elapsed" ticking between the poll's
// answers. The poll answers 204 (nothing drawn) while no generation changes, so the clock
// counts on here from the seconds the server last drew (data-elapsed), as m:ss or h:mm:ss.
(function () {
  "use strict";

  function format(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    var ss = (s < 10 ? "0" : "") + s;
    return h ? h + ":" + (m < 10 ? "0" : "") + m + ":" + ss : m + ":" + ss;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-elapsed]").forEach(function (el) {
      if (el.elapsedFrom === undefined) {  // drawn since the last tick: start from the server's count
        var drawn = parseFloat(el.getAttribute("data-elapsed"));
        if (isNaN(drawn)) { return; }
        el.elapsedFrom = now - drawn * 1000;
      }
      el.textContent = format(Math.max(0, Math.floor((now - el.elapsedFrom) / 1000)));
    });
  }
  setInterval(tick, 1000);
})();
