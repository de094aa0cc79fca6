/* Enrolment (person_new.html): shows only the parts of the form the chosen role needs
 * (all of it without JavaScript). */
(function () {
  const role = document.getElementById("role");
  function sync() {
    for (const part of document.querySelectorAll("[data-for-role]")) {
      part.hidden = !part.dataset.forRole.split(" ").includes(role.value);
    }
  }
  role.addEventListener("change", sync);
  sync();
})();
