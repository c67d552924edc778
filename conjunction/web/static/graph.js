// The dependency graph: it fills its box at first; zoom with the buttons or Ctrl + wheel, move
// by dragging. Without this script the graph is a scrollable picture at its natural size.
(function () {
  "use strict";
  var box = document.getElementById("graph-box");
  var svg = document.getElementById("graph");
  var tools = document.getElementById("graph-tools");
  if (!box || !svg || !tools) { return; }
  var width = parseFloat(svg.getAttribute("width"));
  var height = parseFloat(svg.getAttribute("height"));
  var scale = 1;

  function zoom(factor) {
    scale = Math.min(4, Math.max(0.02, scale * factor));
    svg.setAttribute("width", String(width * scale));
    svg.setAttribute("height", String(height * scale));
  }

  // The scale at which the whole graph fits the box's width and the window's height.
  function whole() {
    var room = window.innerHeight * 0.85;  // the box's max-height (conjunction.css)
    return Math.min(box.clientWidth / width, Math.max(room, 300) / height);
  }

  function fit() {
    scale = 1;
    zoom(whole());
  }

  tools.hidden = false;
  tools.addEventListener("click", function (event) {
    var value = event.target.getAttribute && event.target.getAttribute("data-zoom");
    if (value === "fit") { fit(); } else if (value) { zoom(parseFloat(value)); }
  });
  box.addEventListener("wheel", function (event) {
    if (!event.ctrlKey) { return; }
    event.preventDefault();
    zoom(event.deltaY < 0 ? 1.1 : 0.9);
  }, { passive: false });
  box.addEventListener("keydown", function (event) {
    if (event.key === "+" || event.key === "=") { zoom(1.25); }
    if (event.key === "-") { zoom(0.8); }
  });

  var drag = null;
  box.addEventListener("pointerdown", function (event) {
    if (event.target.closest("a")) { return; }
    drag = { x: event.clientX, y: event.clientY, left: box.scrollLeft, top: box.scrollTop };
  });
  window.addEventListener("pointermove", function (event) {
    if (!drag) { return; }
    box.scrollLeft = drag.left - (event.clientX - drag.x);
    box.scrollTop = drag.top - (event.clientY - drag.y);
  });
  window.addEventListener("pointerup", function () { drag = null; });
  // At first the graph fills its box: a small one grows up to LARGEST, a large one shrinks no
  // further than READABLE (its labels stay legible; it scrolls, and Fit shows all of it).
  var LARGEST = 1.8;
  var READABLE = 0.8;
  scale = 1;
  zoom(Math.min(Math.max(whole(), READABLE), LARGEST));
})();
