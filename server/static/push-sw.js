/* The portal's service worker: shows a Web Push (server.worker.notifications.push_payload:
 * a title, the lock screen's line, where a tap leads) and opens the portal when tapped. */
self.addEventListener("push", function (event) {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = {};
  }
  event.waitUntil(self.registration.showNotification(data.title || "", {
    body: data.body || "",
    tag: data.tag || undefined,
    data: { url: data.url || "/my/notifications" },
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  const url = new URL((event.notification.data && event.notification.data.url) || "/my/notifications", self.location.origin);
  event.waitUntil(self.clients.openWindow(url.href));
});
