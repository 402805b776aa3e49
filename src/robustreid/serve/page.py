"""The search page served at ``/``: drop a crop (or pick a file), see the ranked gallery with scores and
thumbnails. One self-contained HTML document: inline CSS and script, no external resources."""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>robustreid search</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #222; }
  header { background: #23395d; color: #fff; padding: 10px 20px; }
  header h1 { font-size: 18px; margin: 0; display: inline-block; }
  header span { margin-left: 16px; opacity: .85; }
  main { padding: 16px 20px; }
  #drop { border: 2px dashed #8899aa; border-radius: 8px; padding: 22px; text-align: center; background: #fff;
          cursor: pointer; }
  #drop.over { background: #e8f0ff; border-color: #3366cc; }
  #controls { margin: 10px 0; }
  #status { margin: 8px 0; min-height: 1.4em; }
  #status.error { color: #b00020; font-weight: 600; }
  #query img { height: 160px; border: 3px solid #23395d; border-radius: 4px; }
  #results { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 10px; }
  figure.match { margin: 0; background: #fff; border-radius: 6px; padding: 6px; width: 96px; text-align: center;
                 box-shadow: 0 1px 3px rgba(0,0,0,.15); }
  figure.match img { height: 128px; max-width: 90px; object-fit: contain; background: #ddd; }
  figure.match figcaption { font-size: 12px; }
  .rank { font-weight: 700; }
</style>
</head>
<body>
<header><h1>robustreid search</h1><span id="model">model …</span><span id="gallery">gallery …</span></header>
<main>
  <div id="drop">Drop a person crop here, or choose a file:
    <input id="file" type="file" accept="image/jpeg,image/png,image/bmp,image/webp">
  </div>
  <div id="controls">top <input id="k" type="number" min="1" max="100" value="10" style="width:4em"> matches</div>
  <div id="status" role="status"></div>
  <div id="query"></div>
  <div id="results"></div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
function setStatus(text, error) {
  const s = $("status"); s.textContent = text; s.className = error ? "error" : "";
}
async function loadHealth() {
  try {
    const h = await (await fetch("health")).json();
    $("model").textContent = "model " + h.model.short + " (" + h.model.backend + ")";
    $("gallery").textContent = "gallery " + h.index.rows + " crops (" + h.index.kind + ")";
  } catch (e) { setStatus("service unreachable: " + e, true); }
}
function render(name, file, data) {
  const q = $("query"); q.innerHTML = "";
  const img = document.createElement("img"); img.src = URL.createObjectURL(file); img.alt = name; q.appendChild(img);
  const res = $("results"); res.innerHTML = "";
  const matches = data.results[0].matches;
  for (const m of matches) {
    const fig = document.createElement("figure"); fig.className = "match"; fig.dataset.id = m.id;
    const t = document.createElement("img"); t.alt = "gallery " + m.id;
    if (m.thumbnail) t.src = m.thumbnail;
    const cap = document.createElement("figcaption");
    cap.innerHTML = '<span class="rank">#' + m.rank + '</span> <span class="score">' + m.score.toFixed(3) +
      "</span><br>id " + (m.pid >= 0 ? m.pid : "?") + " · cam " + (m.camid >= 0 ? m.camid + 1 : "?");
    cap.title = m.path;
    fig.appendChild(t); fig.appendChild(cap); res.appendChild(fig);
  }
  setStatus(matches.length + " matches for " + name + " in " + (1000 * data.seconds).toFixed(0) + " ms");
}
async function search(file) {
  if (!file) return;
  setStatus("searching " + file.name + " …");
  $("results").innerHTML = "";
  const fd = new FormData(); fd.append("images", file, file.name);
  const k = Math.max(1, Math.min(100, parseInt($("k").value || "10", 10)));
  try {
    const r = await fetch("search?k=" + k + "&thumbnails=true", { method: "POST", body: fd });
    const data = await r.json();
    if (!r.ok) { setStatus("error " + r.status + ": " + data.detail, true); return; }
    render(file.name, file, data);
  } catch (e) { setStatus("search failed: " + e, true); }
}
const drop = $("drop");
drop.addEventListener("click", (e) => { if (e.target !== $("file")) $("file").click(); });
$("file").addEventListener("change", (e) => search(e.target.files[0]));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over");
                                       search(e.dataTransfer.files[0]); });
loadHealth();
</script>
</body>
</html>
"""
