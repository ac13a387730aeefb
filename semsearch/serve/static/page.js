// semsearch's search page, on top of the server-rendered HTML (which works without this):
// results update as you type (the server renders them: /?...&fragment=1), the URL follows,
// and the keyboard moves between the box and the results. No framework, no build step.
(function () {
  "use strict";
  var form = document.getElementById("search");
  var box = document.getElementById("q");
  var results = document.getElementById("results");
  if (!form || !box) return;
  if (box.hasAttribute("autofocus")) {
    box.focus();
    var end = box.value.length;
    box.setSelectionRange(end, end);
  }
  if (!results) return; // a passage's page: the form is a plain GET to /

  var DELAY = 250; // ms after the last keystroke
  var timer = 0;
  var sent = 0; // the number of the newest request
  var shown = 0; // the number of the request whose answer is on screen
  var answered = 0; // answers received, shown or not (data-answers, for tests)

  function params() {
    var p = new URLSearchParams(new FormData(form));
    var out = new URLSearchParams();
    p.forEach(function (value, key) {
      if (value && !(key === "mode" && value === "hybrid")) out.append(key, value);
    });
    return out;
  }

  function run() {
    clearTimeout(timer);
    var p = params();
    var address = p.toString() ? "/?" + p.toString() : "/";
    var mine = ++sent;
    p.set("fragment", "1");
    fetch("/?" + p.toString(), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.status === 401) {
          location.reload(); // the token form
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        results.setAttribute("data-answers", String(++answered));
        if (html === null || mine < shown) return; // an older answer, after a newer one
        shown = mine;
        results.innerHTML = html;
        history.replaceState(null, "", address);
        var q = box.value.trim();
        document.title = q ? q + " — semsearch" : "semsearch";
      })
      .catch(function () {
        if (mine < shown) return;
        shown = mine;
        results.innerHTML = '<p class="error" role="alert">The server did not answer.</p>';
      });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(run, DELAY);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", function (event) {
    if (event.target !== box) later();
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    run();
  });

  function links() {
    return Array.prototype.slice.call(results.querySelectorAll("a.hit-link"));
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    var here = document.activeElement;
    if (event.key === "Escape") {
      if (here !== box) {
        event.preventDefault();
        box.focus();
        box.select();
      }
      return;
    }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    var all = links();
    var at = all.indexOf(here);
    if (here !== box && at < 0) return; // arrows keep their meaning elsewhere (select, dates)
    if (event.key === "ArrowDown") {
      if (at + 1 < all.length) {
        event.preventDefault();
        all[at + 1].focus();
      }
    } else if (at >= 0) {
      event.preventDefault();
      if (at === 0) box.focus();
      else all[at - 1].focus();
    }
  });
})();
