"""A lake of hostile posts: every field the report and the dashboard show (post text, display
name, acct, app, URL, hashtag, language, instance) carries markup or script.

The statuses are a real recorded one (mastodonsocial.json line 17, a local post with its
`application`) with those fields overwritten, so every other key is what a real server sends.
A page that shows them safely shows each hostile string as text, runs nothing, and has no
element or attribute that came from them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from .conftest import real_status

# Each alert() argument is distinct, so a failure says which field leaked.
APP = '<script>alert("app")</script>'
APP_ATTR = '"><img src=x onerror=alert(2)>'
DISPLAY_NAME = "<img src=x onerror=alert(3)>"
USERNAME = 'x"><svg onload=alert(4)>'
TEXT_HTML = (
    "<p>&lt;script&gt;window.__pwned=1&lt;/script&gt; "
    '&lt;img src=x onerror="window.__pwned=1"&gt; '
    "<script>window.__pwned=1</script><img src=x onerror=alert(6)></p>"
)
TEXT_SHOWN = '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=1">'
URL = "javascript:alert(9)"
TAG = "<b onmouseover=alert(10)>"
LANGUAGE = '"><script>alert(11)</script>'
HOST = "<script>alert(12)</script>"
# every string the page must show as text (charts cut long labels, so these are short)
SHOWN = (APP, APP_ATTR, DISPLAY_NAME, TEXT_SHOWN, LANGUAGE)


def hostile_status(n: int, *, app: str = APP, day: str = "2022-11-21") -> dict[str, Any]:
    status = copy.deepcopy(real_status("mastodonsocial.json", 17))
    status.update(
        id=str(900_000 + n),
        uri=f"https://mastodon.social/users/hostile/statuses/{900_000 + n}",
        url=URL,
        created_at=f"{day}T12:{n:02d}:00.000Z",
        content=TEXT_HTML + "<p>" + "padding so that this is the longest post. " * 80 + "</p>",
        language=LANGUAGE,
        tags=[{"name": TAG, "url": "https://mastodon.social/tags/x"}],
        application={"name": app, "website": "javascript:alert(13)"},
    )
    status["account"].update(
        username=USERNAME,
        acct=USERNAME,
        display_name=DISPLAY_NAME,
        url="https://mastodon.social/@hostile",
        bot=False,
        note="",
        noindex=False,
    )
    return status


def write_hostile_inputs(folder: Path) -> Path:
    """JSON lines of real statuses plus hostile ones (several, so the hostile author is the
    day's most active person, and one seen on an instance with a hostile name)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hostile.jsonl"
    lines = []
    for n in range(1, 6):
        lines.append(
            {"observed_on": "mastodon.social", "status": real_status("mastodonsocial.json", n)}
        )
    for n in range(4):
        status = hostile_status(n, app=APP if n % 2 == 0 else APP_ATTR)
        lines.append({"observed_on": "mastodon.social", "status": status})
    relayed = hostile_status(10)
    relayed["uri"] = f"https://{HOST}/users/hostile/statuses/1"
    lines.append({"observed_on": HOST, "status": relayed})
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path
