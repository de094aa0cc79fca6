/* On every page (base.html): a form with data-confirm="question" asks before it is sent.
 * It replaces inline onsubmit="return confirm(...)" handlers, which the
 * Content-Security-Policy (server/core/headers.py) does not run; the question stays text
 * in an attribute, never script. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
})();
