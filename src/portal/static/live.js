// faxmta portal: refresh the state of faxes in flight without reloading.
// Every element with data-live="URL" is replaced by the "text" of the JSON
// at URL every two seconds until its "done" is true; the element's class
// follows "state". Without JavaScript the page still shows the state at
// load time (and a reload shows the new one).
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-live");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) { return; }
        el.textContent = s.text;
        el.className = "state " + s.state;
        if (s.done) {
          el.removeAttribute("data-live");
          if (el.hasAttribute("data-reload")) { window.location.reload(); }
          return;
        }
        window.setTimeout(function () { poll(el); }, 2000);
      })
      .catch(function () { window.setTimeout(function () { poll(el); }, 5000); });
  }
  document.querySelectorAll("[data-live]").forEach(function (el) { poll(el); });
})();
