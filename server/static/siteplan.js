/* The site page's plan (templates/_site_plan.html): "Place on the plan" beside an access
 * point or a device, then a click on the plan fills that row's form with the spot, as
 * fractions of the picture's width and height from the top left, and sends it. Without
 * this script the same forms take the numbers typed. */
(function () {
  "use strict";

  var section = document.querySelector("[data-site-plan]");
  var svg = section && section.querySelector("svg.site-plan");
  if (!svg) return;
  var picture = svg.querySelector("image.plan-picture");
  var status = section.querySelector("[data-place-status]");
  var chosen = null;

  section.querySelectorAll("form.plan-place").forEach(function (form) {
    var button = form.querySelector(".place-button");
    if (!button) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      if (chosen) chosen.closest("tr").classList.remove("placing");
      chosen = form;
      form.closest("tr").classList.add("placing");
      section.classList.add("placing");
      status.textContent = status.dataset.prompt.replace("{name}", form.dataset.name);
      svg.scrollIntoView({ block: "nearest" });
    });
  });

  svg.addEventListener("click", function (event) {
    if (!chosen) return;
    var box = picture.getBoundingClientRect();
    var x = (event.clientX - box.left) / box.width;
    var y = (event.clientY - box.top) / box.height;
    if (x < 0 || x > 1 || y < 0 || y > 1) return; // the legend below the picture
    chosen.elements.plan_x.value = x.toFixed(4);
    chosen.elements.plan_y.value = y.toFixed(4);
    chosen.submit();
  });
})();
