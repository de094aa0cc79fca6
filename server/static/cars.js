/* The cars page (cars.html), live: static/live.js follows the community's cars feed, and
 * when a car enters or leaves the "Inside now" card is fetched again from the server
 * (?part=inside: the same rows, counts and words a reload shows) and put in place. Changes
 * that arrive while a fetch is under way are taken in by one more fetch after it. */
(function () {
  const card = document.getElementById("inside");
  let busy = false;
  let again = false;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    again = false;
    fetch(card.dataset.source, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html === null) return;
        const fresh = new DOMParser().parseFromString(html, "text/html").body;
        card.replaceChildren(...fresh.childNodes);
      })
      .catch(function () { /* the next change, or a reload, brings them */ })
      .then(function () {
        busy = false;
        if (again) refresh();
      });
  }

  document.addEventListener("gk:live", function (event) {
    if (event.detail.type === "car") refresh();
  });
})();
