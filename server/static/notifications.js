/* The portal's notification list (portal_notifications.html), live: static/live.js follows
 * the resident's own notifications; a new one is put at the top of the list in the words of
 * the list's data-texts (its kind's line, %(name)s filled from its params, %(time)s its time
 * in the community's zone), and the header's unread count moves as notifications arrive or
 * are read (in another tab, by the API). */
(function () {
  const list = document.getElementById("notifications");
  const count = document.getElementById("unread-count");
  if (!list) return;
  const texts = JSON.parse(list.dataset.texts || "{}");
  const zone = list.dataset.zone || undefined;
  const unread = new Set(Array.from(list.querySelectorAll("li.unread")).map(function (li) { return li.dataset.notification; }));
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });

  // "YYYY-MM-DD HH:MM" in the community's zone, as the server writes it (or "MM-DD HH:MM").
  function local(iso, withYear) {
    const at = {};
    parts.formatToParts(new Date(iso)).forEach(function (part) { at[part.type] = part.value; });
    const day = `${at.month}-${at.day} ${at.hour}:${at.minute}`;
    return withYear ? `${at.year}-${day}` : day;
  }

  function showCount() {
    if (!count) return;
    count.textContent = String(unread.size);
    count.dataset.unread = String(unread.size);
    count.classList.toggle("alarm", unread.size > 0);
  }

  function words(notification) {
    const params = notification.params || {};
    const template = texts[notification.kind] || notification.kind;
    return template.replace(/%\((\w+)\)s/g, function (_all, key) {
      if (key === "time" && params.at) return local(params.at, false);
      return params[key] === undefined ? "—" : String(params[key]);
    });
  }

  document.addEventListener("gk:live", function (event) {
    if (event.detail.type !== "notification") return;
    const notification = event.detail.data;
    if (!notification.in_portal) return;
    let item = list.querySelector(`li[data-notification="${CSS.escape(notification.id)}"]`);
    if (!item) {
      const empty = list.querySelector("li[data-empty]");
      if (empty) empty.remove();
      item = document.createElement("li");
      item.dataset.notification = notification.id;
      const when = document.createElement("span");
      when.className = "muted";
      when.textContent = local(notification.created_at, true);
      const text = document.createElement("span");
      text.className = "notification-text";
      text.textContent = words(notification);
      item.append(when, text);
      list.prepend(item);
    }
    if (notification.read_at) {
      item.classList.remove("unread");
      unread.delete(notification.id);
    } else {
      item.classList.add("unread");
      unread.add(notification.id);
    }
    showCount();
  });
})();
