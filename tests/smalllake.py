"""A small lake whose analyses are computed by hand in test_analysis.py.

Statuses are real recorded ones (mastodonsocial.json line 3) with the fields that matter
to the analyses overwritten, so every other key is what a real server sends.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from .conftest import real_status


def status(
    n: int,
    user: str,
    origin: str,
    created_at: str,
    content: str,
    *,
    language: str | None = "en",
    bot: bool = False,
    app: str | None = None,
    observed_on: str = "a.example",
    local_id: str | None = None,
    tags: tuple[str, ...] = (),
    edited_at: str | None = None,
) -> dict[str, Any]:
    base = copy.deepcopy(real_status("mastodonsocial.json", 3))
    local = origin == observed_on
    base.update(
        id=local_id or str(1000 + n),
        uri=f"https://{origin}/users/{user}/statuses/{n}",
        url=f"https://{origin}/@{user}/{n}",
        created_at=created_at,
        edited_at=edited_at,
        content=content,
        language=language,
        tags=[{"name": t, "url": f"https://{observed_on}/tags/{t.lower()}"} for t in tags],
        mentions=[],
        media_attachments=[],
    )
    base["account"].update(
        username=user,
        acct=user if local else f"{user}@{origin}",
        url=f"https://{origin}/@{user}",
        bot=bot,
        note="",
        noindex=False,
    )
    if local:
        base["application"] = {"name": app, "website": None} if app else None
    else:
        base.pop("application", None)
    return base


def posts() -> list[tuple[str, dict[str, Any]]]:
    """(event, status) lines of the small lake, in arrival order."""
    return [
        ("update", status(1, "alice", "a.example", "2023-02-03T10:15:00.000Z",
                          "<p>Hello balloon world</p>", app="Ivory")),
        # the same post relayed by another instance: its own id, no app
        ("update", status(1, "alice", "a.example", "2023-02-03T10:15:00.000Z",
                          "<p>Hello balloon world</p>", observed_on="z.example", local_id="9001")),
        ("update", status(2, "alice", "a.example", "2023-02-03T11:00:00.000Z",
                          "<p>Second post<br>#ChatGPT</p>", app="Web", tags=("ChatGPT",))),
        ("update", status(3, "bob", "b.example", "2023-02-03T11:30:00Z",
                          "<p>Guten Tag</p>", language="de")),
        ("update", status(4, "newsbot", "c.example", "2023-02-04T09:00:00Z",
                          "<p>Earthquake! M3.0</p>", bot=True)),
        ("update", status(5, "newsbot", "c.example", "2023-02-04T09:05:00Z",
                          "<p>earthquake again</p>", bot=True)),
        ("update", status(6, "carol", "a.example", "2023-02-04T23:59:59.000Z",
                          "<p>こんにちは</p>", language="ja", app="Ivory")),
        ("update", status(7, "dave", "a.example", "2023-02-04T12:00:00.000Z",
                          "<p></p>", language=None, bot=True, app="Bot app")),
        ("status.update", status(2, "alice", "a.example", "2023-02-03T11:00:00.000Z",
                                 "<p>Second post, edited<br>#ChatGPT</p>", app="Web",
                                 tags=("ChatGPT",), edited_at="2023-02-03T12:00:00.000Z")),
    ]  # fmt: skip


def write_inputs(folder: Path) -> list[Path]:
    """The small lake's input: a JSON-lines recording and an SSE capture with the delete."""
    folder.mkdir(parents=True, exist_ok=True)
    jsonl = folder / "small.jsonl"
    with open(jsonl, "w", encoding="utf-8") as handle:
        for event, st in posts():
            observed_on = "z.example" if st["id"] == "9001" else "a.example"
            handle.write(
                json.dumps({"observed_on": observed_on, "event": event, "status": st}) + "\n"
            )
    sse = folder / "deletes.sse"
    # bob's post (local id 1003 on a.example) is deleted; the capture is real SSE framing
    sse.write_text(":)\nevent: delete\ndata: 1003\n\n:thump\n", encoding="utf-8")
    return [jsonl, sse]
