"""Drive a Dash app's callbacks over HTTP, as the browser does (no browser)."""

from __future__ import annotations

import json


def _outputs(key: str):
    multi = key.startswith("..")
    parts = key.strip(".").split("...") if multi else [key]
    outs = []
    for part in parts:
        cid, prop = part.split(".", 1)
        outs.append({"id": cid, "property": prop})
    return multi, outs


def find_callback(app, output_id: str, prop: str) -> str:
    """Key of the callback map whose first output is ``output_id.prop``."""
    for key in app.callback_map:
        _, outs = _outputs(key)
        first = outs[0]
        if first["id"] == output_id and first["property"].split("@")[0] == prop:
            return key
    raise KeyError(f"{output_id}.{prop}")


def call(client, app, key: str, values: dict, changed: list[str]):
    """POST one callback; ``values`` maps "id.prop" to the value sent.

    Returns
    -------
    status : int
    body : dict
        The parsed JSON (``response`` and maybe ``sideUpdate``), or {}.
    """
    cb = app.callback_map[key]
    multi, outs = _outputs(key)

    def fill(items):
        return [
            {**item, "value": values.get(f"{item['id']}.{item['property']}")}
            for item in items
        ]

    payload = {
        "output": key,
        "outputs": outs if multi else outs[0],
        "inputs": fill(cb["inputs"]),
        "state": fill(cb["state"]),
        "changedPropIds": changed,
    }
    r = client.post(
        "/_dash-update-component",
        data=json.dumps(payload),
        content_type="application/json",
    )
    try:
        body = json.loads(r.data) if r.data else {}
    except ValueError:
        body = {"text": r.data.decode(errors="replace")}
    return r.status_code, body
