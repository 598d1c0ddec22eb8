// compare — the compare stage: every side at one scale with zoom and pan kept in step,
// swipe, onion skin, difference, blink, a loupe, and a full-screen viewer.
// Panzoom (static/vendor/panzoom-*.min.js) handles pointer, wheel and pinch; the rest is
// here. Strict CSP: no inline script or style; styles are set through element.style only.
(function () {
  "use strict";
  if (typeof window.Panzoom !== "function") { return; }

  var OVERLAY = { swipe: true, onion: true, diff: true, blink: true };
  var MODE_KEYS = { s: "side", w: "swipe", o: "onion", d: "diff" };
  var MIN_SCALE = 0.02;
  var MAX_SCALE = 32;
  var KEY_STEP = 1.25;       // + and − zoom by this factor
  var LOUPE_RADIUS = 90;     // px, half the loupe's size in stage.css
  var DIFF_MAX_PIXELS = 4096 * 4096;

  function stored(key, fallback) {
    try {
      var value = window.localStorage.getItem("compare.stage." + key);
      return value === null ? fallback : value;
    } catch (e) { return fallback; }
  }
  function store(key, value) {
    try { window.localStorage.setItem("compare.stage." + key, String(value)); } catch (e) { /* private mode */ }
  }
  function clamp(value, low, high) { return Math.min(high, Math.max(low, value)); }
  function number(text, fallback, low, high) {
    var value = parseFloat(text);
    return isNaN(value) ? fallback : clamp(value, low, high);
  }
  function percent(scale) {
    var p = scale * 100;
    return (p >= 10 ? String(Math.round(p)) : p.toFixed(1)) + " %";
  }
  function all(root, selector) { return Array.prototype.slice.call(root.querySelectorAll(selector)); }
  function make(tag, className, parent) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (parent) { parent.appendChild(el); }
    return el;
  }
  function decoded(img) {
    if (img.complete && img.naturalWidth) { return Promise.resolve(); }
    return new Promise(function (resolve, reject) {
      img.addEventListener("load", function () { resolve(); }, { once: true });
      img.addEventListener("error", function () { reject(new Error("image")); }, { once: true });
    });
  }

  // ---------------------------------------------------------------------------------
  // Zoomer: one transform shared by several frames. Every viewport gets its own Panzoom
  // (pointer, wheel and pinch there); whichever one moves, every frame follows. Panzoom's
  // transform is scale(s) translate(x, y) about the frame's centre, the frame sitting at
  // its viewport's top-left corner; `view` and `center` convert to and from "this image
  // point in the middle of the viewport".
  function Zoomer(onChange, centred) {
    this.centred = !!centred;  // fit in the middle (the viewer) rather than on the top edge
    this.items = [];
    this.frames = [];
    this.state = { scale: 1, x: 0, y: 0 };
    this.size = { w: 1, h: 1 };
    this.fitted = true;
    this.onChange = onChange;
  }

  Zoomer.prototype.attach = function (viewports, frames, size) {
    var self = this;
    this.items = this.items.filter(function (item) {
      var keep = viewports.indexOf(item.viewport) >= 0 && item.frame.parentNode === item.viewport;
      if (!keep) { item.pz.destroy(); }
      return keep;
    });
    viewports.forEach(function (viewport) {
      if (self.items.some(function (item) { return item.viewport === viewport; })) { return; }
      self.items.push(self.bind(viewport, viewport.querySelector(":scope > .stage-frame")));
    });
    this.frames = frames;
    this.size = size;
    this.write();
  };

  Zoomer.prototype.bind = function (viewport, frame) {
    var self = this;
    var s = this.state;
    var pz = window.Panzoom(frame, {
      canvas: true, cursor: "grab", minScale: MIN_SCALE, maxScale: MAX_SCALE, step: 0.45,
      startScale: s.scale, startX: s.x, startY: s.y, excludeClass: "stage-exclude",
      setTransform: function () { /* the Zoomer writes every frame itself */ }
    });
    pz.pan(s.x, s.y, { animate: false, silent: true, force: true });
    var item = { viewport: viewport, frame: frame, pz: pz };
    frame.addEventListener("panzoomchange", function () {
      // Only the instance the user is moving leads; Panzoom's own start-up events do not.
      if (self.active !== item) { return; }
      var pan = pz.getPan();
      self.state = { scale: pz.getScale(), x: pan.x, y: pan.y };
      self.write();
    });
    frame.addEventListener("panzoomstart", function () { self.fitted = false; });
    // Before Panzoom reads its own state, give it the shared one (another side may have moved).
    viewport.addEventListener("pointerdown", function () { self.active = item; self.sync(item); }, true);
    viewport.addEventListener("wheel", function (event) {
      if (!self.items.some(function (i) { return i === item; })) { return; }
      self.active = item;
      self.sync(item);
      self.fitted = false;
      pz.zoomWithWheel(event);
    }, { passive: false });
    return item;
  };

  Zoomer.prototype.sync = function (item) {
    var s = this.state;
    var pan = item.pz.getPan();
    if (item.pz.getScale() !== s.scale) { item.pz.zoom(s.scale, { animate: false, silent: true, force: true }); }
    if (pan.x !== s.x || pan.y !== s.y) { item.pz.pan(s.x, s.y, { animate: false, silent: true, force: true }); }
  };

  Zoomer.prototype.write = function () {
    var s = this.state;
    var transform = "scale(" + s.scale + ") translate(" + s.x + "px, " + s.y + "px)";
    var crisp = pixelated(s.scale);
    this.frames.forEach(function (frame) {
      frame.style.transform = transform;
      frame.classList.toggle("is-pixelated", crisp);
    });
    this.onChange(s);
  };

  Zoomer.prototype.box = function () {
    var viewport = this.items.length ? this.items[0].viewport : null;
    if (!viewport || !viewport.clientWidth || !viewport.clientHeight) { return null; }
    return { w: viewport.clientWidth, h: viewport.clientHeight };
  };

  Zoomer.prototype.center = function () {
    var b = this.box();
    var s = this.state;
    var w = this.size.w;
    var h = this.size.h;
    if (!b) { return { x: w / 2, y: h / 2 }; }
    return { x: (b.w / 2 - w / 2) / s.scale + w / 2 - s.x, y: (b.h / 2 - h / 2) / s.scale + h / 2 - s.y };
  };

  Zoomer.prototype.view = function (scale, cx, cy) {
    var b = this.box();
    if (!b) { return; }
    var w = this.size.w;
    var h = this.size.h;
    scale = clamp(scale, MIN_SCALE, MAX_SCALE);
    this.active = null;  // a late event from the last pointer must not undo this
    this.state = { scale: scale, x: (b.w / 2 - w / 2) / scale - cx + w / 2, y: (b.h / 2 - h / 2) / scale - cy + h / 2 };
    this.write();
  };

  Zoomer.prototype.fitScale = function () {
    var b = this.box();
    return b ? Math.min(1, b.w / this.size.w, b.h / this.size.h) : 1;  // never upscale to fit
  };

  Zoomer.prototype.fit = function () {
    var b = this.box();
    if (!b) { return; }
    var scale = this.fitScale();
    this.fitted = true;
    // Centred across, top edge on the viewport's top edge: every side starts on one line.
    this.view(scale, this.size.w / 2, this.centred ? this.size.h / 2 : b.h / 2 / scale);
  };

  Zoomer.prototype.zoomBy = function (factor) {
    var c = this.center();
    this.fitted = false;
    this.view(this.state.scale * factor, c.x, c.y);
  };

  Zoomer.prototype.actual = function () {
    var c = this.center();
    this.fitted = false;
    this.view(1, c.x, c.y);
  };

  // Where we are, independent of frame size: to keep the spot when the mode or image changes.
  Zoomer.prototype.spot = function () {
    if (this.fitted || !this.box()) { return null; }
    var c = this.center();
    return { scale: this.state.scale, u: c.x / this.size.w, v: c.y / this.size.h };
  };

  Zoomer.prototype.restore = function (spot) {
    if (!spot) { this.fit(); return; }
    this.fitted = false;
    this.view(spot.scale, spot.u * this.size.w, spot.v * this.size.h);
  };

  function pixelated(scale) {
    // Crisp pixels once an image pixel covers more than one device pixel.
    return scale > 0.999 && scale * (window.devicePixelRatio || 1) > 1.001;
  }

  // ---------------------------------------------------------------------------------
  // Stage: the sides of one run (or of any two images), the toolbar and the overlay view.
  function Stage(root) {
    var self = this;
    this.root = root;
    this.tools = root.querySelector("[data-stage-tools]");
    this.overlay = root.querySelector("[data-stage-overlay]");
    this.blind = root.hasAttribute("data-blind");  // read again on every refresh: see readBlind
    this.mode = stored("mode", "side");
    if (this.mode !== "side" && !OVERLAY[this.mode]) { this.mode = "side"; }
    this.loupe = stored("loupe", "0") === "1";
    this.swipe = number(stored("swipe", "0.5"), 0.5, 0, 1);
    this.onion = number(stored("onion", "0.5"), 0.5, 0, 1);
    this.gain = number(stored("gain", "1"), 1, 1, 16);
    this.flipped = false;
    this.selected = {};
    this.pair = [0, 1];
    this.sides = [];
    this.view = null;
    this.zoomer = new Zoomer(function (state) { self.changed(state); });
    root.classList.add("stage-on");
    var dialog = root.querySelector("[data-viewer]");
    this.viewer = dialog ? new Viewer(dialog, this) : null;
    this.refresh();
  }

  Stage.prototype.collect = function () {
    var self = this;
    return all(this.root, ".pane").map(function (pane) {
      var viewport = pane.querySelector("[data-stage-viewport]");
      var figures = viewport ? all(viewport, "[data-stage-image]") : [];
      var index = clamp(self.selected[pane.id] || 0, 0, Math.max(0, figures.length - 1));
      var heading = pane.querySelector(".pane-head h2");
      var side = { pane: pane, viewport: viewport, figures: figures, index: index,
        name: heading ? heading.textContent.replace(/\s+/g, " ").trim() : "" };
      if (figures.length) { Object.assign(side, imageOf(figures[index])); }
      return side;
    });
  };

  function imageOf(figure) {
    var img = figure.querySelector("img");
    return { figure: figure, img: img, src: img.getAttribute("src"), alpha: figure.classList.contains("alpha"),
      w: parseInt(figure.dataset.width, 10) || img.naturalWidth || 1, h: parseInt(figure.dataset.height, 10) || img.naturalHeight || 1 };
  }

  Stage.prototype.effectiveMode = function () {
    return OVERLAY[this.mode] && this.imageSides.length < 2 ? "side" : this.mode;
  };

  // Blind until this viewer votes: a vote (or "show the names") swaps the panes in by htmx,
  // without a reload, so the wording of the notes follows the panes, each marked data-blind
  // while the names are hidden; the stage's own attribute is kept in step.
  Stage.prototype.readBlind = function () {
    var panes = all(this.root, ".pane");
    this.blind = panes.length ? panes.some(function (pane) { return pane.hasAttribute("data-blind"); })
      : this.root.hasAttribute("data-blind");
    this.root.toggleAttribute("data-blind", this.blind);
  };

  Stage.prototype.refresh = function () {
    // Keep the spot looked at (a pane swapped in by htmx must not reset the zoom).
    var spot = this.zoomer.fitted ? null : this.zoomer.spot() || this.view;
    this.readBlind();
    this.sides = this.collect();
    this.imageSides = this.sides.filter(function (side) { return side.figures.length > 0; });
    this.tools.hidden = this.imageSides.length === 0;
    if (!this.imageSides.length) {
      this.overlay.hidden = true;
      this.root.classList.remove("stage-overlaid");
      return;
    }
    if (this.pair[0] >= this.imageSides.length || this.pair[1] >= this.imageSides.length || this.pair[0] === this.pair[1]) {
      this.pair = [0, Math.min(1, this.imageSides.length - 1)];
    }
    var mode = this.effectiveMode();
    this.updateTools(mode);
    var frameW = Math.max.apply(null, this.imageSides.map(function (s) { return s.w; }));
    var frameH = Math.max.apply(null, this.imageSides.map(function (s) { return s.h; }));
    this.imageSides.forEach(function (side) { placeSide(side, frameW, frameH); });
    this.root.classList.toggle("stage-overlaid", !!OVERLAY[mode]);
    this.overlay.hidden = !OVERLAY[mode];
    var size;
    if (OVERLAY[mode]) {
      size = this.buildOverlay(mode);
      this.layout(this.overlay, size, false);
      this.zoomer.attach([this.overlay], all(this.overlay, ".stage-frame"), size);
    } else {
      size = { w: frameW, h: frameH };
      this.note(this.sameScaleNote());
      this.layout(this.imageSides[0].viewport, size, true);
      this.zoomer.attach(this.imageSides.map(function (s) { return s.viewport; }),
        this.imageSides.map(function (s) { return s.frame; }), size);
    }
    this.zoomer.restore(spot);
    if (OVERLAY[mode]) { this.applyOverlay(mode); }
    this.hideLoupe();
  };

  function placeSide(side, frameW, frameH) {
    var frame = side.viewport.querySelector(":scope > .stage-frame");
    if (!frame) {
      frame = make("div", "stage-frame");
      side.figures.forEach(function (figure) { frame.appendChild(figure); });
      side.viewport.appendChild(frame);
    }
    side.frame = frame;
    frame.style.width = frameW + "px";
    frame.style.height = frameH + "px";
    side.figures.forEach(function (figure, i) {
      var on = i === side.index;
      figure.classList.toggle("is-selected", on);
      if (!on) { return; }
      // One scale for every side: an image pixel is the same size on screen everywhere.
      figure.style.left = (frameW - side.w) / 2 + "px";
      figure.style.top = "0px";
      figure.style.width = side.w + "px";
      figure.style.height = side.h + "px";
    });
    side.offsetX = (frameW - side.w) / 2;
    var caption = side.pane.querySelector("[data-stage-caption]");
    var source = side.figure.querySelector("figcaption");
    if (caption && source) {
      caption.replaceChildren();
      Array.prototype.forEach.call(source.childNodes, function (node) { caption.appendChild(node.cloneNode(true)); });
      caption.hidden = false;
    }
    all(side.pane, "[data-stage-select]").forEach(function (link) {
      link.setAttribute("aria-current", parseInt(link.dataset.stageSelect, 10) === side.index ? "true" : "false");
    });
  }

  // The viewport is as tall as the window allows with the verdict bar still in view,
  // and no taller than the images need.
  // Worked out again only when the window, the mode or the frame changes, or when the
  // verdict bar would cover the stage: a vote or a reveal swapping fragments around the
  // stage must not resize it, so no side moves when the names appear.
  Stage.prototype.layout = function (viewport, size, withStrip) {
    var width = viewport.clientWidth;
    if (!width) { return; }
    var bar = document.querySelector(".verdict-bar");
    var key = [this.effectiveMode(), size.w, size.h, width, window.innerWidth, window.innerHeight].join(" ");
    var rect = viewport.getBoundingClientRect();
    var covered = bar && rect.bottom > bar.getBoundingClientRect().top + 1 && rect.bottom <= window.innerHeight;
    if (key === this.layoutKey && !covered) { return; }
    this.layoutKey = key;
    var top = rect.top + window.scrollY;
    var below = bar ? bar.offsetHeight + 12 : 12;
    if (withStrip) {
      // The strip of a side's images and the caption of the compared one stay in view too.
      below += Math.max.apply(null, this.imageSides.map(function (side) {
        return all(side.pane, ".stage-strip, [data-stage-caption]").reduce(function (sum, el) {
          return sum + el.offsetHeight;
        }, 0);
      }).concat([0]));
    }
    var room = window.innerHeight - top - below;
    if (room < 320) { room = Math.max(320, window.innerHeight - below - 160); }  // a tall header: fit once scrolled to
    var need = size.h * Math.min(1, width / size.w);
    this.root.style.setProperty("--stage-h", Math.floor(Math.max(200, Math.min(room, need))) + "px");
  };

  Stage.prototype.sameScaleNote = function () {
    var sizes = this.imageSides.map(function (s) { return s.w + "×" + s.h; });
    var differ = sizes.some(function (size) { return size !== sizes[0]; });
    if (!differ) { return ""; }
    return this.blind ? "The sides differ in pixel size; they are shown at one scale."
      : "Shown at one scale: " + this.imageSides.map(function (s) { return s.name + " " + s.w + "×" + s.h; }).join(", ") + ".";
  };

  Stage.prototype.note = function (text) {
    var note = this.tools.querySelector("[data-stage-note]");
    if (note && note.textContent !== text) { note.textContent = text; }
  };

  Stage.prototype.updateTools = function (mode) {
    var self = this;
    var canOverlay = this.imageSides.length >= 2;
    all(this.tools, "[data-mode]").forEach(function (button) {
      var overlay = !!OVERLAY[button.dataset.mode];
      if (!button.dataset.title) { button.dataset.title = button.title; }
      button.disabled = overlay && !canOverlay;
      button.title = button.disabled ? "Needs two sides with images" : button.dataset.title;
      button.setAttribute("aria-pressed", button.dataset.mode === mode ? "true" : "false");
    });
    var loupe = this.tools.querySelector("[data-loupe]");
    if (loupe) { loupe.setAttribute("aria-pressed", this.loupe && mode === "side" ? "true" : "false"); }
    all(this.tools, "[data-for-mode]").forEach(function (el) { el.hidden = el.dataset.forMode !== mode; });
    var onion = this.tools.querySelector("[data-onion]");
    if (onion) { onion.value = String(Math.round(this.onion * 100)); }
    var gain = this.tools.querySelector("[data-gain]");
    if (gain) { gain.value = String(this.gain); }
    var pick = this.tools.querySelector("[data-overlay-pick]");
    if (pick) {
      pick.hidden = !(OVERLAY[mode] && this.imageSides.length > 2);
      all(pick, "select").forEach(function (select, which) {
        select.replaceChildren();
        self.imageSides.forEach(function (side, i) {
          var option = make("option", "", select);
          option.value = String(i);
          option.textContent = side.name;
        });
        select.value = String(self.pair[which]);
      });
    }
    if (OVERLAY[mode]) {
      var label = this.tools.querySelector("[data-for-mode='onion']");
      var b = this.imageSides[this.pair[1]];
      if (label && label.firstChild && b) { label.firstChild.textContent = "Opacity of " + b.name + " "; }
    }
  };

  // ---- overlay modes --------------------------------------------------------------
  Stage.prototype.buildOverlay = function () {
    var a = this.imageSides[this.pair[0]];
    var b = this.imageSides[this.pair[1]];
    var key = a.src + "|" + b.src;
    // Normalise to A's frame: B is stretched when the aspect ratios agree (within 3 %: 2720×1536 and 2752×1536 are both "16:9"),
    // otherwise fitted inside and centred, so the overlay never distorts a composition.
    var place = { x: 0, y: 0, w: a.w, h: a.h };
    var text = "";
    var ratio = (a.w / a.h) / (b.w / b.h);
    if (Math.abs(ratio - 1) >= 0.03) {
      var fit = Math.min(a.w / b.w, a.h / b.h);
      place = { w: b.w * fit, h: b.h * fit };
      place.x = (a.w - place.w) / 2;
      place.y = (a.h - place.h) / 2;
      text = this.blind ? b.name + " fitted into " + a.name + "’s frame to overlay: the aspect ratios differ."
        : b.name + " (" + b.w + "×" + b.h + ") fitted into " + a.name + "’s " + a.w + "×" + a.h + " frame to overlay: the aspect ratios differ.";
    } else if (a.w !== b.w || a.h !== b.h) {
      text = this.blind ? b.name + " scaled to " + a.name + "’s pixel size to overlay."
        : b.name + " scaled from " + b.w + "×" + b.h + " to " + a.w + "×" + a.h + " to overlay.";
    }
    this.overlayNote = text;
    if (this.overlayKey !== key) {
      this.overlayKey = key;
      this.diff = null;
      this.overlay.replaceChildren();
      var frameA = make("div", "stage-frame", this.overlay);
      this.layerA = frameA;
      this.imgA = overlayImage(frameA, a, { x: 0, y: 0, w: a.w, h: a.h });
      this.layerB = make("div", "stage-layer", this.overlay);
      this.imgB = overlayImage(make("div", "stage-frame", this.layerB), b, place);
      this.layerDiff = make("div", "stage-layer", this.overlay);
      var frameDiff = make("div", "stage-frame", this.layerDiff);
      this.canvas = make("canvas", "stage-diff", frameDiff);
      this.canvas.setAttribute("role", "img");
      this.canvas.setAttribute("aria-label", "Per-pixel difference between " + a.name + " and " + b.name);
      this.canvas.style.position = "absolute";
      this.canvas.style.left = "0px";
      this.canvas.style.top = "0px";
      this.canvas.style.width = a.w + "px";
      this.canvas.style.height = a.h + "px";
      [frameA, frameDiff, this.imgB.parentNode].forEach(function (frame) {
        frame.style.width = a.w + "px";
        frame.style.height = a.h + "px";
      });
      this.labelA = make("span", "stage-label a", this.overlay);
      this.labelB = make("span", "stage-label b", this.overlay);
      this.handle = this.makeHandle();
      this.busy = make("span", "stage-busy", this.overlay);
      this.busy.hidden = true;
      this.names = [a.name, b.name];
    }
    return { w: a.w, h: a.h };
  };

  function overlayImage(frame, side, place) {
    var img = make("img", side.alpha ? "alpha-img" : "", frame);
    img.alt = side.name;
    img.draggable = false;
    // Read back by the difference view's canvas: with images on S3 the address redirects to
    // the bucket, and a cross-origin image must be fetched with CORS or the canvas is tainted.
    img.crossOrigin = "anonymous";
    img.src = side.src;
    img.style.position = "absolute";
    img.style.left = place.x + "px";
    img.style.top = place.y + "px";
    img.style.width = place.w + "px";
    img.style.height = place.h + "px";
    return img;
  }

  Stage.prototype.makeHandle = function () {
    var self = this;
    var handle = make("div", "stage-swipe stage-exclude", this.overlay);
    handle.tabIndex = 0;
    handle.setAttribute("role", "slider");
    handle.setAttribute("aria-valuemin", "0");
    handle.setAttribute("aria-valuemax", "100");
    handle.setAttribute("aria-label", "Divider between the two images");
    make("span", "stage-swipe-knob", handle).textContent = "⇔";
    var dragging = null;
    handle.addEventListener("pointerdown", function (event) {
      dragging = event.pointerId;
      handle.setPointerCapture(event.pointerId);
      event.preventDefault();
      handle.focus();
    });
    handle.addEventListener("pointermove", function (event) {
      if (dragging !== event.pointerId) { return; }
      var rect = self.overlay.getBoundingClientRect();
      self.setSwipe((event.clientX - rect.left) / rect.width);
    });
    function stop(event) {
      if (dragging === event.pointerId) { dragging = null; store("swipe", self.swipe.toFixed(3)); }
    }
    handle.addEventListener("pointerup", stop);
    handle.addEventListener("pointercancel", stop);
    handle.addEventListener("keydown", function (event) {
      var step = event.shiftKey || event.key === "PageUp" || event.key === "PageDown" ? 0.1 : 0.02;
      var moves = { ArrowLeft: -step, ArrowDown: -step, PageDown: -step, ArrowRight: step, ArrowUp: step, PageUp: step };
      if (event.key in moves) { self.setSwipe(self.swipe + moves[event.key]); }
      else if (event.key === "Home") { self.setSwipe(0); }
      else if (event.key === "End") { self.setSwipe(1); }
      else { return; }
      event.preventDefault();
      event.stopPropagation();
      store("swipe", self.swipe.toFixed(3));
    });
    return handle;
  };

  Stage.prototype.setSwipe = function (fraction) {
    this.swipe = clamp(fraction, 0, 1);
    var width = this.overlay.clientWidth;
    var x = Math.round(this.swipe * width);
    this.layerB.style.clipPath = "inset(0 0 0 " + x + "px)";
    this.handle.style.left = x + "px";
    this.handle.setAttribute("aria-valuenow", String(Math.round(this.swipe * 100)));
    this.handle.setAttribute("aria-valuetext", Math.round(this.swipe * 100) + " % " + this.names[0] + ", the rest " + this.names[1]);
  };

  Stage.prototype.applyOverlay = function (mode) {
    var showB = mode === "swipe" || mode === "onion" || (mode === "blink" && this.flipped);
    this.layerB.hidden = !showB;
    this.layerB.style.clipPath = "";
    this.layerB.style.opacity = mode === "onion" ? String(this.onion) : "";
    this.layerDiff.hidden = mode !== "diff";
    this.handle.hidden = mode !== "swipe";
    this.labelA.hidden = mode === "blink" && this.flipped;
    this.labelB.hidden = mode === "diff" || (mode === "blink" && !this.flipped);
    this.labelA.textContent = this.names[0];
    this.labelB.textContent = mode === "onion" ? this.names[1] + " · " + Math.round(this.onion * 100) + " %" : this.names[1];
    if (mode === "diff") { this.labelA.textContent = "Difference: " + this.names[0] + " vs " + this.names[1]; }
    if (mode === "swipe") { this.setSwipe(this.swipe); }
    var state = this.tools.querySelector("[data-blink-state]");
    if (state) {
      state.textContent = "Showing " + this.names[this.flipped ? 1 : 0] + " (or hold the space bar)";
    }
    var note = this.overlayNote;
    if (mode === "diff") {
      this.drawDiff();
      if (this.diff && this.diff.summary) { note = (note ? note + " " : "") + this.diff.summary; }
    }
    this.note(note);
  };

  Stage.prototype.drawDiff = function () {
    var self = this;
    if (this.diff) {
      if (this.diff.raw) { this.paintDiff(); }
      return;
    }
    var key = this.overlayKey;
    this.diff = { pending: true };
    this.busy.textContent = "Computing the difference…";
    this.busy.hidden = false;
    Promise.all([decoded(this.imgA), decoded(this.imgB)]).then(function () {
      if (self.overlayKey !== key) { return; }
      self.diff = computeDiff(self.imgA, self.imgB, self.layerA);
      self.busy.hidden = true;
      self.paintDiff();
      if (self.effectiveMode() === "diff") { self.applyOverlay("diff"); }
    }).catch(function () {
      self.busy.textContent = "The images could not be read to compute a difference.";
      self.diff = { failed: true };
    });
  };

  // |A − B| per channel on premultiplied colour, plus the alpha difference: identical
  // pixels are black, whatever their transparency.
  function computeDiff(imgA, imgB, frameA) {
    var w = parseFloat(frameA.style.width);
    var h = parseFloat(frameA.style.height);
    var k = Math.min(1, Math.sqrt(DIFF_MAX_PIXELS / (w * h)));
    var cw = Math.max(1, Math.round(w * k));
    var ch = Math.max(1, Math.round(h * k));
    function pixels(img) {
      var canvas = make("canvas");
      canvas.width = cw;
      canvas.height = ch;
      var context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(img, parseFloat(img.style.left) * k, parseFloat(img.style.top) * k,
        parseFloat(img.style.width) * k, parseFloat(img.style.height) * k);
      return context.getImageData(0, 0, cw, ch).data;
    }
    var a = pixels(imgA);
    var b = pixels(imgB);
    var raw = new Uint8ClampedArray(a.length);
    var differing = 0;
    var largest = 0;
    for (var i = 0; i < a.length; i += 4) {
      var aa = a[i + 3];
      var ba = b[i + 3];
      var da = Math.abs(aa - ba);
      var any = da;
      for (var c = 0; c < 3; c++) {
        var d = Math.min(255, Math.abs((a[i + c] * aa - b[i + c] * ba) / 255) + da);
        raw[i + c] = d;
        if (d > any) { any = d; }
      }
      raw[i + 3] = 255;
      if (any > 0.5) { differing++; }
      if (any > largest) { largest = any; }
    }
    var share = differing / (cw * ch);
    var summary = differing === 0 ? "The two images are identical, pixel for pixel."
      : (share * 100).toFixed(share < 0.001 ? 3 : 1) + " % of pixels differ (largest difference " + Math.round(largest) + " of 255).";
    return { raw: raw, w: cw, h: ch, summary: summary };
  }

  Stage.prototype.paintDiff = function () {
    var diff = this.diff;
    var canvas = this.canvas;
    if (canvas.width !== diff.w || canvas.height !== diff.h) {
      canvas.width = diff.w;
      canvas.height = diff.h;
    }
    var context = canvas.getContext("2d");
    var out = context.createImageData(diff.w, diff.h);
    var gain = this.gain;
    var raw = diff.raw;
    var data = out.data;
    for (var i = 0; i < raw.length; i += 4) {
      data[i] = raw[i] * gain;
      data[i + 1] = raw[i + 1] * gain;
      data[i + 2] = raw[i + 2] * gain;
      data[i + 3] = 255;
    }
    context.putImageData(out, 0, 0);
  };

  // ---- state changes --------------------------------------------------------------
  Stage.prototype.changed = function (state) {
    var level = this.tools.querySelector("[data-zoom-level]");
    if (level) { level.textContent = percent(state.scale); }
    this.view = this.zoomer.spot();
    // A fitted stage lets a finger scroll the page; once zoomed, a finger pans the image.
    var touch = this.zoomer.fitted ? "pan-y" : "none";
    this.zoomer.items.forEach(function (item) {
      if (item.touch !== touch) { item.touch = touch; item.pz.setOptions({ touchAction: touch }); }
    });
  };

  Stage.prototype.setMode = function (mode) {
    if (mode !== "side" && !OVERLAY[mode]) { return; }
    if (OVERLAY[mode] && this.imageSides.length < 2) { return; }
    this.mode = mode;
    this.flipped = false;
    store("mode", mode);
    this.refresh();
  };

  // `t`: into blink mode (showing the first side), then flip on every press.
  Stage.prototype.flip = function () {
    if (this.effectiveMode() !== "blink") { this.setMode("blink"); return; }
    this.flipped = !this.flipped;
    this.applyOverlay("blink");
  };

  Stage.prototype.toggleLoupe = function () {
    this.loupe = !this.loupe;
    store("loupe", this.loupe ? "1" : "0");
    if (this.loupe && this.effectiveMode() !== "side") { this.setMode("side"); }
    this.updateTools(this.effectiveMode());
    this.hideLoupe();
  };

  Stage.prototype.select = function (pane, index) {
    this.selected[pane.id] = index;
    this.refresh();
  };

  // ---- loupe ----------------------------------------------------------------------
  Stage.prototype.moveLoupe = function (event, viewport) {
    if (!this.loupe || this.effectiveMode() !== "side") { return; }
    var rect = viewport.getBoundingClientRect();
    var x = event.clientX - rect.left;
    var y = event.clientY - rect.top;
    var s = this.zoomer.state;
    var size = this.zoomer.size;
    // The frame point under the pointer: the same point on every side.
    var px = (x - size.w / 2) / s.scale - s.x + size.w / 2;
    var py = (y - size.h / 2) / s.scale - s.y + size.h / 2;
    var zoom = Math.max(1, s.scale * 3);  // at least one image pixel per screen point
    this.imageSides.forEach(function (side) {
      var loupe = side.viewport.querySelector(":scope > .stage-loupe");
      if (!loupe) {
        loupe = make("div", "stage-loupe", side.viewport);
        make("img", "", loupe).alt = "";
      }
      var img = loupe.firstChild;
      if (img.getAttribute("src") !== side.src) { img.src = side.src; }
      loupe.hidden = false;
      loupe.style.left = x - LOUPE_RADIUS + "px";
      loupe.style.top = y - LOUPE_RADIUS + "px";
      img.style.width = side.w + "px";
      img.style.height = side.h + "px";
      img.style.transform = "translate(" + (LOUPE_RADIUS - (px - side.offsetX) * zoom) + "px, " +
        (LOUPE_RADIUS - py * zoom) + "px) scale(" + zoom + ")";
    });
  };

  Stage.prototype.hideLoupe = function () {
    all(this.root, ".stage-loupe").forEach(function (loupe) { loupe.hidden = true; });
  };

  // ---------------------------------------------------------------------------------
  // The full-screen viewer: one image at a time; arrows flip sides and images in place.
  function Viewer(dialog, stage) {
    var self = this;
    this.dialog = dialog;
    this.stage = stage;
    this.viewport = dialog.querySelector("[data-viewer-viewport]");
    this.frame = make("div", "stage-frame", this.viewport);
    this.img = make("img", "", this.frame);
    this.img.draggable = false;
    this.side = 0;
    this.index = 0;
    this.zoomer = new Zoomer(function (state) {
      var level = dialog.querySelector("[data-zoom-level]");
      if (level) { level.textContent = percent(state.scale); }
    }, true);
    dialog.addEventListener("keydown", function (event) { self.key(event); });
    dialog.addEventListener("close", function () {
      self.zoomer.attach([], [], self.zoomer.size);
      // Focus leaves the closed viewer at once (the browser may leave it on the hidden viewport
      // for a while, and the page's keys ignore a dialog): back to what opened it, else nowhere.
      var active = document.activeElement;
      if (active && dialog.contains(active)) {
        if (self.opener && self.opener !== document.body && document.contains(self.opener)) {
          self.opener.focus({ preventScroll: true });
        } else {
          active.blur();
        }
      }
    });
  }

  Viewer.prototype.open = function (sideIndex, imageIndex) {
    if (!this.stage.imageSides.length) { return; }
    if (!this.dialog.open) {
      this.opener = document.activeElement;
      this.dialog.showModal();
      this.viewport.focus({ preventScroll: true });  // keys work at once, no focus ring on a button
    }
    this.zoomer.attach([this.viewport], [this.frame], this.zoomer.size);
    this.show(sideIndex, imageIndex, true);
  };

  Viewer.prototype.show = function (sideIndex, imageIndex, fit) {
    var sides = this.stage.imageSides;
    var n = sides.length;
    this.side = ((sideIndex % n) + n) % n;
    var side = sides[this.side];
    var count = side.figures.length;
    this.index = ((imageIndex % count) + count) % count;
    var image = imageOf(side.figures[this.index]);
    var spot = fit ? null : this.zoomer.spot();
    this.img.src = image.src;
    this.img.alt = image.img.alt;
    this.img.className = image.alpha ? "alpha-img" : "";
    this.frame.style.width = image.w + "px";
    this.frame.style.height = image.h + "px";
    this.dialog.querySelector("[data-viewer-name]").textContent = side.name;
    var info = (count > 1 ? "image " + (this.index + 1) + " of " + count + " · " : "") + image.w + "×" + image.h +
      (n > 1 ? " · side " + (this.side + 1) + " of " + n : "");
    this.dialog.querySelector("[data-viewer-info]").textContent = info;
    this.dialog.querySelector("[data-viewer-original]").href = image.src;
    all(this.dialog, "[data-viewer-step='image']").forEach(function (b) { b.hidden = count < 2; });
    all(this.dialog, "[data-viewer-step='side']").forEach(function (b) { b.hidden = n < 2; });
    this.zoomer.size = { w: image.w, h: image.h };
    this.zoomer.restore(spot);
  };

  Viewer.prototype.step = function (what, delta) {
    if (what === "side") {
      var sides = this.stage.imageSides;
      var next = sides[(((this.side + delta) % sides.length) + sides.length) % sides.length];
      // Keep the image number when flipping sides: image 2 of A → image 2 of B.
      this.show(this.side + delta, Math.min(this.index, next.figures.length - 1), false);
    } else {
      this.show(this.side, this.index + delta, false);
    }
  };

  Viewer.prototype.key = function (event) {
    // The run page's own keys (votes, modes) must not act behind the dialog.
    event.stopPropagation();
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var t = event.target;
    if (t.closest && t.closest("input, select, textarea")) { return; }
    var actions = {
      ArrowLeft: ["side", -1], ArrowRight: ["side", 1], ArrowUp: ["image", -1], ArrowDown: ["image", 1]
    };
    if (event.key in actions) {
      this.step(actions[event.key][0], actions[event.key][1]);
    } else if (event.key === "+" || event.key === "=") {
      this.zoomer.zoomBy(KEY_STEP);
    } else if (event.key === "-" || event.key === "_") {
      this.zoomer.zoomBy(1 / KEY_STEP);
    } else if (event.key === "0" || event.key === "f") {
      this.zoomer.fit();
    } else if (event.key === "1" || event.key === "p") {
      this.zoomer.actual();
    } else {
      return;
    }
    event.preventDefault();
  };

  // ---------------------------------------------------------------------------------
  var stage = null;
  var pressed = null;  // where the last press on an image started: a drag is not a click
  var holding = false; // the space bar held down in blink mode

  function zoomerFor(el) {
    var dialog = el.closest("[data-viewer]");
    if (dialog) { return stage && stage.viewer ? stage.viewer.zoomer : null; }
    return stage ? stage.zoomer : null;
  }

  function zoomCommand(zoomer, what) {
    if (!zoomer) { return; }
    if (what === "in") { zoomer.zoomBy(KEY_STEP); }
    else if (what === "out") { zoomer.zoomBy(1 / KEY_STEP); }
    else if (what === "fit") { zoomer.fit(); }
    else if (what === "actual") { zoomer.actual(); }
  }

  function openViewerFrom(el) {
    if (!stage || !stage.viewer) { return false; }
    var pane = el.closest(".pane");
    var sideIndex = 0;
    var imageIndex = 0;
    if (pane) {
      sideIndex = stage.imageSides.findIndex(function (side) { return side.pane === pane; });
      if (sideIndex < 0) { return false; }
      var figure = el.closest("[data-stage-image]");
      var side = stage.imageSides[sideIndex];
      imageIndex = figure ? side.figures.indexOf(figure) : side.index;
    } else if (stage.effectiveMode() !== "side") {
      sideIndex = stage.pair[stage.effectiveMode() === "blink" && stage.flipped ? 1 : 0];
    }
    stage.viewer.open(sideIndex, Math.max(0, imageIndex));
    return true;
  }

  document.addEventListener("pointerdown", function (event) {
    pressed = { x: event.clientX, y: event.clientY };
  }, true);

  document.addEventListener("click", function (event) {
    if (!stage || !event.target.closest) { return; }
    var t = event.target;
    var el;
    if ((el = t.closest("[data-mode]")) && stage.root.contains(el)) {
      stage.setMode(el.dataset.mode);
    } else if ((el = t.closest("[data-flip]")) && stage.root.contains(el)) {
      stage.flip();
    } else if ((el = t.closest("[data-loupe]")) && stage.root.contains(el)) {
      stage.toggleLoupe();
    } else if ((el = t.closest("[data-zoom]"))) {
      zoomCommand(zoomerFor(el), el.dataset.zoom);
    } else if ((el = t.closest("[data-viewer-open]"))) {
      openViewerFrom(el);
    } else if ((el = t.closest("[data-viewer-close]"))) {
      el.closest("dialog").close();
    } else if ((el = t.closest("[data-viewer-step]")) && stage.viewer) {
      stage.viewer.step(el.dataset.viewerStep, parseInt(el.dataset.step, 10));
    } else if ((el = t.closest("[data-stage-select]")) && stage.root.contains(el)) {
      event.preventDefault();
      stage.select(el.closest(".pane"), parseInt(el.dataset.stageSelect, 10));
      return;
    } else if ((el = t.closest("[data-viewer-link]")) && stage.root.contains(el)) {
      event.preventDefault();
      var moved = pressed && Math.abs(event.clientX - pressed.x) + Math.abs(event.clientY - pressed.y) > 4;
      if (!moved) { openViewerFrom(el); }
      return;
    } else {
      return;
    }
  });

  document.addEventListener("input", function (event) {
    if (!stage || !stage.root.contains(event.target)) { return; }
    var t = event.target;
    if (t.matches("[data-onion]")) {
      stage.onion = clamp(parseInt(t.value, 10) / 100, 0, 1);
      store("onion", stage.onion.toFixed(2));
      stage.applyOverlay("onion");
    }
  });

  document.addEventListener("change", function (event) {
    if (!stage || !stage.root.contains(event.target)) { return; }
    var t = event.target;
    if (t.matches("[data-gain]")) {
      stage.gain = number(t.value, 1, 1, 16);
      store("gain", stage.gain);
      if (stage.diff && stage.diff.raw) { stage.paintDiff(); }
    } else if (t.matches("[data-overlay]")) {
      var which = t.dataset.overlay === "a" ? 0 : 1;
      var value = parseInt(t.value, 10);
      if (stage.pair[1 - which] === value) { stage.pair[1 - which] = stage.pair[which]; }
      stage.pair[which] = value;
      stage.refresh();
    }
  });

  document.addEventListener("pointermove", function (event) {
    if (!stage || !stage.loupe || event.pointerType === "touch") { return; }
    var viewport = event.target.closest && event.target.closest("[data-stage-viewport]");
    if (viewport && stage.root.contains(viewport)) { stage.moveLoupe(event, viewport); }
    else { stage.hideLoupe(); }
  });

  function typing(target) {
    return target.closest && target.closest("input, textarea, select, button, a, [contenteditable], dialog, [role=slider]");
  }

  document.addEventListener("keydown", function (event) {
    if (!stage || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (stage.viewer && stage.viewer.dialog.open) { return; }
    var key = event.key;
    if (key === " ") {
      if (stage.effectiveMode() !== "blink" || typing(event.target)) { return; }
      event.preventDefault();
      if (!event.repeat && !holding) { holding = true; stage.flip(); }
      return;
    }
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable], dialog")) { return; }
    var lower = key.length === 1 ? key.toLowerCase() : key;
    if (MODE_KEYS[lower]) { stage.setMode(MODE_KEYS[lower]); }
    else if (lower === "t") { stage.flip(); }
    else if (lower === "l") { stage.toggleLoupe(); }
    else if (key === "+" || key === "=") { stage.zoomer.zoomBy(KEY_STEP); }
    else if (key === "-" || key === "_") { stage.zoomer.zoomBy(1 / KEY_STEP); }
    else if (lower === "f") { stage.zoomer.fit(); }
    else if (lower === "p") { stage.zoomer.actual(); }
    else if (lower === "v") { openViewerFrom(document.body); }
    else { return; }
    event.preventDefault();
  });

  document.addEventListener("keyup", function (event) {
    if (event.key === " " && holding && stage) {
      holding = false;
      stage.flip();
    }
  });

  // The no-JavaScript full-size page: Escape goes back to the comparison.
  document.addEventListener("keydown", function (event) {
    var back = document.querySelector("[data-back-on-escape]");
    if (back && event.key === "Escape" && !document.querySelector("dialog[open]")) { window.location.href = back.href; }
  });

  var pending = false;
  function refreshSoon() {
    if (!stage || pending) { return; }
    pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      if (stage && document.contains(stage.root)) { stage.refresh(); }
      var viewer = stage && stage.viewer;
      if (viewer && viewer.dialog.open) { viewer.zoomer.restore(viewer.zoomer.spot()); }
    });
  }

  function start() {
    var root = document.querySelector("[data-stage]");
    if (root) { stage = new Stage(root); }
  }

  // Panes and the verdict are swapped in by htmx while a run progresses.
  document.addEventListener("htmx:load", refreshSoon);
  document.addEventListener("htmx:afterSettle", refreshSoon);  // out-of-band panes too (a reveal)
  window.addEventListener("resize", refreshSoon);
  // Images without width/height attributes, and fonts, change the layout once they load.
  window.addEventListener("load", refreshSoon);
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
  window.compareStage = function () { return stage; };
})();
