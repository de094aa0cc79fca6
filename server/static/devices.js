/* The device console (devices.html): refreshes online state and last-seen every few
 * seconds from the API (the session authenticates GETs), in the community's time zone. */
(function () {
  const table = document.getElementById("devices");
  const zone = table.dataset.timezone;
  const format = new Intl.DateTimeFormat("sv-SE", {timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"});
  async function refresh() {
    try {
      const answer = await fetch(table.dataset.source, {credentials: "same-origin"});
      if (!answer.ok) return;
      for (const device of await answer.json()) {
        const row = table.querySelector(`tr[data-device="${device.id}"]`);
        if (!row) continue;
        const state = device.disabled ? ["off", "disabled"] : device.online ? ["on", "online"] : ["", "offline"];
        row.querySelector(".state").innerHTML = `<span class="pill ${state[0]}">${state[1]}</span>`;
        if (device.last_seen_at) row.querySelector(".seen").textContent = format.format(new Date(device.last_seen_at));
      }
    } catch (error) { /* the next round tries again */ }
  }
  setInterval(refresh, 5000);
})();
