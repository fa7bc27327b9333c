// hookpost dashboard: copy buttons and the delivery log's live rows. No inline script
// anywhere (the CSP allows this file only); the rows come as HTML the server escaped.
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  const status = document.getElementById(button.dataset.copy + "-copied");
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    if (status) status.textContent = "Copied";
  } catch (err) {
    // No clipboard (an insecure context): select the text so Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (status) status.textContent = "Selected: press Ctrl+C";
  }
});

const POLL_MS = 2000;

// The first page of a log polls its rows and swaps them in when they changed: new
// deliveries appear on top and a PENDING one turns SUCCEEDED or DEAD, without a reload.
// Not while a row has the keyboard focus: the swap would take it away.
function startPolling(tbody) {
  let last = tbody.innerHTML.trim();
  async function poll() {
    try {
      const response = await fetch(tbody.dataset.poll, { credentials: "same-origin" });
      if (response.ok && !tbody.contains(document.activeElement)) {
        const html = (await response.text()).trim();
        if (html !== last) {
          tbody.innerHTML = html;
          last = html;
          const empty = document.querySelector(".empty");
          if (empty && html) empty.remove();
        }
      }
    } catch (err) {
      // The api restarting or the network gone: try again at the next tick.
    }
    window.setTimeout(poll, POLL_MS);
  }
  window.setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  const tbody = document.getElementById("log-rows");
  if (tbody && tbody.dataset.poll) startPolling(tbody);
});
