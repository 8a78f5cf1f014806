// Fills the status page from status.json every second. Only textContent and
// attributes are set: nothing from the server is ever parsed as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const set = (id, text) => { $(id).textContent = text; };
  let qrURL = "";

  // size shows the code at a whole multiple of its size (up to about 400 px), so
  // every module stays square and sharp and a phone reads it from the screen.
  // data-shown tells which code is on screen, fully loaded and sized.
  function size(img) {
    const w = img.naturalWidth;
    if (!img.complete || w === 0) return;
    img.style.width = w * Math.max(1, Math.floor(400 / w)) + "px";
    img.dataset.shown = qrURL;
  }
  $("qr").addEventListener("load", (e) => size(e.target));

  // since tells how long the state has held, by the bridge's clock (v.time),
  // so a browser whose clock is off still reads it right.
  function since(iso, now) {
    if (!iso) return "";
    const s = Math.max(0, Math.round((Date.parse(now) - Date.parse(iso)) / 1000));
    if (s < 120) return "for " + s + " s";
    if (s < 7200) return "for " + Math.round(s / 60) + " min";
    return "for " + Math.round(s / 3600) + " h";
  }

  function render(v) {
    document.body.dataset.state = v.state || "";
    document.title = "qqbridge " + (v.prefix || "") + ": " + (v.state || "unknown");
    set("prefix", v.prefix || "");
    set("state", v.state || "unknown");
    set("since", since(v.since, v.time));
    set("reason", v.reason || "");
    set("account", v.account ? String(v.account) : "—");
    set("leader", v.leader ? v.leader + (v.is_leader ? " (this replica)" : "") : "none");
    set("replica", v.replica || "—");
    set("nats", v.nats || "—");

    const box = $("qr-box"), img = $("qr");
    if (v.qr) {
      if (v.qr !== qrURL) { qrURL = v.qr; img.src = v.qr; }
      size(img);
      set("qr-expires", v.qr_expires ? "expires at " + new Date(v.qr_expires).toLocaleTimeString() : "");
      box.hidden = false;
    } else {
      box.hidden = true;
      if (qrURL) { img.removeAttribute("src"); delete img.dataset.shown; qrURL = ""; }
    }

    const rows = document.createDocumentFragment();
    for (const c of v.counters || []) {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      const n = document.createElement("td");
      name.textContent = c.name;
      n.textContent = String(c.value);
      n.className = "n";
      tr.append(name, n);
      rows.append(tr);
    }
    $("counters").replaceChildren(rows);
    $("counters-box").hidden = !(v.counters && v.counters.length);
  }

  async function tick() {
    try {
      const r = await fetch("status.json", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      render(await r.json());
      $("conn").className = "dim";
      set("conn", "updated " + new Date().toLocaleTimeString());
    } catch (e) {
      $("conn").className = "err";
      set("conn", "bridge not reachable (" + e.message + "); retrying");
    } finally {
      setTimeout(tick, 1000);
    }
  }
  tick();
})();
