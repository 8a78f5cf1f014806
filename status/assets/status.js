// Fills the status page from status.json every second: one article per
// account, the first one (the page's own, with the element ids) for the first
// account, clones of it (without ids) for the others. Only textContent and
// attributes are set: nothing from the server is ever parsed as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const set = (id, text) => { $(id).textContent = text; };
  const main = $("accounts");
  const first = main.querySelector("article.account");
  // The pristine form of an article, before any rendering, without ids.
  const blank = first.cloneNode(true);
  for (const el of blank.querySelectorAll("[id]")) el.removeAttribute("id");
  const others = new Map(); // prefix → article of an account after the first

  const field = (art, name) => art.querySelector('[data-f="' + name + '"]');

  // size shows the code at a whole multiple of its size (up to about 400 px), so
  // every module stays square and sharp and a phone reads it from the screen.
  // data-shown tells which code is on screen, fully loaded and sized.
  function size(img) {
    const w = img.naturalWidth;
    if (!img.complete || w === 0 || !img.getAttribute("src")) return;
    img.style.width = w * Math.max(1, Math.floor(400 / w)) + "px";
    img.dataset.shown = img.getAttribute("src");
  }
  function watch(art) {
    field(art, "qr").addEventListener("load", (e) => size(e.target));
    return art;
  }
  watch(first);

  // since tells how long ago iso was, by the bridge's clock (v.time), so a
  // browser whose clock is off still reads it right.
  function ago(iso, now) {
    const s = Math.max(0, Math.round((Date.parse(now) - Date.parse(iso)) / 1000));
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return Math.round(s / 3600) + " h";
  }
  const since = (iso, now) => (iso ? "for " + ago(iso, now) : "");

  function renderAccount(art, a, now, many) {
    const f = (name) => field(art, name);
    const img = f("qr");
    if (art.dataset.prefix !== (a.prefix || "")) {
      // the article shows another account now: forget the old one's code
      img.removeAttribute("src");
      delete img.dataset.shown;
      art.dataset.prefix = a.prefix || "";
    }
    art.dataset.state = a.state || "";
    f("name").textContent = a.prefix || "";
    f("name").hidden = !many;
    f("state").textContent = a.state || "unknown";
    f("since").textContent = since(a.since, now);
    f("reason").textContent = a.reason || "";
    f("account").textContent = a.account ? String(a.account) : "—";
    f("leader").textContent = a.leader ? a.leader + (a.is_leader ? " (this replica)" : "") : "none";
    f("last-event").textContent = a.last_event ? ago(a.last_event, now) + " ago" : "—";

    const box = f("qr-box");
    if (a.qr) {
      if (img.getAttribute("src") !== a.qr) img.src = a.qr;
      size(img);
      f("qr-expires").textContent = a.qr_expires ? "expires at " + new Date(a.qr_expires).toLocaleTimeString() : "";
      box.hidden = false;
    } else {
      box.hidden = true;
      if (img.getAttribute("src")) { img.removeAttribute("src"); delete img.dataset.shown; }
    }

    const rows = document.createDocumentFragment();
    for (const c of a.counters || []) {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      const n = document.createElement("td");
      name.textContent = c.name;
      n.textContent = String(c.value);
      n.className = "n";
      tr.append(name, n);
      rows.append(tr);
    }
    f("counters").replaceChildren(rows);
    f("counters-box").hidden = !(a.counters && a.counters.length);
  }

  function render(v) {
    const accts = v.accounts && v.accounts.length ? v.accounts : [v];
    const many = accts.length > 1;
    document.body.dataset.state = accts[0].state || "";
    if (many) {
      const online = accts.filter((a) => a.state === "online").length;
      document.title = "qqbridge: " + accts.length + " accounts, " + online + " online";
      set("prefix", accts.length + " accounts");
    } else {
      document.title = "qqbridge " + (accts[0].prefix || "") + ": " + (accts[0].state || "unknown");
      set("prefix", accts[0].prefix || "");
    }
    set("replica", v.replica || "—");
    set("nats", v.nats || "—");

    const want = [first];
    const seen = new Set();
    accts.forEach((a, i) => {
      let art = first;
      if (i > 0) {
        art = others.get(a.prefix);
        if (!art) { art = watch(blank.cloneNode(true)); others.set(a.prefix, art); }
        want.push(art);
        seen.add(a.prefix);
      }
      renderAccount(art, a, v.time, many);
    });
    for (const [p, art] of others) {
      if (!seen.has(p)) { art.remove(); others.delete(p); }
    }
    want.forEach((art, i) => {
      if (main.children[i] !== art) main.insertBefore(art, main.children[i] || null);
    });
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
