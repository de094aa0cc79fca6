/* A live page's stream (templates/_live.html): one EventSource on the page's /live URL.
 * Each change it brings is handed to the page's own script as a "gk:live" event on the
 * document ({type: "command" | "device" | "car", data: the change}); the state pill says
 * whether the page is live, in the words of its data-text-* attributes. EventSource
 * reconnects by itself after a stream ends (with Last-Event-ID); after a refusal (503 when
 * the server has no stream to spare, a signed-out session) it says to reload and tries
 * again a little later, resuming from the last change seen. A hidden tab lets its stream go
 * and takes it up again when shown. */
(function () {
  const state = document.getElementById("live-state");
  if (!state || !state.dataset.liveStream || !window.EventSource) return;
  const events = (state.dataset.liveEvents || "").split(/\s+/).filter(Boolean);
  let lastEventId = "";
  let stream = null;
  let retry = null;

  function show(name) {
    state.dataset.state = name === "paused" ? "off" : name;
    state.textContent = state.dataset["text" + name[0].toUpperCase() + name.slice(1)] || name;
    state.hidden = false;
  }

  function url() {
    const target = new URL(state.dataset.liveStream, window.location.href);
    if (lastEventId) target.searchParams.set("last_event_id", lastEventId);
    return target.toString();
  }

  function connect() {
    clearTimeout(retry);
    if (stream) stream.close();
    show("connecting");
    stream = new EventSource(url(), { withCredentials: true }); // another port: the cookie too
    events.forEach(function (name) {
      stream.addEventListener(name, function (event) {
        if (event.lastEventId) lastEventId = event.lastEventId;
        let data;
        try {
          data = JSON.parse(event.data);
        } catch (error) {
          return; // a malformed message: skip it
        }
        document.dispatchEvent(new CustomEvent("gk:live", { detail: { type: name, data: data } }));
      });
    });
    stream.addEventListener("open", function () { show("live"); });
    stream.addEventListener("error", function () {
      if (stream.readyState === EventSource.CLOSED) {
        show("paused");
        retry = setTimeout(connect, 15000);
      } else {
        show("reconnecting");
      }
    });
  }

  function disconnect() {
    clearTimeout(retry);
    if (stream) stream.close();
    stream = null;
  }

  // A page may end its stream once nothing on it is waiting any more (the doors page).
  document.addEventListener("gk:live-done", function () {
    disconnect();
    state.hidden = true;
  });
  document.addEventListener("visibilitychange", function () {
    if (state.hidden && !stream) return;
    if (document.visibilityState === "hidden") disconnect();
    else if (!stream) connect();
  });
  window.addEventListener("pagehide", disconnect);
  window.addEventListener("pageshow", function (event) { if (event.persisted && !stream) connect(); });
  connect();
})();
