/* The resident's rotating code (portal_code.html): loads the next code at each step
 * boundary, by the server's clock (the phone's may be off); the page itself is never
 * reloaded. A file, not an inline script: the Content-Security-Policy allows no inline one.
 * Its words come from the page (data-failed on #code-note), in the page's language. */
(function () {
  const image = document.getElementById("my-code");
  const seconds = document.getElementById("code-seconds");
  const bar = document.getElementById("code-progress");
  const note = document.getElementById("code-note");
  const base = image.src.split("?")[0];
  const stepMs = Number(image.dataset.step) * 1000;
  // Measured when the page was made: it errs late by the page's travel time, never early.
  const offset = Number(image.dataset.serverNow) - Date.now();
  const GRACE_MS = 300;  // ask a moment after the change, so the server is surely past it
  const STALE_MS = 5000;  // doors accept a code this long after its step
  let shownUntil = Number(image.dataset.validUntil);  // the end of the shown code's step
  let loading = false;
  let retryAt = 0;

  function serverNow() { return Date.now() + offset; }

  function load(until) {
    loading = true;
    const next = new Image();
    next.onload = function () {
      image.src = next.src;
      image.dataset.validUntil = String(until);
      shownUntil = until;
      loading = false;
      note.textContent = "";
    };
    next.onerror = function () {
      loading = false;
      retryAt = Date.now() + 2000;
      note.textContent = note.dataset.failed;
    };
    next.src = base + "?step=" + until;
  }

  function tick() {
    const now = serverNow();
    if (!loading && now >= shownUntil + GRACE_MS && Date.now() >= retryAt) {
      // The end of the step we are in now (steps missed while the phone slept are skipped).
      load(shownUntil + stepMs * (Math.floor((now - GRACE_MS - shownUntil) / stepMs) + 1));
    }
    const left = Math.max(0, Math.ceil((shownUntil - now) / 1000));
    seconds.textContent = String(left);
    bar.value = left;
    image.classList.toggle("stale", now > shownUntil + STALE_MS);
  }

  tick();
  setInterval(tick, 250);
})();
