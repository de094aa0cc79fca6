/* The device console (devices.html): refreshes online state and last-seen every few
 * seconds from the API (the session authenticates GETs), in the community's time zone.
 * The words for the states come from the table's data-word-* attributes (translated). */
(function () {
  const table = document.getElementById("devices");
  const zone = table.dataset.timezone;
  const words = {disabled: table.dataset.wordDisabled, online: table.dataset.wordOnline, offline: table.dataset.wordOffline};
  const format = new Intl.DateTimeFormat("sv-SE", {timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"});
  async function refresh() {
    try {
      const answer = await fetch(table.dataset.source, {credentials: "same-origin"});
      if (!answer.ok) return;
      for (const device of await answer.json()) {
        const row = table.querySelector(`tr[data-device="${device.id}"]`);
        if (!row) continue;
        const state = device.disabled ? ["off", words.disabled] : device.online ? ["on", words.online] : ["", words.offline];
        const pill = document.createElement("span");
        pill.className = state[0] ? `pill ${state[0]}` : "pill";
        pill.textContent = state[1];
        row.querySelector(".state").replaceChildren(pill);
        if (device.last_seen_at) row.querySelector(".seen").textContent = format.format(new Date(device.last_seen_at));
      }
    } catch (error) { /* the next round tries again */ }
  }
  setInterval(refresh, 5000);
})();
