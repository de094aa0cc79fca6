/* Web Push for this browser (portal_notification_settings.html): register the service worker
 * (static/push-sw.js), subscribe with the server's VAPID key and hand the subscription to
 * POST /api/v1/notifications/push-subscriptions (the page's session and CSRF token). */
(function () {
  const button = document.getElementById("push-subscribe");
  const state = document.getElementById("push-state");
  if (!button) return;
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    button.hidden = true;
    return;
  }

  function keyBytes(base64url) {
    const padded = base64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((base64url.length + 3) % 4);
    const raw = atob(padded);
    return Uint8Array.from(raw, function (c) { return c.charCodeAt(0); });
  }

  // The worker's scope is /static/, not the page's: serviceWorker.ready would wait for one of
  // the page's scope forever, so wait for this registration's worker to be active.
  function active(registration) {
    const worker = registration.installing || registration.waiting;
    if (registration.active || !worker) return Promise.resolve(registration);
    return new Promise(function (resolve) {
      if (worker.state === "activated") resolve(registration);
      worker.addEventListener("statechange", function () {
        if (worker.state === "activated") resolve(registration);
      });
    });
  }

  button.addEventListener("click", async function () {
    button.disabled = true;
    try {
      const permission = await Notification.requestPermission();
      if (permission !== "granted") throw new Error("refused");
      const registration = await active(await navigator.serviceWorker.register(button.dataset.worker));
      const subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: keyBytes(button.dataset.key),
      });
      const answer = await fetch(button.dataset.api, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": button.dataset.csrf },
        body: JSON.stringify(subscription.toJSON()),
      });
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      state.textContent = button.dataset.textDone;
    } catch (error) {
      state.textContent = button.dataset.textRefused;
      button.disabled = false;
    }
  });
})();
