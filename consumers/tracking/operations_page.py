"""The operations page (``/operations``): the movement board and the backlog per stage, refreshed
every few seconds from the operations API with the key the page holds (see ``operations.py``).
Data is inserted as text, never as markup."""

from __future__ import annotations

from typing import Final

#: Columns of the board: (API field, header).
COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("expected", "expected"),
    ("arrived", "arrived"),
    ("in_import_customs", "in customs"),
    ("held", "held"),
    ("cleared", "cleared"),
    ("sorted", "sorted"),
    ("handed_to_last_mile", "last mile"),
    ("delivered", "delivered"),
    ("exceptions", "exceptions"),
)

PAGE: Final = (
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hub control room · parcelstream</title>
<link rel="stylesheet" href="/static/operations.css">
<script src="/static/operations.js" defer></script>
</head>
<body>
<header>
  <h1>Hub control room</h1>
  <p id="status" role="status">loading…</p>
</header>
<form id="key-form" hidden>
  <label>Operations key <input id="key" type="password" autocomplete="off"></label>
  <button type="submit">Use key</button>
</form>
<section>
  <h2>Backlog per stage</h2>
  <table id="backlog">
    <thead><tr><th>stage</th><th>parcels</th><th>oldest waiting</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<section>
  <h2>Inbound movements</h2>
  <div class="filters">
    <label>lane <input id="lane" placeholder="e.g. HGH-LGG" maxlength="40"></label>
    <label>state <select id="state">
      <option value="">all</option><option>planned</option><option>departed</option><option>arrived</option>
    </select></label>
    <button id="previous" type="button" disabled>newer</button>
    <button id="next" type="button" disabled>older</button>
  </div>
  <table id="movements">
    <thead><tr><th>movement</th><th>carrier</th><th>lane</th><th>state</th><th>departed</th><th>arrived</th>
    <th>age</th>"""
    + "".join(f"<th>{header}</th>" for _field, header in COLUMNS)
    + """</tr></thead>
    <tbody></tbody>
  </table>
</section>
</body>
</html>
"""
)

SCRIPT: Final = (
    """"use strict";
(function () {
  const REFRESH_MS = 3000;
  const COUNTS = """
    + "["
    + ", ".join(f'"{field}"' for field, _header in COLUMNS)
    + "]"
    + """;
  const $ = (id) => document.getElementById(id);
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("key")) {
    sessionStorage.setItem("operationsKey", fragment.get("key"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  let offset = 0;
  let nextOffset = null;

  async function get(path) {
    const response = await fetch(path, {
      headers: { "X-Operations-Key": sessionStorage.getItem("operationsKey") || "" },
      cache: "no-store",
    });
    if (response.status === 401 || response.status === 503) {
      $("key-form").hidden = false;
      throw new Error(response.status === 401 ? "missing or wrong operations key" : "operations API disabled");
    }
    if (!response.ok) throw new Error("the service answered " + response.status);
    return response.json();
  }
  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
  }
  function when(ms) {
    return ms == null ? "—" : new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }
  function duration(seconds) {
    const hours = Math.floor(seconds / 3600);
    if (hours >= 48) return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
    return hours + " h " + Math.floor((seconds % 3600) / 60) + " min";
  }
  function renderBacklog(backlog) {
    const body = $("backlog").tBodies[0];
    body.replaceChildren();
    for (const stage of backlog.stages) {
      const row = body.insertRow();
      row.dataset.stage = stage.stage;
      cell(row, stage.stage.replace(/_/g, " "));
      cell(row, String(stage.parcels), "number");
      cell(row, stage.parcels ? duration(stage.oldest_seconds) : "—", "number");
    }
  }
  function renderBoard(board) {
    const body = $("movements").tBodies[0];
    body.replaceChildren();
    for (const movement of board.movements) {
      const row = body.insertRow();
      row.dataset.movement = movement.movement;
      cell(row, movement.kind + " " + movement.movement_id);
      cell(row, movement.carrier);
      cell(row, movement.lane);
      cell(row, movement.state, "state-" + movement.state);
      cell(row, when(movement.departed_ms));
      cell(row, when(movement.arrived_ms));
      cell(row, duration(movement.age_seconds), "number");
      for (const field of COUNTS) {
        const td = document.createElement("td");
        td.textContent = String(movement[field]);
        td.className = "number";
        td.dataset.count = field;
        row.appendChild(td);
      }
    }
    if (!board.movements.length) {
      const row = body.insertRow();
      cell(row, "no movements" + (offset ? " on this page" : ""), "empty");
      row.cells[0].colSpan = 7 + COUNTS.length;
    }
    nextOffset = board.next_offset;
    $("next").disabled = nextOffset == null;
    $("previous").disabled = offset === 0;
  }
  async function refresh() {
    const params = new URLSearchParams({ limit: "20", offset: String(offset) });
    if ($("lane").value.trim()) params.set("lane", $("lane").value.trim().toUpperCase());
    if ($("state").value) params.set("state", $("state").value);
    try {
      const [board, backlog] = await Promise.all([
        get("/v1/operations/movements?" + params),
        get("/v1/operations/backlog"),
      ]);
      renderBoard(board);
      renderBacklog(backlog);
      $("status").textContent = "updated " + new Date().toLocaleTimeString();
      $("status").className = "";
    } catch (error) {
      $("status").textContent = error.message;
      $("status").className = "error";
    }
  }
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("operationsKey", $("key").value);
    $("key-form").hidden = true;
    refresh();
  });
  $("lane").addEventListener("change", () => { offset = 0; refresh(); });
  $("state").addEventListener("change", () => { offset = 0; refresh(); });
  $("next").addEventListener("click", () => { if (nextOffset != null) { offset = nextOffset; refresh(); } });
  $("previous").addEventListener("click", () => { offset = Math.max(0, offset - 20); refresh(); });
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
"""
)

STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d2630; background: #f6f7f9; }
header { display: flex; align-items: baseline; gap: 1.5rem; }
h1 { font-size: 1.4rem; margin: 0; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 0.5rem; }
table { border-collapse: collapse; background: #fff; font-size: 0.9rem; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid #e2e5ea; text-align: left; white-space: nowrap; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
td.state-arrived { color: #1a7f37; } td.state-departed { color: #0969da; } td.state-planned { color: #6e7781; }
.filters { display: flex; gap: 1rem; align-items: center; margin-bottom: 0.5rem; }
#status.error { color: #cf222e; font-weight: 600; }
td.empty { color: #6e7781; font-style: italic; }
"""
