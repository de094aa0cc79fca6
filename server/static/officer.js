/* The officer's alert console and alert page (server/web/officer.py).
 *
 * Console: listens to the alerts stream (server-sent events, `event: alert`, the JSON of
 * docs/protocol.md section 5), adds or updates each alert's card in place, keeps the list
 * ordered (unresolved first, most severe, newest), flashes high and critical alerts until
 * acknowledged and plays a short tone for them (Web Audio; browsers allow sound only after
 * the page has been clicked once, so the "Sound" button also unlocks it).
 * Both pages: the Acknowledge and Resolve buttons POST {note} to the alerts API with the
 * page's session and its CSRF token (X-CSRFToken), then show the new status.
 * Words: every text this script writes comes from the page (the JSON block #officer-texts,
 * in the reader's language); the stream's summaries are English, so the console asks the
 * page's server for each new summary in the reader's language (data-summary-url, set when
 * the page is not English). Times are labelled with the zone's abbreviation the server
 * uses (data-communities: tz_labels, by UTC offset in minutes), as the rest of the page.
 */
(function () {
  "use strict";

  var RANK = { critical: 3, high: 2, medium: 1, low: 0 };
  var LOUD = { critical: true, high: true };
  var console_ = document.querySelector("[data-alert-console]");
  var page = document.querySelector(".alert-page[data-alert-id]");
  var host = console_ || page;
  if (!host) return;
  var api = host.dataset.api;
  var csrf = host.dataset.csrf;
  var textsBlock = document.getElementById("officer-texts");
  var TEXTS = textsBlock ? JSON.parse(textsBlock.textContent) : {};

  // A text of the page, its {name} placeholders filled in.
  function text(name, values) {
    var pattern = TEXTS[name];
    if (typeof pattern !== "string") return "";
    return pattern.replace(/\{(\w+)\}/g, function (whole, key) {
      return values && key in values ? String(values[key]) : whole;
    });
  }

  // A domain value in the page's words ("types", "severities", "statuses", "steps").
  function words(table, value) {
    var known = TEXTS[table] || {};
    return known[value] || String(value || "").replace(/_/g, " ");
  }

  // --- the alert's JSON, whichever endpoint sent it -----------------------------------------
  function normalise(alert) {
    return {
      id: alert.alert_id || alert.id,
      type: alert.type,
      severity: alert.severity,
      status: alert.status,
      community_id: alert.community_id,
      access_point: typeof alert.access_point === "object" && alert.access_point
        ? alert.access_point.name : alert.access_point,
      ts: alert.ts || alert.created_at,
      updated_at: alert.updated_at,
      summary: alert.summary,
      snapshots: ((alert.evidence || {}).snapshots || []).slice(0, 3),
    };
  }

  function field(card, name) {
    return card.querySelector('[data-field="' + name + '"]');
  }

  function flashes(alert) {
    return alert.status === "open" && !!LOUD[alert.severity];
  }

  // Show an alert's state on its card (the console's cards and the alert page's header).
  // Says whether the status changed and whether the (stored, English) summary did.
  function show(card, alert) {
    var before = card.dataset.status;
    if (alert.updated_at) card.dataset.updated = alert.updated_at;
    if (alert.severity) {
      card.dataset.severity = alert.severity;
      field(card, "severity").textContent = words("severities", alert.severity);
    }
    if (alert.status) {
      card.dataset.status = alert.status;
      field(card, "status").textContent = words("statuses", alert.status);
    }
    var classes = card.className.split(/\s+/).filter(function (name) {
      return name && name.indexOf("sev-") !== 0 && name.indexOf("status-") !== 0 && name !== "flashing";
    });
    classes.push("sev-" + card.dataset.severity, "status-" + card.dataset.status);
    if (flashes({ status: card.dataset.status, severity: card.dataset.severity })) classes.push("flashing");
    card.className = classes.join(" ");
    // The card shows the summary in the reader's language; data-summary keeps the stored
    // one, to tell a new summary from the same one in other words.
    var summaryChanged = !!alert.summary && alert.summary !== card.dataset.summary;
    if (summaryChanged) {
      card.dataset.summary = alert.summary;
      if (field(card, "summary")) field(card, "summary").textContent = alert.summary;
    }
    return { status: before !== card.dataset.status, summary: summaryChanged };
  }

  // --- acknowledge and resolve ---------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) return;
    var card = button.closest("[data-alert-id]");
    if (!card) return;
    act(card, button);
  });

  function act(card, button) {
    var action = button.dataset.action;
    var input = card.querySelector('input[name="note"]');
    var note = input ? input.value.trim() : "";
    var error = field(card, "error");
    error.textContent = "";
    button.disabled = true;
    fetch(api + "/" + encodeURIComponent(card.dataset.alertId) + "/" + action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(note ? { note: note } : {}),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) throw new Error(body.detail || body.title || text("server_answered", { status: response.status }));
        return body;
      });
    }).then(function (body) {
      var alert = normalise(body);
      if (!alert.status) alert.status = action === "resolve" ? "resolved" : "acknowledged";
      show(card, alert);
      if (input) input.value = "";
      if (page) addHistory(action, (body.history || []).slice(-1)[0], note);
      if (console_) place(card);
    }).catch(function (problem) {
      error.textContent = problem.message || String(problem);
    }).then(function () {
      button.disabled = false;
    });
  }

  // The step just taken, from the answer's history (who and when as the server wrote them).
  function addHistory(action, step, note) {
    var list = document.getElementById("history-list");
    if (!list) return;
    step = step || {};
    var empty = list.querySelector("li.muted");
    if (empty) empty.remove();
    var item = document.createElement("li");
    var pill = document.createElement("span");
    pill.className = "pill";
    pill.textContent = words("steps", step.action || (action === "resolve" ? "resolved" : "acknowledged"));
    var who = document.createElement("strong");
    who.textContent = step.by || text("you");
    var when = document.createElement("time");
    when.dateTime = step.at || new Date().toISOString();
    when.textContent = text("just_now");
    item.append(pill, " ", who, " ", when);
    if (step.note || note) {
      var quoted = document.createElement("span");
      quoted.className = "history-note";
      quoted.textContent = "“" + (step.note || note) + "”";
      item.append(" ", quoted);
    }
    list.append(item);
  }

  if (!console_) return;

  // --- the console: cards in order ------------------------------------------------------------
  var list = document.getElementById("alert-list");
  var template = document.getElementById("alert-card-template");
  var banner = document.getElementById("alarm-banner");
  var liveState = document.getElementById("live-state");
  var communities = JSON.parse(console_.dataset.communities || "{}");

  function order(card) {
    return [
      card.dataset.status === "resolved" ? 1 : 0,
      -(RANK[card.dataset.severity] || 0),
      -(Date.parse(card.dataset.ts) || 0),
    ];
  }

  function before(a, b) {
    var x = order(a), y = order(b);
    for (var i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] < y[i];
    return false;
  }

  // Move one card to where it belongs (the others are already in order).
  function place(card) {
    var next = null;
    var cards = list.querySelectorAll("[data-alert-id]");
    for (var i = 0; i < cards.length; i++) {
      if (cards[i] !== card && before(card, cards[i])) { next = cards[i]; break; }
    }
    if (card.nextElementSibling !== next || card.parentNode !== list) list.insertBefore(card, next);
    document.getElementById("no-alerts").hidden = list.children.length > 0;
  }

  // "2026-12-01 09:00 CST", as the server's local_time writes it: the wall clock in the
  // community's zone and the zone's abbreviation for that UTC offset (tz_labels), which
  // the browser's own short names do not always match ("GMT+8").
  function localTime(iso, community) {
    var when = new Date(iso);
    if (isNaN(when)) return iso || "";
    try {
      var parts = {};
      new Intl.DateTimeFormat("en-GB", {
        timeZone: community.tz, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short",
      }).formatToParts(when).forEach(function (part) { parts[part.type] = part.value; });
      var wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second);
      var offset = Math.round((wall - Math.floor(when.getTime() / 1000) * 1000) / 60000);
      var label = (community.tz_labels || {})[String(offset)] || parts.timeZoneName;
      return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute + " " + label;
    } catch (error) {
      return when.toISOString();
    }
  }

  function picture(src) {
    var img = document.createElement("img");
    img.className = "snapshot";
    img.alt = text("evidence_picture");
    img.width = 96;
    img.height = 54;
    img.addEventListener("error", function () {
      var none = document.createElement("span");
      none.className = "snapshot placeholder";
      none.textContent = text("no_picture");
      img.replaceWith(none);
    });
    img.src = src;
    return img;
  }

  function newCard(alert) {
    var card = template.content.firstElementChild.cloneNode(true);
    var community = communities[alert.community_id] || {};
    card.id = "alert-" + alert.id;
    card.dataset.alertId = alert.id;
    card.dataset.community = alert.community_id;
    card.dataset.ts = alert.ts || new Date().toISOString();
    field(card, "type").textContent = alert.type ? words("types", alert.type) : text("alert");
    var ts = field(card, "ts");
    ts.dateTime = card.dataset.ts;
    ts.textContent = localTime(card.dataset.ts, community);
    field(card, "summary").href = console_.dataset.alertUrl.replace("ALERT_ID", encodeURIComponent(alert.id));
    field(card, "where").textContent = [community.name, alert.access_point].filter(Boolean).join(" · ");
    var shots = field(card, "snapshots");
    alert.snapshots.forEach(function (src) { shots.append(picture(src)); });
    return card;
  }

  function upsert(raw, live) {
    var alert = normalise(raw);
    if (!alert.id || !communities[alert.community_id]) return;  // not one of this page's
    var card = document.getElementById("alert-" + alert.id);
    var fresh = !card;
    // An answer fetched before a change the stream already showed must not undo it.
    if (card && card.dataset.updated && alert.updated_at &&
        Date.parse(alert.updated_at) < Date.parse(card.dataset.updated)) return;
    if (fresh) card = newCard(alert);
    var changed = show(card, alert);
    place(card);
    if (changed.summary) translateSummary(card);
    if (live && flashes(alert) && (fresh || changed.status || changed.summary)) alarm(card, alert);
  }

  // The summary in the reader's language, from the page's server (the stream's is English).
  var summaryUrl = console_.dataset.summaryUrl;
  function translateSummary(card) {
    if (!summaryUrl) return;
    var id = card.dataset.alertId;
    fetch(summaryUrl.replace("ALERT_ID", encodeURIComponent(id)), {
      credentials: "same-origin", headers: { "Accept": "application/json" },
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (body) {
      // An answer about another summary than the card's (a newer one came since) is dropped.
      if (!body || body.source !== card.dataset.summary) return;
      field(card, "summary").textContent = body.summary;
      if (!banner.hidden && banner.dataset.alarmFor === id) banner.textContent = alarmText(card, body.summary);
    }).catch(function () { /* the stored summary stays */ });
  }

  // --- flash and tone for high and critical ---------------------------------------------------
  var audio = null;
  var soundOn = localStorage.getItem("gk-alert-sound") !== "off";
  var soundButton = document.getElementById("sound-toggle");

  function showSound() {
    soundButton.textContent = text(soundOn ? "sound_on" : "sound_off");
    soundButton.setAttribute("aria-pressed", String(soundOn));
  }

  function audioContext() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!audio && Context) audio = new Context();
    if (audio && audio.state === "suspended") audio.resume();
    return audio;
  }

  soundButton.addEventListener("click", function () {
    soundOn = !soundOn;
    localStorage.setItem("gk-alert-sound", soundOn ? "on" : "off");
    showSound();
    if (soundOn) audioContext();  // a click is the gesture that lets the page play sound
  });
  document.addEventListener("click", function () { if (soundOn) audioContext(); }, { once: true });
  showSound();

  function tone(times) {
    console_.dataset.beeps = String(Number(console_.dataset.beeps || 0) + 1);
    if (!soundOn) return;
    try {
      var context = audioContext();
      if (!context) return;
      var start = context.currentTime + 0.02;
      for (var i = 0; i < times; i++) {
        var at = start + i * 0.25;
        var oscillator = context.createOscillator();
        var gain = context.createGain();
        oscillator.type = "square";
        oscillator.frequency.value = i % 2 ? 660 : 880;
        gain.gain.setValueAtTime(0.0001, at);
        gain.gain.exponentialRampToValueAtTime(0.15, at + 0.01);
        gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
        oscillator.connect(gain).connect(context.destination);
        oscillator.start(at);
        oscillator.stop(at + 0.2);
      }
    } catch (error) {
      /* no sound on this browser: the flash still shows */
    }
  }

  var bannerTimer = null;
  function alarmText(card, summary) {
    var loud = (TEXTS.alarm || {})[card.dataset.severity] || "{summary}";
    return loud.replace("{summary}", function () { return summary; });
  }

  function alarm(card, alert) {
    tone(alert.severity === "critical" ? 3 : 2);
    banner.dataset.alarmFor = card.dataset.alertId;
    banner.textContent = alarmText(card, field(card, "summary").textContent || words("types", alert.type));
    banner.hidden = false;
    banner.classList.remove("pulse");
    void banner.offsetWidth;  // restart the animation
    banner.classList.add("pulse");
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(function () { banner.hidden = true; }, 15000);
  }

  // --- the stream -----------------------------------------------------------------------------
  function setLive(state, name) {
    liveState.dataset.state = state;
    liveState.textContent = text(name);
  }

  // Alerts raised between the page's rendering and the stream's start are in no stream:
  // each time the stream opens, fetch the open ones (a reconnecting stream also resumes
  // from Last-Event-ID by itself; a card already shown is only brought up to date).
  function catchUp() {
    fetch(api + "?status=open&page_size=100", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : []; })
      .then(function (body) {
        (Array.isArray(body) ? body : body.items || []).forEach(function (alert) { upsert(alert, true); });
      })
      .catch(function () { /* the stream brings the next ones anyway */ });
  }

  if (!window.EventSource) {
    setLive("off", "no_stream");
    return;
  }
  // EventSource reconnects by itself after a stream ends (with Last-Event-ID), but not
  // after a refusal (503 when the server has no stream to spare, 401 after signing out):
  // then open a new one a little later, resuming from the last change seen.
  var lastEventId = "";
  var stream = null;
  function connect() {
    var url = console_.dataset.stream;
    if (lastEventId) url += "?last_event_id=" + encodeURIComponent(lastEventId);
    // The stream may be on the stream process's port of this host (make run): send the
    // session cookie there too (it answers this origin with CORS).
    stream = new EventSource(url, { withCredentials: true });
    stream.addEventListener("alert", function (event) {
      if (event.lastEventId) lastEventId = event.lastEventId;
      try {
        var raw = JSON.parse(event.data);
        upsert(raw, true);
        // static/dispatch.js hears every change too (a dispatch's banner and tone).
        document.dispatchEvent(new CustomEvent("gk:alert", { detail: raw }));
      } catch (error) {
        /* a malformed message: skip it */
      }
    });
    stream.addEventListener("open", function () {
      setLive("live", "live");
      catchUp();
    });
    stream.addEventListener("error", function () {
      if (stream.readyState === EventSource.CLOSED) {
        setLive("reconnecting", "offline");
        setTimeout(connect, 10000);
      } else {
        setLive("reconnecting", "reconnecting");
      }
    });
  }
  connect();
  window.addEventListener("pagehide", function () { stream.close(); });
})();
