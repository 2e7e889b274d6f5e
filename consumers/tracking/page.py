"""The customer tracking page: server-rendered HTML, a small vanilla script and a style sheet, no build
step and nothing loaded from another site.

The server renders the parcel's current state (``consumers/journey.py``: each step's message, the
milestone bar, the delivery line), so the page reads without JavaScript; the language switcher is
plain links. The script only enhances it: on each server-sent event it fetches the re-rendered
parcel view (``/track/TN/view``) and swaps it in, so the browser never formats a message itself.
Every value is HTML-escaped; the page configuration travels as JSON in a non-executed
``<script type="application/json">`` with ``<``, ``>`` and ``&`` escaped; the Content-Security-Policy
allows scripts from this origin only.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any, Final
from urllib.parse import urlencode

from consumers.journey import Journey, journey
from consumers.tracking.i18n import LANGUAGE_NAMES, STRINGS

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


def _query(credentials: dict[str, str], language: str) -> str:
    return "?" + urlencode({**credentials, "lang": language})


def render_view(view: dict[str, Any], language: str) -> str:
    """The parcel's part of the page (``#parcel-view``), also served alone for live updates."""
    strings = STRINGS[language]
    shown: Journey = journey(view, language)
    flagged = shown.flag is not None
    bar = []
    for milestone in shown.milestones:
        classes = [milestone.state] + (["flagged"] if flagged and milestone.state == "current" else [])
        current = ' aria-current="step"' if milestone.state == "current" else ""
        state = {"done": strings["done"], "current": strings["current"]}.get(milestone.state)
        hidden = f' <span class="visually-hidden">({escape(state)})</span>' if state else ""
        bar.append(f'<li class="{" ".join(classes)}"{current}>{escape(milestone.label)}{hidden}</li>')
    flag = ""
    if shown.flag is not None:
        flag = (
            f'<div id="flag" class="flag flag-{shown.flag.kind}" role="note">'
            f"<p><strong>{escape(shown.flag.title)}</strong></p>"
            f"<p>{escape(strings['what_you_can_do'])} {escape(shown.flag.advice)}</p></div>"
        )
    moved = ""
    if shown.delivery.moved:
        moved = f'<p id="estimate-moved" class="estimate-moved">{escape(shown.delivery.moved)}</p>'
    steps = []
    for step in shown.steps:
        place = f' <span class="place">· {escape(step.place)}</span>' if step.place else ""
        steps.append(
            f'<li class="step" data-code="{escape(step.code)}" data-status="{escape(step.status)}">'
            f'<p class="message">{escape(step.message)}</p>'
            f'<p class="meta"><time datetime="{escape(step.iso_time)}">{escape(step.time)}</time>{place}</p></li>'
        )
    if not steps:
        steps.append(f"<li>{escape(strings['no_history'])}</li>")
    return (
        f'<div id="parcel-view" data-version="{int(view.get("version", 0))}">'
        '<section id="parcel" aria-labelledby="status">'
        f'<h2 class="status-line"><span class="visually-hidden">{escape(strings["status"])}: </span>'
        f'<span id="status" data-status="{escape(shown.status)}">{escape(shown.status_name)}</span></h2>'
        f'<p id="delivery" class="delivery delivery-{shown.delivery.kind}">'
        f'<span class="visually-hidden">{escape(strings["delivery"])}: </span>{escape(shown.delivery.text)}</p>'
        f"{moved}"
        f"{flag}"
        f'<h2 id="label-journey">{escape(strings["journey"])}</h2>'
        f'<ol id="milestones" class="milestones" aria-labelledby="label-journey">{"".join(bar)}</ol>'
        f'<h2 id="label-history">{escape(strings["history"])}</h2>'
        f'<ol id="history" aria-labelledby="label-history">{"".join(steps)}</ol>'
        "</section></div>"
    )


