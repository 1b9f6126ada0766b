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

// --- warehouse scanning -----------------------------------------------------------------------
// A scan is sent without leaving the page: the field is emptied at once and keeps the cursor, so
// the scanner's next code goes straight in (none is lost while a page loads), scans are sent one
// after the other in the order they were made, and each answer is shown and heard: one high beep
// for a card received, two for one scanned before, a low tone for the exception queue, three low
// beeps for a scan to do again. Without scripts the form is sent as a page, as before.
const TONES = { // [frequency in Hz, length in ms] of each beep
  "scan-ok": [[880, 120]],
  "scan-again": [[660, 90], [660, 90]],
  "scan-exception": [[220, 450]],
  "scan-error": [[200, 110], [200, 110], [200, 110]],
};
let audio = null;

// Browsers let a page make a sound only after a key press or a click on it: a scanner's keys count.
function hearing() {
  if (!audio && window.AudioContext) {
    audio = new AudioContext();
  }
  if (audio && audio.state === "suspended") {
    audio.resume();
  }
}
document.addEventListener("keydown", hearing);
document.addEventListener("pointerdown", hearing);

function sound(kind) {
  const tones = TONES[kind];
  hearing();
  if (!tones || !audio) {
    return;
  }
  let at = audio.currentTime;
  for (const [frequency, length] of tones) {
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.type = kind === "scan-ok" ? "sine" : "square";
    oscillator.frequency.value = frequency;
    gain.gain.value = 0.2;
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start(at);
    oscillator.stop(at + length / 1000);
    at += (length + 80) / 1000;
  }
}

function scanKind(root) {
  const answer = root.querySelector(".messages [data-kind^='scan-']");
  return answer ? answer.dataset.kind : "";
}

let scans = Promise.resolve();

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form[data-scan-form]") || !window.fetch || !window.DOMParser) {
    return;
  }
  event.preventDefault();
  event.stopPropagation(); // sent here, not as a page: the form stays ready for the next scan
  const body = new FormData(form);
  const url = form.action;
  form.elements.code.value = "";
  form.elements.card_number.value = "";
  form.elements.code.focus();
  scans = scans.then(() => sendScan(url, body)).catch(() => showScanFailure());
}, true);

async function sendScan(url, body) {
  const answer = await fetch(url, { method: "POST", body, credentials: "same-origin" });
  const page = new DOMParser().parseFromString(await answer.text(), "text/html");
  const lists = page.getElementById("warehouse-lists");
  if (!answer.ok || !lists) { // signed out meanwhile, or the server failed: show its page
    window.location.assign(answer.url);
    return;
  }
  const main = document.querySelector("main");
  main.querySelectorAll(".messages").forEach((old) => old.remove());
  const told = page.querySelector("main .messages");
  if (told) {
    main.prepend(document.importNode(told, true));
  }
  refreshLists(lists);
  offerSelectAll(document);
  const form = document.querySelector("form[data-scan-form]");
  const asked = page.querySelector("form[data-scan-form]");
  if (asked.querySelector(".errorlist")) { // the server's word on the form itself (e.g. far too long)
    form.replaceWith(document.importNode(asked, true));
    document.querySelector("form[data-scan-form] [autofocus]").focus();
  } else if (asked.elements.code.value) { // a typed reference: it stays, the card number is asked for
    form.elements.code.value = asked.elements.code.value;
    form.elements.card_number.focus();
  }
  sound(scanKind(document));
}

// Each answer brings the lists (data-list) up to date, and only them: the destruction batch form
// the supervisor may be filling in meanwhile keeps its method, batch and witness, the cards they
// ticked that may still go stay ticked (a new card arrives unticked), what was typed in a card's
// hand-back form stays, and the cursor stays put.
function refreshLists(fresh) {
  const here = document.getElementById("warehouse-lists");
  const parts = [...fresh.querySelectorAll("[data-list]")];
  const old = parts.map((part) => here.querySelector(`[data-list="${part.dataset.list}"]`));
  if (old.includes(null) || here.querySelectorAll("[data-list]").length !== parts.length) {
    here.replaceWith(document.importNode(fresh, true)); // another page than this one: take it whole
    return;
  }
  const ticked = new Set([...here.querySelectorAll("input[name='checkin']:checked")].map((box) => box.value));
  const focused = here.contains(document.activeElement) ? document.activeElement.id : "";
  const typed = new Map([...here.querySelectorAll("[data-list] form input[id]:not([type=hidden]), [data-list] form select[id]")]
    .map((field) => [field.id, field.value]));
  parts.forEach((part, index) => old[index].replaceWith(document.importNode(part, true)));
  here.querySelectorAll("input[name='checkin']").forEach((box) => { box.checked = ticked.has(box.value); });
  typed.forEach((value, id) => {
    const field = document.getElementById(id);
    if (field && here.contains(field)) {
      field.value = value;
    }
  });
  const back = focused && document.getElementById(focused);
  if (back && back !== document.activeElement) {
    back.focus();
  }
}

function showScanFailure() {
  const main = document.querySelector("main");
  main.querySelectorAll(".messages").forEach((old) => old.remove());
  const list = document.createElement("ul");
  list.className = "messages";
  const item = document.createElement("li");
  item.className = "error";
  item.dataset.kind = "scan-error";
  item.setAttribute("role", "status");
  item.textContent = document.querySelector("form[data-scan-form]").dataset.failed;
  list.append(item);
  main.prepend(list);
  sound("scan-error");
}

// A page that opens with a scan's answer (sent without scripts' help) sounds it too.
document.addEventListener("DOMContentLoaded", () => sound(scanKind(document)));

// --- destruction batch ------------------------------------------------------------------------
// No card is ticked for destruction on arrival: the supervisor ticks each one, or asks for all
// those that may be destroyed with the button (shown only where scripts run). Cards to keep for
// the customer have no box to tick.
function offerSelectAll(root) {
  root.querySelectorAll("[data-select-all]").forEach((button) => {
    button.hidden = !button.form.querySelector("input[name='checkin']");
  });
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-select-all]");
  if (button) {
    button.form.querySelectorAll("input[name='checkin']").forEach((box) => { box.checked = true; });
  }
});

document.addEventListener("DOMContentLoaded", () => offerSelectAll(document));
