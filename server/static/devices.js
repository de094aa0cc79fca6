/* The device console (devices.html), live: static/live.js follows the page's stream, and
 * each change it hands over ("gk:live") is shown in place: a device's state pill and last
 * seen (in the community's time zone), a command's outcome on its row. Every word comes from
 * the page: the device states from #devices' data-word-*, the command statuses (the `word`
 * filter's) from #commands' data-statuses and the server's own details from data-details. */
(function () {
  const table = document.getElementById("devices");
  const commands = document.getElementById("commands");
  const zone = table.dataset.timezone;
  const words = {disabled: table.dataset.wordDisabled, online: table.dataset.wordOnline, offline: table.dataset.wordOffline};
  const statuses = JSON.parse(commands.dataset.statuses || "{}");
  const details = JSON.parse(commands.dataset.details || "{}");
  const format = new Intl.DateTimeFormat("sv-SE", {timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"});
  const OUTCOME = {acked: "on", failed: "off", expired: "off"};

  function pill(kind, text) {
    const element = document.createElement("span");
    element.className = kind ? `pill ${kind}` : "pill";
    element.textContent = text;
    return element;
  }

  // A state older than the one shown (a late or resumed message) must not undo it.
  function stale(row, at) {
    return !!(row.dataset.changedAt && at && Date.parse(at) < Date.parse(row.dataset.changedAt));
  }

  function showDevice(device) {
    const row = table.querySelector(`tr[data-device="${CSS.escape(device.id)}"]`);
    if (!row) return;
    const state = device.disabled ? ["off", words.disabled] : device.online ? ["on", words.online] : ["", words.offline];
    row.querySelector(".state").replaceChildren(pill(state[0], state[1]));
    const seen = row.querySelector(".seen");
    if (device.last_seen_at && device.last_seen_at !== seen.dataset.utc) {
      seen.dataset.utc = device.last_seen_at;
      seen.textContent = format.format(new Date(device.last_seen_at));
    }
  }

  function showCommand(command) {
    const row = commands.querySelector(`tr[data-command="${CSS.escape(command.id)}"]`);
    if (!row || stale(row, command.status_at)) return;  // a command not on the page: on reload
    row.dataset.status = command.status;
    row.dataset.changedAt = command.status_at || "";
    const cell = row.querySelector(".outcome");
    cell.replaceChildren(pill(OUTCOME[command.status] || "", statuses[command.status] || command.status));
    const detail = command.detail ? details[command.detail] || command.detail : "";
    if (detail) cell.append(" ", detail);
  }

  document.addEventListener("gk:live", function (event) {
    if (event.detail.type === "device") showDevice(event.detail.data);
    else if (event.detail.type === "command") showCommand(event.detail.data);
  });
})();
