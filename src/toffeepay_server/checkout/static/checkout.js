// The payment page: one submission at a time, polling while processing, return to the game.
(function () {
  "use strict";
  var main = document.querySelector("main");
  var sent = false;

  document.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }
    sent = true;
    // Disable after the browser has read the form, so the clicked button's value is sent.
    window.setTimeout(function () {
      document.querySelectorAll("button:not([data-unavailable])").forEach(function (b) { b.disabled = true; });
      event.target.setAttribute("aria-busy", "true");
    }, 0);
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    sent = false;
    document.querySelectorAll("button:not([data-unavailable])").forEach(function (b) { b.disabled = false; });
  });

  if (main && main.dataset.redirect) {
    window.location.replace(main.dataset.redirect);
    return;
  }
  if (main && main.dataset.poll) {
    var interval = Number(main.dataset.interval) || 1000;
    var tick = function () {
      fetch(main.dataset.poll, { cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (s && s.status !== "processing") { window.location.reload(); } else { window.setTimeout(tick, interval); }
        }, function () { window.setTimeout(tick, interval); });
    };
    window.setTimeout(tick, Math.min(interval, 500));
  }
})();
