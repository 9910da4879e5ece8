// The live part of a task's page (#live) refreshes itself while the work is open: it fetches
// the same HTML fragment the server renders into the page, and swaps it in unless the person is
// typing in it. Served from our origin (the CSP allows no inline script); without JavaScript a
// reload shows the same.
(function () {
  var live = document.getElementById("live");
  if (!live || !live.dataset.liveUrl) { return; }
  var last = live.innerHTML;
  function open() { var root = live.firstElementChild; return root && root.dataset.open === "true"; }
  function typing() {
    var fields = live.querySelectorAll("textarea, input:not([type=hidden]), select");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i] === document.activeElement || (fields[i].value && fields[i].tagName !== "SELECT")) { return true; }
    }
    return false;
  }
  function tick() {
    if (!open()) { return; }
    fetch(live.dataset.liveUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && html !== last && !typing()) { live.innerHTML = html; last = html; }
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, 2000); });
  }
  setTimeout(tick, 2000);
})();
