/* Heyloyalty dashboard: small progressive enhancements. Served by the app; no CDN. */
(function () {
  "use strict";

  // Confirm before destructive actions (buttons with data-confirm).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // Live progress of an import: poll its status, reload when it is finished.
  var box = document.getElementById("import");
  if (box && (box.dataset.state === "queued" || box.dataset.state === "running")) {
    var bar = document.getElementById("import-progress");
    var format = new Intl.NumberFormat(document.documentElement.lang || undefined);
    var poll = function () {
      fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (status) {
          if (bar) { bar.value = status.progress; bar.textContent = status.progress + "%"; }
          ["rows_done", "rows_total"].forEach(function (name) {
            var el = box.querySelector('[data-field="' + name + '"]');
            if (el) { el.textContent = format.format(status[name]); }
          });
          if (status.status === "done" || status.status === "failed") {
            window.location.reload();
          } else {
            window.setTimeout(poll, 1000);
          }
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    };
    window.setTimeout(poll, 500);
  }
})();
