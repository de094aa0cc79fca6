/* Dispatch on the officer's console (server/web/dispatch.py, docs/alerts.md "Dispatch").
 *
 * static/officer.js hands every change the alerts stream brings to this script as a
 * "gk:alert" event. An alert dispatched to the signed-in officer (reason "dispatched",
 * dispatch.assignee_id = data-me) shows a banner with a link to the alert and plays a tone;
 * a dispatch escalated to the station (reason "dispatch_escalated") shows on every console.
 * The tone follows the console's sound switch (localStorage "gk-alert-sound"). Words come
 * from the page (#dispatch-texts, in the reader's language).
 */
(function () {
  "use strict";

  var banner = document.getElementById("dispatch-banner");
  if (!banner) return;
  var textsBlock = document.getElementById("dispatch-texts");
  var TEXTS = textsBlock ? JSON.parse(textsBlock.textContent) : {};
  var me = banner.dataset.me;
  var audio = null;

  function fill(pattern, values) {
    return String(pattern || "").replace(/\{(\w+)\}/g, function (whole, key) {
      return key in values ? String(values[key]) : whole;
    });
  }

  function tone() {
    banner.dataset.tones = String(Number(banner.dataset.tones || 0) + 1);
    if (localStorage.getItem("gk-alert-sound") === "off") return;
    try {
      var Context = window.AudioContext || window.webkitAudioContext;
      if (!Context) return;
      audio = audio || new Context();
      if (audio.state === "suspended") audio.resume();
      var start = audio.currentTime + 0.02;
      for (var i = 0; i < 4; i++) {
        var at = start + i * 0.3;
        var oscillator = audio.createOscillator();
        var gain = audio.createGain();
        oscillator.type = "sine";
        oscillator.frequency.value = i % 2 ? 523 : 784;
        gain.gain.setValueAtTime(0.0001, at);
        gain.gain.exponentialRampToValueAtTime(0.2, at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.25);
        oscillator.connect(gain).connect(audio.destination);
        oscillator.start(at);
        oscillator.stop(at + 0.27);
      }
    } catch (error) {
      /* no sound on this browser: the banner still shows */
    }
  }

  function show(alert, text, kind) {
    banner.textContent = "";
    var link = document.createElement("a");
    link.href = banner.dataset.alertUrl.replace("ALERT_ID", encodeURIComponent(alert.alert_id));
    link.textContent = text;
    banner.append(link);
    banner.dataset.kind = kind;
    banner.dataset.alertFor = alert.alert_id;
    banner.hidden = false;
    banner.classList.remove("pulse");
    void banner.offsetWidth;  // restart the animation
    banner.classList.add("pulse");
  }

  document.addEventListener("gk:alert", function (event) {
    var alert = event.detail || {};
    var dispatch = alert.dispatch;
    if (!dispatch) return;
    var summary = alert.summary || alert.type || "";
    if (alert.reason === "dispatched" && dispatch.assignee_id === me) {
      show(alert, fill(TEXTS.to_you, { summary: summary }), "to_you");
      tone();
    } else if (alert.reason === "dispatch_escalated") {
      show(alert, fill(TEXTS.escalated, { officer: dispatch.assignee || "", summary: summary }), "escalated");
      tone();
    } else if (banner.dataset.alertFor === alert.alert_id && (alert.reason === "dispatch_accepted" ||
               alert.reason === "acknowledged" || alert.reason === "resolved")) {
      banner.hidden = true;
    }
  });
})();
