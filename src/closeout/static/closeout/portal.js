/* Small progressive enhancements; every page works without them. */
(function () {
  "use strict";

  function luhnOk(digits) {
    var sum = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = digits.charCodeAt(digits.length - 1 - i) - 48;
      if (i % 2 === 1) { d *= 2; if (d > 9) { d -= 9; } }
      sum += d;
    }
    return sum % 10 === 0;
  }

  // Card number: check length and Luhn check digit as the customer types.
  function watchCardNumber(input) {
    var live = document.getElementById("card-number-live");
    if (!live) { return; }
    function check() {
      // Full-width digits (Chinese and Japanese keyboards) count as digits, as on the server.
      var digits = input.value.replace(/[\uFF10-\uFF19]/g, function (c) {
        return String.fromCharCode(c.charCodeAt(0) - 0xFEE0);
      }).replace(/[\s\uFF0D-]/g, "");
      var message = "", state = "";
      if (digits.length === 0) {
        message = "";
      } else if (!/^[0-9]+$/.test(digits) || digits.length > 20) {
        message = live.dataset.bad; state = "bad";
      } else if ([16, 19, 20].indexOf(digits.length) < 0) {
        message = live.dataset.short;
      } else if (luhnOk(digits)) {
        message = live.dataset.ok; state = "ok";
      } else {
        message = live.dataset.bad; state = "bad";
      }
      live.textContent = message;
      live.className = "live " + state;
      if (state === "bad") { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
    }
    // After a refused submit the server's message stands alone until the customer types again.
    var field = input.closest(".field");
    var refused = field ? Array.prototype.slice.call(field.querySelectorAll("p.error")) : [];
    input.addEventListener("input", function () {
      refused.forEach(function (p) {
        p.hidden = true;
        // A hidden message is still read out when named by aria-describedby: stop naming it.
        var described = (input.getAttribute("aria-describedby") || "").split(/\s+/);
        input.setAttribute("aria-describedby", described.filter(function (id) { return id && id !== p.id; }).join(" "));
      });
      refused = [];
      live.hidden = false;
      check();
    });
    if (refused.length === 0) { check(); } else { live.hidden = true; }
  }

  // A form marked data-once is sent once: a double click or Enter twice does not send it again.
  function sendOnce(form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent === "1") { event.preventDefault(); return; }
      form.dataset.sent = "1";
      var buttons = form.querySelectorAll("button[type=submit]");
      for (var i = 0; i < buttons.length; i++) { buttons[i].setAttribute("aria-disabled", "true"); buttons[i].classList.add("busy"); }
    });
  }

  // Refund destination: show only the fields of the chosen destination.
  function destinationFields(form) {
    var radios = form.querySelectorAll("input[name=destination]");
    if (!radios.length) { return; }
    function sync() {
      var chosen = form.querySelector("input[name=destination]:checked");
      var value = chosen ? chosen.value : "";
      var parts = form.querySelectorAll("[data-when]");
      for (var i = 0; i < parts.length; i++) {
        var show = parts[i].dataset.when === value;
        parts[i].hidden = !show;
        var inputs = parts[i].querySelectorAll("input, select");
        for (var j = 0; j < inputs.length; j++) { inputs[j].disabled = !show; }
      }
    }
    for (var i = 0; i < radios.length; i++) { radios[i].addEventListener("change", sync); }
    sync();
  }

  // The list of refused fields at the top: a link puts the focus in its field, where a fragment
  // link would only scroll to it.
  function summaryLinks(summary) {
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[href^='#']");
      var field = link && document.getElementById(link.getAttribute("href").slice(1));
      if (!field) { return; }
      event.preventDefault();
      field.focus();
      field.scrollIntoView({block: "center"});
    });
  }

  // Browsers restore pages from the back/forward cache with the "sent" state: reset it.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    var forms = document.querySelectorAll("form[data-once]");
    for (var i = 0; i < forms.length; i++) { delete forms[i].dataset.sent; }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var cards = document.querySelectorAll("input[data-luhn]");
    for (var i = 0; i < cards.length; i++) { watchCardNumber(cards[i]); }
    var once = document.querySelectorAll("form[data-once]");
    for (var j = 0; j < once.length; j++) { sendOnce(once[j]); }
    var confirm = document.getElementById("confirm-form");
    if (confirm) { destinationFields(confirm); }
    var summary = document.querySelector(".error-summary");
    if (summary) { summaryLinks(summary); }
  });
})();
