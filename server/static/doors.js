/* The resident's doors page (portal_doors.html) after a remote open: static/live.js follows
 * the resident's own commands, and each door waiting for an answer says what became of it
 * ("The door opened", or that it did not) as the door answers. The words come from the
 * list's data-outcomes; the rule is remote.outcome's: opened when one of the door's devices
 * acted, waiting while one may still answer, else failed or expired. Once no door waits, the
 * stream is let go. */
(function () {
  const list = document.getElementById("doors");
  const words = JSON.parse(list.dataset.outcomes || "{}");
  const PILL = {opened: "on", failed: "off", expired: "off"};

  function outcome(statuses) {
    if (statuses.indexOf("acked") >= 0) return "opened";
    if (statuses.some(function (status) { return status === "queued" || status === "sent"; })) return "waiting";
    return statuses.indexOf("failed") >= 0 ? "failed" : "expired";
  }

  function waiting() {
    return list.querySelector('.door-outcome[data-outcome="waiting"]') !== null;
  }

  document.addEventListener("gk:live", function (event) {
    if (event.detail.type !== "command") return;
    const command = event.detail.data;
    const line = list.querySelector(`li[data-door="${CSS.escape(command.access_point_id || "")}"] .door-outcome`);
    if (!line) return;
    const commands = JSON.parse(line.dataset.commands || "{}");
    if (!(command.id in commands)) return;  // an older or newer open than the one shown
    commands[command.id] = command.status;
    line.dataset.commands = JSON.stringify(commands);
    const now = outcome(Object.values(commands));
    if (now !== line.dataset.outcome) {
      line.dataset.outcome = now;
      const pill = document.createElement("span");
      pill.className = PILL[now] ? "pill " + PILL[now] : "pill";
      pill.textContent = words[now] || now;
      line.replaceChildren(pill);
    }
    if (!waiting()) document.dispatchEvent(new CustomEvent("gk:live-done"));
  });
})();
