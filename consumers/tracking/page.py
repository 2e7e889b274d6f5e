"""The customer tracking page: one HTML shell, a small vanilla script and a style sheet, no build step.

The server puts no parcel data into the HTML: the page configuration (language, strings, the
tracking number as typed) travels as JSON in a non-executed ``<script type="application/json">``
with ``<``, ``>`` and ``&`` escaped, and the script writes every value with ``textContent``. The
Content-Security-Policy allows scripts from this origin only, so injected markup could not run anyway.
"""

from __future__ import annotations

import html
import json
from typing import Any, Final

SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    # The token is in the page URL: never send it to another site.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _script_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(*, language: str, title: str, tracking_number: str, valid: bool, catalog: dict[str, Any]) -> str:
    config = {"lang": language, "trackingNumber": tracking_number, "valid": valid, "catalog": catalog}
    return f"""<!doctype html>
<html lang="{html.escape(language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="/static/track.css">
</head>
<body>
<main>
<h1 id="title"></h1>
<p class="tracking-number"><span id="label-tracking-number"></span> <strong id="tracking-number"></strong></p>
<p id="message" role="status"></p>
<section id="parcel" hidden>
<p class="status"><span id="label-status"></span> <strong id="status"></strong> <span id="on-time"></span></p>
<dl>
<dt id="label-location"></dt><dd id="location"></dd>
<dt id="label-estimated-delivery"></dt><dd id="estimated-delivery"></dd>
</dl>
<h2 id="label-history"></h2>
<ol id="history"></ol>
</section>
<p id="live" class="live"></p>
</main>
<script type="application/json" id="page-config">{_script_json(config)}</script>
<script src="/static/track.js"></script>
</body>
</html>
"""


SCRIPT: Final = r"""
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const strings = config.catalog.strings;
  const statusNames = config.catalog.statuses;
  const byId = (id) => document.getElementById(id);
  const setText = (id, text) => { byId(id).textContent = text; };

  document.title = strings.page_title;
  setText("title", strings.page_title);
  setText("label-tracking-number", strings.tracking_number);
  setText("tracking-number", config.trackingNumber);
  setText("label-status", strings.status);
  setText("label-location", strings.last_location);
  setText("label-estimated-delivery", strings.estimated_delivery);
  setText("label-history", strings.history);
  if (!config.valid) {
    setText("message", strings.malformed);
    return;
  }
  setText("message", strings.loading);

  const token = new URLSearchParams(window.location.search).get("token") || "";
  const query = "?token=" + encodeURIComponent(token);
  const parcelUrl = "/v1/parcels/" + encodeURIComponent(config.trackingNumber);
  let shownVersion = -1;

  const statusName = (status) =>
    Object.prototype.hasOwnProperty.call(statusNames, status) ? statusNames[status] : status;
  const locationText = (location) => {
    if (!location) return strings.unknown;
    const place = location.name || location.code;
    return location.country ? place + ", " + location.country : place;
  };
  // Event times are shown in the scan's local time: shift by its offset, format as UTC.
  const dateTime = new Intl.DateTimeFormat(config.lang, { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" });
  const dateOnly = new Intl.DateTimeFormat(config.lang, { dateStyle: "medium", timeZone: "UTC" });
  const localTime = (ms, offsetMinutes) => dateTime.format(new Date(ms + (offsetMinutes || 0) * 60000));
  const deliveryText = (estimate) => {
    if (!estimate) return strings.unknown;
    const earliest = dateOnly.format(new Date(estimate.earliest_ms));
    const latest = dateOnly.format(new Date(estimate.latest_ms));
    return earliest === latest ? earliest : earliest + " – " + latest;
  };

  function render(view) {
    if (view.version < shownVersion) return; // an older view arriving late
    shownVersion = view.version;
    setText("message", "");
    byId("parcel").hidden = false;
    setText("status", statusName(view.status));
    byId("status").dataset.status = view.status;
    setText("on-time", view.on_time ? strings.on_time : strings.late);
    byId("on-time").className = view.on_time ? "on-time" : "late";
    setText("location", locationText(view.last_location));
    setText("estimated-delivery", deliveryText(view.estimated_delivery));
    const rows = view.history.slice().reverse().map((entry) => {
      const row = document.createElement("li");
      const time = document.createElement("time");
      time.textContent = localTime(entry.event_time_ms, entry.utc_offset_minutes);
      const status = document.createElement("strong");
      status.textContent = statusName(entry.status);
      const place = document.createElement("span");
      place.className = "place";
      place.textContent = entry.location ? locationText(entry.location) : "";
      row.append(time, " ", status, " ", place);
      return row;
    });
    if (rows.length === 0) {
      const empty = document.createElement("li");
      empty.textContent = strings.no_history;
      rows.push(empty);
    }
    byId("history").replaceChildren(...rows);
  }

  function listen() {
    const source = new EventSource(parcelUrl + "/events" + query);
    source.addEventListener("parcel", (event) => render(JSON.parse(event.data)));
    source.onopen = () => setText("live", strings.live);
    source.onerror = () => setText("live", strings.reconnecting);
  }

  fetch(parcelUrl + query, { headers: { Accept: "application/json" } })
    .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
    .then((view) => {
      render(view);
      listen();
    })
    .catch(() => setText("message", strings.not_found));
})();
"""

STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
main { max-width: 40rem; margin: 2rem auto; padding: 1.5rem; background: #fff; border-radius: 8px; }
h1 { font-size: 1.4rem; margin-top: 0; }
.status strong { font-size: 1.3rem; }
.on-time { color: #1b7f3b; }
.late { color: #b3261e; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.3rem 1rem; }
dt { color: #5b6475; }
dd { margin: 0; }
ol { padding-left: 1.2rem; }
li { margin: 0.3rem 0; }
time { color: #5b6475; }
.live { color: #5b6475; font-size: 0.85rem; }
"""