def render_page(
    *,
    language: str,
    tracking_number: str,
    valid: bool,
    view: dict[str, Any] | None,
    credentials: dict[str, str],
) -> str:
    """The whole page; ``view`` is the parcel's public view, None when not found (or not allowed)."""
    strings = STRINGS[language]
    links = []
    for code, name in LANGUAGE_NAMES.items():
        current = ' aria-current="true"' if code == language else ""
        href = escape(_query(credentials, code))
        links.append(f'<li><a href="{href}" hreflang="{code}" lang="{code}"{current}>{escape(name)}</a></li>')
    if not valid:
        message, body = strings["malformed"], ""
    elif view is None:
        message, body = strings["not_found"], ""
    else:
        message, body = "", render_view(view, language)
    config = {
        "lang": language,
        "trackingNumber": tracking_number,
        "live": view is not None,
        "query": _query(credentials, language),
        "strings": {key: strings[key] for key in ("live", "reconnecting", "updated")},
    }
    return f"""<!doctype html>
<html lang="{escape(language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(strings["page_title"])} {escape(tracking_number)}</title>
<link rel="stylesheet" href="/static/track.css">
</head>
<body>
<header>
<nav aria-label="{escape(strings["language"])}"><ul class="languages">{"".join(links)}</ul></nav>
</header>
<main>
<h1 id="title">{escape(strings["page_title"])}</h1>
<p class="tracking-number">{escape(strings["tracking_number"])}
<strong id="tracking-number">{escape(tracking_number)}</strong></p>
<p id="message" role="status">{escape(message)}</p>
{body}
<p id="live" class="live" aria-live="polite"></p>
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
  if (!config.live || !window.EventSource) return;
  const live = document.getElementById("live");
  const base = "/v1/parcels/" + encodeURIComponent(config.trackingNumber);
  const viewUrl = "/track/" + encodeURIComponent(config.trackingNumber) + "/view" + config.query;
  const shownVersion = () => Number(document.getElementById("parcel-view").dataset.version);
  let fetching = false;
  let wanted = 0;

  // The server renders the new state in the page's language; an older view arriving late is ignored.
  function refresh() {
    if (fetching || wanted <= shownVersion()) return;
    fetching = true;
    fetch(viewUrl, { headers: { Accept: "text/html" } })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then((html) => {
        const template = document.createElement("template");
        template.innerHTML = html;
        const fresh = template.content.firstElementChild;
        if (fresh && Number(fresh.dataset.version) > shownVersion()) {
          document.getElementById("parcel-view").replaceWith(fresh);
          live.textContent = config.strings.updated + " " + new Date().toLocaleTimeString(config.lang);
        }
      })
      .catch(() => {})
      .finally(() => {
        fetching = false;
        refresh();
      });
  }

  const source = new EventSource(base + "/events" + config.query);
  source.addEventListener("parcel", (event) => {
    wanted = Math.max(wanted, JSON.parse(event.data).version);
    refresh();
  });
  source.onopen = () => { if (!live.textContent) live.textContent = config.strings.live; };
  source.onerror = () => { live.textContent = config.strings.reconnecting; };
})();
"""

# Mobile first: one column at 360 px, wider margins and a horizontal bar from 40rem.
STYLE: Final = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; line-height: 1.45; }
header { padding: 0.5rem 1rem; background: #1d2330; }
.languages { display: flex; flex-wrap: wrap; gap: 0.25rem 0.75rem; margin: 0; padding: 0; list-style: none; }
.languages a { color: #ffffff; display: inline-block; padding: 0.35rem 0.25rem; min-height: 44px; line-height: 2; }
.languages a[aria-current] { font-weight: 700; text-decoration-thickness: 3px; }
main { padding: 1rem; background: #ffffff; }
h1 { font-size: 1.35rem; margin: 0 0 0.25rem; }
h2 { font-size: 1.1rem; margin: 1.25rem 0 0.5rem; }
.tracking-number { margin: 0 0 0.5rem; overflow-wrap: anywhere; }
.status-line { font-size: 1.4rem; margin-top: 0.5rem; }
.delivery { font-size: 1.05rem; font-weight: 600; padding: 0.6rem 0.75rem; border-radius: 6px; background: #e8f1fb; }
.delivery-delivered { background: #e3f4e8; color: #14532d; }
.delivery-late, .delivery-not_delivering { background: #fdecea; color: #8a1c13; }
.estimate-moved { margin-top: 0.4rem; }
.flag { border-left: 4px solid #b3261e; background: #fff4f2; padding: 0.5rem 0.75rem; margin: 0.75rem 0; }
.flag p { margin: 0.25rem 0; }
.milestones { list-style: none; margin: 0; padding: 0; }
.milestones li { position: relative; padding: 0.3rem 0 0.3rem 1.9rem; color: #4a5263; }
.milestones li::before { content: ""; position: absolute; left: 0.35rem; top: 0.55rem; width: 0.9rem; height: 0.9rem;
  border-radius: 50%; border: 2px solid #8a93a6; background: #ffffff; }
.milestones li.done { color: #1d2330; }
.milestones li.done::before { background: #1b6e3a; border-color: #1b6e3a; }
.milestones li.current { color: #1d2330; font-weight: 700; }
.milestones li.current::before { background: #0b57a4; border-color: #0b57a4; box-shadow: 0 0 0 3px #bcd6f2; }
.milestones li.flagged::before { background: #b3261e; border-color: #b3261e; box-shadow: 0 0 0 3px #f3c6c2; }
#history { list-style: none; margin: 0; padding: 0; }
.step { border-left: 2px solid #d5d9e0; padding: 0 0 0.75rem 0.9rem; margin-left: 0.3rem; }
.step:first-child { border-left-color: #0b57a4; }
.step p { margin: 0; }
.message { font-weight: 600; overflow-wrap: anywhere; }
.meta { color: #4a5263; font-size: 0.9rem; overflow-wrap: anywhere; }
.live { color: #4a5263; font-size: 0.85rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap; }
@media (min-width: 40rem) {
  main { max-width: 56rem; margin: 1.5rem auto; padding: 1.5rem 2rem; border-radius: 8px; }
  header { display: flex; justify-content: flex-end; }
  .milestones { display: flex; gap: 0.25rem; }
  .milestones li { flex: 1; padding: 1.6rem 0.25rem 0; text-align: center; font-size: 0.9rem; }
  .milestones li::before { left: calc(50% - 0.45rem); top: 0.2rem; }
}
"""
