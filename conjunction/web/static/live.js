// Pages that follow results as they come in, without a reload:
// - the event page while downstreams run: its audit trail from its JSON endpoint, until nothing
//   runs or changes for a few polls, with the "running for" times ticking meanwhile;
// - the home and project pages: each element marked `data-live-region` (with an id) is taken
//   from the same page fetched again, and replaced where it changed, while the tab is visible.
(function () {
  "use strict";
  var INTERVAL = 2000;
  var REGION_INTERVAL = 5000;
  var SETTLED_POLLS = 3;
  var idle = 0, last = null;
  var trail = document.getElementById("trail");

  function duration(seconds) {
    var whole = Math.round(seconds);
    var minutes = Math.floor(whole / 60), rest = whole % 60;
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    if (hours) { return hours + "h " + two(minutes) + "m"; }
    return minutes ? minutes + "m " + two(rest) + "s" : rest + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (element) {
      var since = Date.parse(element.getAttribute("data-since"));
      if (!isNaN(since)) { element.textContent = duration(Math.max(0, (now - since) / 1000)); }
    });
  }

  function poll() {
    var url = trail && trail.getAttribute("data-live");
    if (!url) { return; }
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (data) {
        if (data === null) { setTimeout(poll, INTERVAL * 2); return; }
        trail.innerHTML = data.html;
        tick();
        // A downstream that just passed starts its own a moment later (a queued job): the
        // trail is left alone only after it stayed still for a few polls.
        idle = data.running > 0 || data.html !== last ? 0 : idle + 1;
        last = data.html;
        if (idle < SETTLED_POLLS) { setTimeout(poll, INTERVAL); } else { trail.removeAttribute("data-live"); }
      })
      .catch(function () { setTimeout(poll, INTERVAL * 2); });
  }

  function refresh() {
    var regions = document.querySelectorAll("[data-live-region][id]");
    if (!regions.length) { return; }
    if (document.hidden) { setTimeout(refresh, REGION_INTERVAL); return; }
    fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html !== null) {
          var fresh = new DOMParser().parseFromString(html, "text/html");
          regions.forEach(function (region) {
            var now = fresh.getElementById(region.id);
            if (now && now.innerHTML !== region.innerHTML) { region.innerHTML = now.innerHTML; }
          });
        }
        setTimeout(refresh, html === null ? REGION_INTERVAL * 2 : REGION_INTERVAL);
      })
      .catch(function () { setTimeout(refresh, REGION_INTERVAL * 2); });
  }

  tick();
  setInterval(tick, 1000);
  setTimeout(poll, INTERVAL);
  setTimeout(refresh, REGION_INTERVAL);
})();
