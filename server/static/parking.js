/* The cars page's temporary cars (_parking_waiting.html), live: static/live.js follows the
 * community's parking feed, and when a ticket changes (a car let in, held at the exit with a
 * fee, paid, gone) the card is fetched again from the server (?part=parking: the same rows,
 * fees and buttons a reload shows) and put in place. Changes that arrive while a fetch is
 * under way are taken in by one more fetch after it. */
(function () {
  let busy = false;
  let again = false;

  function refresh() {
    const card = document.getElementById("parking");
    if (!card) return;
    if (busy) { again = true; return; }
    busy = true;
    again = false;
    fetch(card.dataset.source, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html === null) return;
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("parking");
        if (fresh) card.replaceWith(fresh);
      })
      .catch(function () { /* the next change, or a reload, brings them */ })
      .then(function () {
        busy = false;
        if (again) refresh();
      });
  }

  document.addEventListener("gk:live", function (event) {
    if (event.detail.type === "parking") refresh();
  });
})();
