// Copy buttons ([data-copy] names the element whose text is copied) and confirmations
// ([data-confirm] holds the question). Served from our origin: the pages' CSP allows no inline script.
document.addEventListener("click", function (e) {
  var b = e.target.closest("[data-copy]");
  if (b) { navigator.clipboard && navigator.clipboard.writeText(document.getElementById(b.dataset.copy).textContent); b.textContent = "Copied"; }
  var c = e.target.closest("[data-confirm]");
  if (c && !confirm(c.dataset.confirm)) { e.preventDefault(); }
});
// Key scopes: a preset ticks its scopes; ticking a scope by hand switches to "Choose below".
document.addEventListener("change", function (e) {
  var t = e.target;
  if (t.name === "preset" && t.dataset.scopes !== undefined) {
    var chosen = t.dataset.scopes.split(" ");
    document.querySelectorAll("input[type=checkbox][name^='scope.']").forEach(function (box) {
      box.checked = chosen.indexOf(box.name.slice(6)) >= 0;
    });
  } else if (t.type === "checkbox" && t.name.indexOf("scope.") === 0) {
    var custom = document.querySelector("input[name=preset][value=custom]");
    if (custom) { custom.checked = true; }
  } else if (t.name === "expires_at" && t.value) {
    var date = document.querySelector("input[name=expiry][value=date]");
    if (date) { date.checked = true; }
  }
});
