/* Campaigns: the editor's live preview, the send dialog, the progress of a send.
   Served by the app; no CDN, no libraries. Everything works without it, less live. */
(function () {
  "use strict";

  var ALIASES = { targets: "list_ids" }; // problems keyed by what they concern

  function debounce(fn, wait) {
    var timer = null;
    return function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(fn, wait);
    };
  }

  // -- the editor: preview as you type ------------------------------------------------
  var form = document.getElementById("campaign-form");
  var frame = document.getElementById("preview-frame");
  if (form && frame) {
    var member = document.getElementById("preview-member");
    var subject = document.getElementById("preview-subject");
    var text = document.getElementById("preview-text");
    var status = document.getElementById("preview-status");
    var sequence = 0;

    var showErrors = function (errors) {
      form.querySelectorAll("[data-error-for]").forEach(function (el) {
        el.hidden = true;
        el.textContent = "";
      });
      Object.keys(errors).forEach(function (field) {
        var el = form.querySelector('[data-error-for="' + (ALIASES[field] || field) + '"]');
        if (el) {
          el.textContent = errors[field];
          el.hidden = false;
        }
      });
    };

    var refresh = function () {
      var mine = ++sequence;
      var data = new FormData(form);
      if (member && member.value) { data.append("member_id", member.value); }
      fetch(form.dataset.previewUrl, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      })
        .then(function (response) {
          if (!response.ok) { throw new Error(response.status); }
          return response.json();
        })
        .then(function (preview) {
          if (mine !== sequence) { return; } // a newer request is on its way
          var errors = preview.errors || {};
          showErrors(errors);
          if (Object.keys(errors).length) {
            status.textContent = status.dataset.stale;
            return;
          }
          frame.srcdoc = preview.html;
          subject.textContent = preview.subject;
          text.textContent = preview.text;
          status.textContent = status.dataset.fresh;
        })
        .catch(function () {
          if (mine === sequence) { status.textContent = status.dataset.failed; }
        });
    };

    var later = debounce(refresh, 400);
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    if (member) { member.addEventListener("change", refresh); }

    document.querySelectorAll("[data-show]").forEach(function (button) {
      button.addEventListener("click", function () {
        var part = button.dataset.show;
        frame.hidden = part !== "html";
        text.hidden = part !== "text";
        document.querySelectorAll("[data-show]").forEach(function (other) {
          other.setAttribute("aria-pressed", String(other === button));
        });
      });
    });
    refresh(); // the text part, and the preview of a new campaign
  }

  // -- the send dialog: now or later ----------------------------------------------------
  var sendForm = document.getElementById("send-form");
  if (sendForm) {
    var field = document.getElementById("schedule-field");
    var submit = sendForm.querySelector("button[type=submit]");
    var sync = function () {
      var checked = sendForm.querySelector('input[name="when"]:checked');
      var later = checked && checked.value === "later";
      field.hidden = !later;
      submit.textContent = later ? submit.dataset.later : submit.dataset.now;
    };
    sendForm.addEventListener("change", sync);
    sync();
  }

  // -- a send in progress: poll its status, reload when its state changes -------------------
  var live = document.getElementById("campaign-live");
  if (live && live.dataset.statusUrl) {
    var bar = document.getElementById("campaign-progress");
    var format = new Intl.NumberFormat(document.documentElement.lang || undefined);
    var poll = function () {
      fetch(live.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (progress) {
          if (bar) { bar.value = progress.percent; bar.textContent = progress.percent + "%"; }
          ["percent", "sent", "failed", "waiting", "recipients"].forEach(function (name) {
            var el = live.querySelector('[data-field="' + name + '"]');
            if (el) { el.textContent = format.format(progress[name]); }
          });
          if (progress.status !== live.dataset.state) {
            // Show where it ended (a full bar when sent) for a moment, then the new page.
            window.setTimeout(function () { window.location.reload(); }, 1200);
            return;
          }
          window.setTimeout(poll, progress.status === "sending" ? 1000 : 5000);
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    };
    window.setTimeout(poll, live.dataset.state === "sending" ? 500 : 5000);
  }
})();
