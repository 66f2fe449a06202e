// The studio's page behaviour, from a static file: the Content-Security-Policy allows no inline script.
(() => {
  // Upload progress from htmx's XHR events (bytes sent of the whole request).
  document.addEventListener("htmx:xhr:progress", (event) => {
    const bar = document.getElementById("upload-progress");
    if (!bar || !event.detail.lengthComputable) return;
    bar.hidden = false;
    bar.value = Math.round((100 * event.detail.loaded) / event.detail.total);
  });

  // The nav at phone width: a Menu button opens and closes it; Escape closes it.
  const setMenu = (open) => {
    const header = document.querySelector("header.top");
    const toggle = header && header.querySelector(".menu-toggle");
    if (!toggle) return;
    header.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  document.addEventListener("click", (event) => {
    const toggle = event.target.closest(".menu-toggle");
    if (toggle) setMenu(toggle.getAttribute("aria-expanded") !== "true");
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") setMenu(false);
  });

  document.addEventListener("click", (event) => {
    // "Use <method>" on the job form: pick the recommended method, as choosing it in the list would.
    const button = event.target.closest("[data-use-method]");
    if (!button) return;
    const select = document.getElementById("id_method");
    select.value = button.dataset.useMethod;
    htmx.trigger(select, "change");
  });

  document.addEventListener("submit", (event) => {
    // A form that destroys something asks first: <form data-confirm="Delete ...?">.
    const message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // A form that came back with errors: its summary takes the focus, so the reader starts at what to fix.
  document.addEventListener("DOMContentLoaded", () => {
    const summary = document.getElementById("error-summary");
    if (summary) summary.focus();
  });
  document.addEventListener("click", (event) => {
    // A summary's link moves the focus into its field, not just the scroll position.
    const link = event.target.closest("#error-summary a[href^='#']");
    const field = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    event.preventDefault();
    // A field inside a closed <details> (Advanced, Start from) cannot take the focus until it opens.
    const details = field.closest("details");
    if (details) details.open = true;
    field.scrollIntoView({ block: "center" });
    field.focus();
  });

  document.addEventListener("change", (event) => {
    // The team switcher submits as soon as a team is chosen.
    if (event.target.matches("select[data-submit-on-change]")) event.target.form.requestSubmit();
  });
})();
