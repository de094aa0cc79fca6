/* The door intercom (templates/_intercom_ring.html on every page of a resident's portal, a
 * banner at the top of the screen and the tab's title while a call rings; intercom_console.html
 * at the guard booth): one EventSource on the panel's data-stream brings each state of a call
 * ("intercom" events). A resident's panel shows the calls that ring for their unit, the guard's
 * the community's live calls (ringing or rolled over to it); each with the door's name, the
 * visitor's snapshot and two buttons. Answering posts the form and says what happened; the
 * server decides who answered first. A call that ended is taken off the panel. */
(function () {
  const panel = document.getElementById("intercom");
  if (!panel) return;
  const text = panel.dataset;
  const guard = text.mode === "guard";
  const statuses = JSON.parse(text.statuses || "{}");
  const empty = document.getElementById("intercom-empty");
  let lastEventId = "";
  let stream = null;

  function shown(call) {
    return guard ? call.live : call.status === "ringing";
  }

  const title = document.title;

  function refresh() {
    const any = panel.querySelector("[data-call]") !== null;
    if (guard) {
      if (empty) empty.hidden = any;
      return;
    }
    panel.hidden = !any;
    // A phone shows the ring in its tab's title too: the door of the newest call still ringing.
    const ringing = panel.querySelectorAll('[data-call][data-status="ringing"]:not([data-answered="yes"])');
    document.title = ringing.length
      ? `${text.textTitle.replace("DOOR", ringing[ringing.length - 1].dataset.door)} · ${title}`
      : title;
  }

  function element(tag, attributes, content) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(function ([name, value]) { node.setAttribute(name, value); });
    if (content !== undefined) node.textContent = content;
    return node;
  }

  function build(call) {
    const card = element("article", {"class": "card intercom-call", "data-call": call.id, "data-door": call.door});
    card.append(element("h2", {}, text.textTitle.replace("DOOR", call.door)));
    const unit = element("p", {"class": "muted"}, text.textUnit.replace("UNIT", call.unit) + " · ");
    unit.append(element("span", {"class": "pill call-status"}, statuses[call.status] || call.status));
    card.append(unit);
    if (call.has_snapshot) {
      card.append(element("img", {
        "class": "intercom-snapshot", "src": text.snapshot.replace("CALL", encodeURIComponent(call.id)),
        "alt": text.textSnapshot, "width": "320", "height": "240",
      }));
    }
    const form = element("form", {
      "method": "post", "class": "intercom-answer",
      "action": text.answer.replace("CALL", encodeURIComponent(call.id)),
    });
    form.append(element("input", {"type": "hidden", "name": "csrf_token", "value": text.csrf}));
    form.append(element("input", {"type": "hidden", "name": "next", "value": text.next}));
    form.append(element("button", {"type": "submit", "name": "action", "value": "open", "class": "primary"}, text.textOpen));
    form.append(element("button", {"type": "submit", "name": "action", "value": "refuse"}, text.textRefuse));
    card.append(form);
    card.append(element("p", {"class": "intercom-outcome", "role": "status"}));
    return card;
  }

  function update(call) {
    let card = panel.querySelector(`[data-call="${CSS.escape(call.id)}"]`);
    if (!card) {
      if (!shown(call)) return;
      card = build(call);
      panel.append(card);
      if (!guard && navigator.vibrate) navigator.vibrate([400, 200, 400]);
    }
    card.dataset.status = call.status;
    const pill = card.querySelector(".call-status");
    if (pill) pill.textContent = statuses[call.status] || call.status;
    if (!shown(call) && card.dataset.answered !== "yes") card.remove();
    refresh();
  }

  panel.addEventListener("submit", function (event) {
    const form = event.target;
    const card = form.closest("[data-call]");
    if (!card || !window.fetch) return;  // no script: the form posts itself
    event.preventDefault();
    const data = new FormData(form);
    data.set("action", event.submitter ? event.submitter.value : "open");
    const outcome = card.querySelector(".intercom-outcome");
    // Answered here: the card stays for the answer's words, even when the call's end comes
    // over the stream before the answer does.
    card.dataset.answered = "yes";
    refresh();
    form.querySelectorAll("button").forEach(function (button) { button.disabled = true; });
    // form.action would be the buttons named "action": read the attribute.
    fetch(form.getAttribute("action"), {method: "POST", body: data, credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        outcome.textContent = answer.message || text.textEnded;
        form.hidden = true;
        // On a resident's page the banner leaves the top of the screen once its answer was read.
        if (!guard) {
          setTimeout(function () {
            card.remove();
            refresh();
          }, 10000);
        }
      })
      .catch(function () {
        card.dataset.answered = "";
        outcome.textContent = text.textFailed;
        form.querySelectorAll("button").forEach(function (button) { button.disabled = false; });
        refresh();
      });
  });

  function connect() {
    if (!text.stream || !window.EventSource) return;
    if (stream) stream.close();
    const target = new URL(text.stream, window.location.href);
    if (lastEventId) target.searchParams.set("last_event_id", lastEventId);
    const source = new EventSource(target.toString(), {withCredentials: true});
    stream = source;
    source.addEventListener("intercom", function (event) {
      if (event.lastEventId) lastEventId = event.lastEventId;
      try {
        update(JSON.parse(event.data));
      } catch (error) {
        // a malformed message: skip it
      }
    });
    // A newer page of the same account rings now (a page left behind, another tab): this
    // one follows again when it is looked at.
    source.addEventListener("replaced", function () {
      source.close();
      if (stream === source) stream = null;
      panel.dataset.live = "replaced";
    });
    source.addEventListener("open", function () { panel.dataset.live = "yes"; });
    source.addEventListener("error", function () {
      panel.dataset.live = "no";
      if (source.readyState === EventSource.CLOSED && stream === source) setTimeout(connect, 15000);
    });
  }

  window.addEventListener("pagehide", function () { if (stream) stream.close(); stream = null; });
  window.addEventListener("pageshow", function (event) { if (event.persisted && !stream) connect(); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && !stream) connect();
  });
  refresh();
  connect();
})();
