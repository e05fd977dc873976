// traceway central: small progressive enhancements; every page works without them.
"use strict";

// Lineage trees: load a level when it is opened (the fragment is server-rendered HTML).
async function loadLevel(details) {
  if (details.dataset.loaded) return;
  details.dataset.loaded = "1";
  const body = details.querySelector(":scope > .tree-body");
  body.textContent = "loading…";
  try {
    const resp = await fetch(details.dataset.src, { credentials: "same-origin" });
    if (!resp.ok) throw new Error(resp.status + " " + resp.statusText);
    body.innerHTML = await resp.text();
    wireTrees(body);
  } catch (err) {
    body.textContent = "could not load: " + err.message;
    delete details.dataset.loaded;
  }
}

function wireTrees(root) {
  root.querySelectorAll("details.tree[data-src]").forEach((d) => {
    d.addEventListener("toggle", () => { if (d.open) loadLevel(d); });
  });
}

// Push status of a recall: refresh while a gateway is still pending.
function watchPush() {
  const box = document.getElementById("push");
  if (!box) return;
  const tick = async () => {
    const table = box.querySelector("#push-status");
    if (table && table.dataset.pending === "0") return;
    try {
      const resp = await fetch(box.dataset.src, { credentials: "same-origin" });
      if (resp.ok) box.innerHTML = await resp.text();
    } catch (err) { /* offline for a moment: try again */ }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  wireTrees(document);
  watchPush();
});
