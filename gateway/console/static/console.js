// nce-gateway console: live parts of a page, nothing else (pages work without script).
// An element with data-live="URL" is refreshed from URL (an HTML fragment) every few seconds
// while the page is visible: the dashboard chart, the newest messages of a device.
(function () {
  "use strict";
  var PERIOD_MS = 3000;

  function refresh(element) {
    var url = element.getAttribute("data-live");
    return fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null) { return; }
        if (element.tagName === "TBODY") {
          element.innerHTML = html;
        } else {
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.firstElementChild;
          if (fresh) { element.replaceWith(fresh); }
        }
      })
      .catch(function () { /* the next round tries again */ });
  }

  function tick() {
    if (document.visibilityState !== "visible") { return; }
    document.querySelectorAll("[data-live]").forEach(refresh);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[data-live]")) { window.setInterval(tick, PERIOD_MS); }
  });
})();
