// A console form whose effect cannot be undone (data-confirm="question") asks before it is sent.
// A form is sent once: a double click, or a scanner's second Enter, while the page is still on
// its way is dropped instead of deciding, destroying or checking in a second time.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.sending) {
    event.preventDefault();
    return;
  }
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  form.dataset.sending = "yes";
  form.setAttribute("aria-busy", "true");
  // An answer that never comes (the network dropped it) must not block the form for good.
  window.setTimeout(() => ready(form), 10000);
});

function ready(form) {
  delete form.dataset.sending;
  form.removeAttribute("aria-busy");
}

// Back to a page kept in the browser's history: its forms can be sent again.
window.addEventListener("pageshow", () => {
  document.querySelectorAll("form[data-sending]").forEach(ready);
});
