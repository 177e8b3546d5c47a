// Progressive enhancement only: every page works without this file.
// A page that shows work in progress marks it with data-auto-refresh="SECONDS";
// with script, the page reloads itself until the work is done.
"use strict";
const running = document.querySelector("[data-auto-refresh]");
if (running) {
  const seconds = Number(running.getAttribute("data-auto-refresh")) || 2;
  window.setTimeout(() => window.location.reload(), seconds * 1000);
}

// A page with mistakes opens at its error summary, so a screen reader starts there.
const summary = document.querySelector(".error-summary");
if (summary) {
  summary.focus();
}
