// Copy buttons ([data-copy] names the element whose text is copied) and confirmations
// ([data-confirm] holds the question). Served from our origin: the pages' CSP allows no inline script.
document.addEventListener("click", function (e) {
  var b = e.target.closest("[data-copy]");
  if (b) { navigator.clipboard && navigator.clipboard.writeText(document.getElementById(b.dataset.copy).textContent); b.textContent = "Copied"; }
  var c = e.target.closest("[data-confirm]");
  if (c && !confirm(c.dataset.confirm)) { e.preventDefault(); }
});
