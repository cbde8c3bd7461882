"""Seed-shaped Mastodon statuses: a deterministic, fast generator of the talk's data.

The 2023 talk collected 1,622,149 public posts over ten days (3-12 February 2023) from
142,877 users on 8,309 instances in 131 languages, averaging 151 characters, the longest
68,991. This module makes statuses of that shape, as Mastodon's streaming API sends them
(the keys, HTML and account objects of the recordings in shared/real-data), for tests and
benchmarks of everything downstream of a source:

    generate_statuses(n, seed=0, ...)  -> (observed_on, status dict), in stream order
    generate_events(n, seed=0, ...)    -> WorkloadEvent: update / status.update / delete
    status_lines(n, ...)               -> JSON lines, already serialized (the fast path)
    write_jsonl(path, n, ...)          -> `{"observed_on": host, "status": {...}}` lines
    write_sse(path, n, ...)            -> an SSE capture, framed like a real server

Shape (all deterministic by `seed`; sizes scale with `n` at the talk's ratios):
  * instances: a few big ones dominate (mastodon.social about a fifth of authors), then a
    Zipf tail of generated hosts; a few percent Misskey/Pleroma (other uri shapes, no language);
  * authors: Zipfian activity, every author posts at least once, so `users` and `instances`
    are exact distinct counts; bots are about 1% of accounts and about 7% of posts, news
    accounts (bots or not) post a lot;
  * languages: 131 codes, English about half, then German, Japanese, French, Spanish...;
    an author mostly writes one language; CJK posts are shorter, Galician and Finnish longer;
  * time: the talk's per-day volumes (or a weekly rhythm) and an hourly curve (low 04:00 UTC,
    high 15:00 UTC); remote posts arrive seconds (sometimes hours) after they were written;
  * the talk's terms (balloon, earthquake, superbowl, chatgpt) at the rates of those days;
  * a local status (origin == observed_on) has `application` and an unqualified acct; a remote
    one has `acct` user@origin, no `application`, created_at at second precision, and its uri
    and url on its origin.

Nothing here does I/O besides the two `write_*` helpers, and nothing touches the network.
Generated statuses share no mutable state with the generator: each is a fresh dict.

Not shipped in the wheel: it lives in bench/ (formerly `tootlake.workload`), imported as
`talkshape` by the benchmarks (bench/ is their script folder) and by the tests (tests/conftest.py
puts bench/ on sys.path). Its random streams keep their old `tootlake-workload/...` names, so a
seed gives the same statuses as before the move.
"""

from __future__ import annotations

import heapq
import math
import random
from array import array
from bisect import bisect
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson

from tootlake.errors import ConfigError

__all__ = [
    "LONGEST_CHARACTERS",
    "TALK",
    "TALK_START",
    "WorkloadEvent",
    "generate_events",
    "generate_statuses",
    "status_lines",
    "write_jsonl",
    "write_sse",
]

TALK_START = datetime(2023, 2, 3, tzinfo=UTC)
LONGEST_CHARACTERS = 68_991
# The talk's headline figures, which the defaults reproduce at n = TALK["posts"].
TALK = {
    "posts": 1_622_149,
    "users": 142_877,
    "instances": 8_309,
    "languages": 131,
    "average_characters": 151,
    "longest_characters": LONGEST_CHARACTERS,
    "days": 10,
}
# Posts per day the talk showed for 3-10 February; 11-12 February share the remainder.
_TALK_DAILY = (
    17_880,
    210_646,
    191_391,
    41_632,
    99_097,
    188_503,
    166_096,
    207_877,
    250_000,
    249_027,
)


@dataclass(frozen=True, slots=True)
class WorkloadEvent:
    """One stream event: `kind` is "update", "status.update" or "delete"; `payload` is the
    status dict, or for a delete the observing instance's status id (a string)."""

    kind: str
    observed_on: str
    payload: dict[str, Any] | str
    at_ms: int  # when the observing instance sent it (ms since the epoch)


# ----------------------------------------------------------------------------------------
# tables

# (host, share of accounts, language the instance leans to, software)
_NAMED_INSTANCES: tuple[tuple[str, float, str | None, str], ...] = (
    ("mastodon.social", 0.240, None, "mastodon"),
    ("mastodon.online", 0.030, None, "mastodon"),
    ("mstdn.jp", 0.028, "ja", "mastodon"),
    ("mastodon.world", 0.026, None, "mastodon"),
    ("mstdn.social", 0.024, None, "mastodon"),
    ("mas.to", 0.020, None, "mastodon"),
    ("pawoo.net", 0.018, "ja", "mastodon"),
    ("infosec.exchange", 0.015, None, "mastodon"),
    ("fosstodon.org", 0.015, None, "mastodon"),
    ("universeodon.com", 0.014, None, "mastodon"),
    ("hachyderm.io", 0.012, None, "mastodon"),
    ("det.social", 0.012, "de", "mastodon"),
    ("troet.cafe", 0.011, "de", "mastodon"),
    ("chaos.social", 0.010, "de", "mastodon"),
    ("misskey.io", 0.012, "ja", "misskey"),
    ("masto.ai", 0.010, None, "mastodon"),
    ("botsin.space", 0.006, None, "mastodon"),
    ("mastodon.cloud", 0.008, None, "mastodon"),
    ("c.im", 0.008, None, "mastodon"),
    ("techhub.social", 0.008, None, "mastodon"),
    ("mastodon.nl", 0.008, "nl", "mastodon"),
    ("piaille.fr", 0.008, "fr", "mastodon"),
    ("mastodon.art", 0.007, None, "mastodon"),
    ("fedibird.com", 0.007, "ja", "mastodon"),
    ("norden.social", 0.006, "de", "mastodon"),
    ("mastodon.uno", 0.006, "it", "mastodon"),
    ("social.vivaldi.net", 0.006, None, "mastodon"),
    ("mamot.fr", 0.005, "fr", "mastodon"),
    ("mastodon.lol", 0.005, None, "mastodon"),
    ("sfba.social", 0.005, None, "mastodon"),
    ("aus.social", 0.005, None, "mastodon"),
    ("newsie.social", 0.005, None, "mastodon"),
    ("mastodon.scot", 0.004, None, "mastodon"),
    ("mastodon.nz", 0.004, None, "mastodon"),
    ("mstdn.ca", 0.004, None, "mastodon"),
    ("tech.lgbt", 0.004, None, "mastodon"),
    ("journa.host", 0.003, None, "mastodon"),
    ("mastodon.green", 0.003, None, "mastodon"),
    ("social.tchncs.de", 0.004, "de", "mastodon"),
    ("mastodontech.de", 0.003, "de", "mastodon"),
    ("mastodon.uy", 0.003, "es", "mastodon"),
    ("masto.es", 0.003, "es", "mastodon"),
    ("mastodon.com.pl", 0.002, "pl", "mastodon"),
    ("twingyeo.kr", 0.002, "ko", "mastodon"),
    ("masto.donte.com.br", 0.003, "pt", "mastodon"),
    ("mastodon.gal", 0.0015, "gl", "mastodon"),
    ("mastodontti.fi", 0.0015, "fi", "mastodon"),
    ("akko.wtf", 0.002, None, "pleroma"),
    ("stop.voring.me", 0.002, None, "misskey"),
)

# 131 language codes, most posted first, with their share of posts (in percent). Mastodon
# takes ISO 639-1 codes and a few ISO 639-3 ones (ast, ckb, kab, sco, tok...).
_LANGUAGE_SHARES = (
    ("en", 52.0), ("de", 9.6), ("ja", 8.8), ("fr", 4.0), ("es", 3.8), ("pt", 1.7),
    ("nl", 1.7), ("it", 1.3), ("zh", 1.0), ("pl", 0.55), ("sv", 0.55), ("fi", 0.5),
    ("ko", 0.5), ("ca", 0.4), ("ru", 0.35), ("uk", 0.35), ("cs", 0.3), ("da", 0.3),
    ("gl", 0.25), ("tr", 0.22), ("eu", 0.15), ("no", 0.15), ("el", 0.13), ("id", 0.15),
    ("hu", 0.12), ("ro", 0.1), ("eo", 0.1), ("la", 0.06), ("cy", 0.08), ("ga", 0.05),
    ("he", 0.07), ("ar", 0.09), ("fa", 0.11), ("th", 0.07), ("vi", 0.06), ("hi", 0.04),
)  # fmt: skip
_MORE_LANGUAGES = (
    "nb", "nn", "is", "et", "lv", "lt", "sk", "sl", "hr", "sr", "bs", "mk", "bg", "be", "kk",
    "ka", "hy", "az", "uz", "tl", "ms", "bn", "ta", "te", "ml", "kn", "mr", "gu", "pa", "ur",
    "ne", "si", "my", "km", "lo", "mn", "ps", "ku", "sw", "af", "zu", "xh", "yo", "ig", "ha",
    "so", "am", "ti", "lb", "fy", "gd", "br", "co", "oc", "an", "kw", "gv", "fo", "mt", "sq",
    "ia", "ie", "io", "vo", "jv", "su", "ceb", "ht", "mi", "sm", "to", "haw", "qu", "ay", "gn",
    "sa", "yi", "tt", "ba", "cv", "ky", "tg", "tk", "ug", "sd", "ast", "ckb", "kab", "sco",
    "tok", "jbo", "szl", "wa", "li", "rm", "sc", "kl", "se", "nv", "ln", "wo", "mg"
)  # fmt: skip
_SCRIPTS: dict[str, tuple[int, int]] = {  # first and last code point of each script's letters
    "cyrillic": (0x0430, 0x044F),
    "greek": (0x03B1, 0x03C9),
    "hebrew": (0x05D0, 0x05EA),
    "arabic": (0x0627, 0x064A),
    "devanagari": (0x0915, 0x0939),
    "bengali": (0x0995, 0x09B9),
    "tamil": (0x0B95, 0x0BB9),
    "telugu": (0x0C15, 0x0C39),
    "malayalam": (0x0D15, 0x0D39),
    "kannada": (0x0C95, 0x0CB9),
    "gujarati": (0x0A95, 0x0AB9),
    "gurmukhi": (0x0A15, 0x0A39),
    "sinhala": (0x0D9A, 0x0DC6),
    "thai": (0x0E01, 0x0E2E),
    "lao": (0x0E81, 0x0EAE),
    "khmer": (0x1780, 0x17A2),
    "myanmar": (0x1000, 0x1020),
    "georgian": (0x10D0, 0x10F0),
    "armenian": (0x0561, 0x0586),
    "ethiopic": (0x1200, 0x1350),
}
_LANGUAGE_SCRIPT = {
    **dict.fromkeys(
        ["ru", "uk", "bg", "sr", "mk", "be", "kk", "mn", "tt", "ba", "cv", "ky", "tg"], "cyrillic"
    ),
    "el": "greek", "he": "hebrew", "yi": "hebrew",
    **dict.fromkeys(["ar", "fa", "ur", "ps", "ckb", "sd", "ug"], "arabic"),
    **dict.fromkeys(["hi", "mr", "ne", "sa"], "devanagari"),
    "bn": "bengali", "ta": "tamil", "te": "telugu", "ml": "malayalam", "kn": "kannada",
    "gu": "gujarati", "pa": "gurmukhi", "si": "sinhala", "th": "thai", "lo": "lao",
    "km": "khmer", "my": "myanmar", "ka": "georgian", "hy": "armenian",
    **dict.fromkeys(["am", "ti"], "ethiopic"),
}  # fmt: skip
# Characters per post relative to English: logographic scripts say more with fewer.
_LENGTH_FACTOR = {"ja": 0.42, "zh": 0.4, "ko": 0.55, "gl": 1.55, "fi": 1.35, "eu": 1.25,
                  "ca": 1.2, "de": 1.1, "th": 0.7}  # fmt: skip

# Sentence material: (openings, endings) per language; sentences are opening + ending.
_PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        ("Just finished", "Finally tried", "Can't stop thinking about", "Spent the morning on",
         "Still learning", "Really enjoyed", "Does anyone have tips for", "Today I learned about",
         "Hot take on", "Went out to see", "Reading a thread about", "My kid asked me about",
         "Quick reminder about", "Working late on", "So happy with", "Not sure what to think of",
         "Listening to a podcast about", "Made a little zine about", "Trying to fix",
         "Slowly getting used to"),
        ("the new release of our app.", "a sourdough loaf that actually rose!",
         "the museum's new exhibition.", "my first pull request to an open source project.",
         "this whole fediverse thing.", "a long walk along the river 🌿", "the train strike today.",
         "some old film photos I found in a drawer.", "a book about migratory birds.",
         "the garden after all that rain.", "how to explain time zones to a computer.",
         "the city council meeting last night.", "a bug that only happens on Tuesdays 🐛",
         "the snow that is finally melting.", "why my tomatoes never turn red.",
         "the price of eggs this week.", "learning Rust, one borrow checker error at a time.",
         "a cat who refuses to leave my keyboard 🐈", "the local library's book sale.",
         "a recipe for lentil soup that my grandmother used to make.",
         "the difference between a lake and a pond.", "what to cook for dinner tonight.",
         "accessibility in web apps, please add alt text!", "my commute, which was 2 hours again.",
         "the sunrise over the harbour this morning 🌅", "the data pipeline at work."),
    ),
    "de": (
        ("Heute Morgen", "Endlich", "Gerade eben", "Seit Tagen", "Schon wieder", "Wie immer",
         "Zum ersten Mal", "Am Wochenende", "Nach der Arbeit", "Ganz ehrlich,"),
        ("war der Zug wieder zu spät.", "habe ich Brot gebacken und es ist gelungen!",
         "regnet es in Berlin ohne Pause.", "lese ich ein Buch über Vögel.",
         "funktioniert die Heizung nicht.", "gab es Kaffee und Kuchen bei Oma.",
         "hat mein Kater den Weihnachtsbaum umgeworfen 🐈", "habe ich das Fediverse entdeckt.",
         "wurde die Straße vor unserem Haus gesperrt.", "bin ich mit dem Rad zur Arbeit gefahren.",
         "streiken die Busse in der ganzen Stadt.", "ist der Bug in Produktion aufgetaucht."),
    ),
    "fr": (
        ("Ce matin", "Enfin", "Encore une fois", "Depuis hier", "Ce week-end", "Franchement,",
         "Pour la première fois", "Après le travail"),
        ("le train était en retard.", "j'ai fait du pain maison !", "il pleut sur Paris.",
         "je lis un livre sur les oiseaux.", "la grève continue dans toute la ville.",
         "mon chat dort sur le clavier 🐈", "j'ai découvert le fédivers.",
         "on a mangé une raclette entre amis.", "le bug est revenu en production."),
    ),
    "es": (
        ("Esta mañana", "Por fin", "Otra vez", "Desde ayer", "Este fin de semana",
         "La verdad es que", "Por primera vez", "Después del trabajo"),
        ("el tren llegó tarde.", "hice pan casero y salió bien.", "llueve en Madrid sin parar.",
         "estoy leyendo un libro sobre pájaros.", "mi gato no deja de dormir en el teclado 🐈",
         "descubrí el fediverso.", "fuimos a ver el mar.", "el partido fue increíble."),
    ),
    "pt": (
        ("Hoje de manhã", "Finalmente", "Mais uma vez", "Desde ontem", "No fim de semana"),
        ("o ônibus atrasou de novo.", "fiz pão em casa!", "chove sem parar aqui.",
         "estou lendo um livro sobre pássaros.", "meu gato dorme no teclado 🐈",
         "descobri o fediverso."),
    ),
    "nl": (
        ("Vanochtend", "Eindelijk", "Alweer", "Sinds gisteren", "Dit weekend"),
        ("was de trein te laat.", "heb ik zelf brood gebakken!", "regent het in Utrecht.",
         "lees ik een boek over vogels.", "slaapt de kat op mijn toetsenbord 🐈",
         "ontdekte ik het fediverse."),
    ),
    "it": (
        ("Stamattina", "Finalmente", "Di nuovo", "Da ieri", "Questo fine settimana"),
        ("il treno era in ritardo.", "ho fatto il pane in casa!", "piove su Milano.",
         "sto leggendo un libro sugli uccelli.", "il gatto dorme sulla tastiera 🐈",
         "ho scoperto il fediverso."),
    ),
    "ja": (
        ("今日は", "さっき", "やっと", "明日は", "最近", "朝から", "週末は", "仕事の後で"),
        ("コーヒーを飲みました。", "雨が降っています。", "新しい本を読み始めた。",
         "仕事が終わった！",
         "猫が膝の上で寝ている🐈", "電車が遅れた。", "ラーメンを食べに行った。", "桜が楽しみです。",
         "マストドンを始めました。", "寒すぎる…"),
    ),
    "zh": (
        ("今天", "刚才", "终于", "明天", "最近", "早上"),
        ("喝了一杯咖啡。", "下雨了。", "开始读一本新书。", "工作结束了！", "猫在我腿上睡觉🐈",
         "地铁又晚点了。", "去吃了火锅。"),
    ),
    "ko": (
        ("오늘은", "방금", "드디어", "내일은", "요즘"),
        ("커피를 마셨어요.", "비가 와요.", "새 책을 읽기 시작했어요.", "일이 끝났다!",
         "고양이가 무릎 위에서 자고 있어요🐈", "지하철이 늦었어요."),
    ),
}  # fmt: skip
_TERM_POSTS = {
    "balloon": (
        "The Chinese spy balloon over Montana is the strangest news story of the week.",
        "They shot down the balloon off the coast of South Carolina. What a week.",
        "Is there anything more 2023 than a balloon crisis? 🎈",
        "Another unidentified object shot down, not a balloon this time apparently.",
        "My kid wants to know if the balloon was carrying cameras. Honestly, same.",
        "#balloon watchers, the debris field is huge according to the Pentagon.",
    ),
    "earthquake": (
        "Devastating earthquake in Turkey and Syria. Thousands dead, rescuers still digging.",
        "How to help the people affected by the earthquake: donate to the local rescue teams.",
        "The #earthquake death toll keeps rising. Horrible news this morning.",
        "Felt a small earthquake here last night, nothing compared to what Turkey went through.",
        "Aftershocks again in Gaziantep. Thinking of everyone hit by the earthquake.",
    ),
    "superbowl": (
        "Who is watching the #SuperBowl tonight? I'm only here for the ads and the halftime show.",
        "Rihanna at the superbowl halftime show was something else.",
        "Chiefs win the #superbowl, my timeline is all football now 🏈",
        "Superbowl snacks are ready. Go Eagles!",
    ),
    "chatgpt": (
        "I asked ChatGPT to explain my own code to me and it was confidently wrong.",
        "Everyone at work is talking about #ChatGPT this week.",
        "Tried using chatgpt to write a cover letter. It sounds like a robot applied.",
        "Hot take: ChatGPT is autocomplete with excellent marketing.",
        "Our university just published a policy on ChatGPT in assignments.",
    ),
}  # fmt: skip
# Share of each day's posts mentioning a term, by calendar day (other days use the base rate).
_TERM_BASE = {"balloon": 0.0002, "earthquake": 0.0006, "superbowl": 0.00005, "chatgpt": 0.0035}
_TERM_DAYS: dict[date, dict[str, float]] = {
    date(2023, 2, 3): {"balloon": 0.004},
    date(2023, 2, 4): {"balloon": 0.012},
    date(2023, 2, 5): {"balloon": 0.006},
    date(2023, 2, 6): {"balloon": 0.002, "earthquake": 0.02},
    date(2023, 2, 7): {"balloon": 0.0015, "earthquake": 0.014},
    date(2023, 2, 8): {"balloon": 0.0015, "earthquake": 0.008},
    date(2023, 2, 9): {"balloon": 0.001, "earthquake": 0.005},
    date(2023, 2, 10): {"balloon": 0.004, "earthquake": 0.003, "superbowl": 0.0005},
    date(2023, 2, 11): {"balloon": 0.005, "earthquake": 0.003, "superbowl": 0.001},
    date(2023, 2, 12): {"balloon": 0.006, "earthquake": 0.002, "superbowl": 0.008},
}
_HEADLINES = (
    "Markets edge up as investors weigh the latest inflation figures",
    "Rescue teams search for survivors after the earthquake in southern Turkey",
    "Parliament debates the new energy bill amid protests",
    "Storm warning issued for the east coast this weekend",
    "Tech company announces layoffs affecting thousands of staff",
    "Scientists find new species of frog in the Andes",
    "City approves plan for new bike lanes downtown",
    "Central bank holds interest rates steady",
    "Rail workers announce another strike for next week",
    "Museum returns looted artefacts to their country of origin",
    "Opinion: the four-day week is working, here is the data",
    "Police investigate break-in at the city archive",
    "Heatwave in Australia breaks temperature records",
    "Ukraine: overnight attacks hit the energy grid again",
    "Balloon debris recovered off the coast, officials say",
)  # fmt: skip
_TAGS = (
    "fediverse", "mastodon", "photography", "art", "caturday", "introduction",
    "twittermigration", "books", "linux", "opensource", "python", "rustlang", "ukraine",
    "climate", "science", "cats", "dogs", "birds", "gardening", "coffee", "running", "cycling",
    "gaming", "politics", "ai", "silentsunday", "mosstodon", "nature", "history", "covid19",
    "tech", "writing", "poetry", "music", "jazz", "metal", "film", "anime", "manga", "infosec",
    "privacy", "foss", "javascript", "webdev", "accessibility", "alttext", "histodons",
    "academia", "academicchatter", "teaching", "bookstodon", "reading", "scifi", "dnd", "ttrpg",
    "boardgames", "football", "nfl", "f1", "food", "baking", "vegan", "knitting", "astronomy",
    "space", "weather", "news"
)  # fmt: skip
_LOCAL_TAGS = {
    "de": ["fotografie", "berlin", "bahn", "fedigarten", "katzen", "wetter"],
    "ja": ["マストドン", "猫", "写真", "ラーメン", "桜"],
    "fr": ["photographie", "chat", "paris", "cuisine"],
    "es": ["fotografía", "gatos", "madrid"],
    "nl": ["fotografie", "nederland"],
}
_DOMAINS = (
    "www.theguardian.com", "www.bbc.co.uk", "www.reuters.com", "apnews.com", "www.nytimes.com",
    "github.com", "www.youtube.com", "en.wikipedia.org", "www.spiegel.de", "www.tagesschau.de",
    "www.heise.de", "www.lemonde.fr", "elpais.com", "nos.nl", "www3.nhk.or.jp",
    "arstechnica.com", "www.theverge.com", "techcrunch.com", "medium.com", "blog.example.org",
    "www.washingtonpost.com", "www.abc.net.au"
)  # fmt: skip
_SLUG_WORDS = (
    "markets", "storm", "rail", "strike", "museum", "energy", "climate", "science", "election",
    "police", "city", "budget", "health", "school", "housing", "data", "release", "update",
    "report", "analysis", "interview", "review", "guide"
)  # fmt: skip
_APPS = (  # (name, website, share of people's local posts)
    ("Web", None, 0.44), ("Ivory", "https://tapbots.com/ivory/", 0.10),
    ("Mastodon for iOS", "https://app.joinmastodon.org/ios", 0.10),
    ("Mastodon for Android", "https://app.joinmastodon.org/android", 0.06),
    ("Moa", "https://moa.party", 0.05), ("Tusky", "https://tusky.app", 0.05),
    ("Toot!", "https://toot.c3.cx/", 0.025), ("Metatext", "https://metabolist.org/metatext", 0.02),
    ("Elk", "https://elk.zone", 0.02),
    ("Ice Cubes", "https://github.com/Dimillian/IceCubesApp", 0.02),
    ("Mastodon Twitter Crossposter", None, 0.025), ("Fedilab", "https://fedilab.app", 0.015),
    ("tooot", "https://tooot.app", 0.01), ("SubwayTooter", None, 0.008),
    ("Mona", None, 0.006), ("Pinafore", "https://pinafore.social", 0.005),
    ("Trunks", "https://trunks.social", 0.004), ("Mammoth", "https://getmammoth.app", 0.003),
    ("Tokodon", "https://apps.kde.org/tokodon", 0.002),
    ("Whalebird", "https://whalebird.social", 0.002),
    ("Sengi", "https://nicolasconstant.github.io/sengi/", 0.002),
)  # fmt: skip
_BOT_APPS = (
    ("feed2toot", "https://gitlab.com/chaica/feed2toot", 0.3), ("IFTTT", "https://ifttt.com", 0.15),
    ("Mastodon.py", None, 0.2), ("RSS to Mastodon", None, 0.15),
    ("Buffer", "https://buffer.com", 0.1),
    ("Flame Reactor", "https://flamereactor.com/", 0.1),
)  # fmt: skip
_FIRST = (
    "anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jack", "kai",
    "lena", "maria", "noah", "olga", "paul", "quinn", "rosa", "sam", "tara", "uwe", "vera",
    "will", "xena", "yuki", "zoe", "akira", "mei", "jun", "sora", "hana", "lukas", "jonas",
    "sophie", "marie", "pierre", "camille", "lucia", "pablo", "diego", "joao", "ana", "lars",
    "sven", "ingrid", "aino", "mikko", "kim", "minho", "jiwoo", "wei", "li", "priya", "arjun",
    "omar", "layla", "fatima", "ivan", "olena", "taras"
)  # fmt: skip
_LAST = (
    "smith", "jones", "garcia", "muller", "schmidt", "martin", "bernard", "rossi", "ferrari",
    "tanaka", "suzuki", "sato", "kim", "lee", "chen", "wang", "novak", "kowalski", "nielsen",
    "jansen", "dubois", "silva", "santos", "ivanov", "kovalenko"
)  # fmt: skip
_SYLLABLES = (
    "ka", "ri", "mo", "ne", "ta", "lu", "si", "ve", "ra", "no", "mi", "ko", "da", "be", "zu",
    "fi", "go", "he", "ja", "pe", "sa", "tu", "wi", "yo", "xe"
)  # fmt: skip
_BIO_EXTRA = ("He/him", "she/her", "they/them", "Views my own", "🏳️‍🌈", "🇪🇺", "📷", "🐘")
_NEW_ACCOUNT_DAYS = (date(2022, 10, 28).toordinal(), date(2023, 2, 12).toordinal())
_OLD_ACCOUNT_DAYS = (date(2016, 10, 1).toordinal(), date(2022, 10, 27).toordinal())

_EPOCH_DAY = date(1970, 1, 1).toordinal()
_KNOWN_SINCE = date(2022, 11, 1).toordinal()  # remote accounts: first seen by the observer
_HEARTBEAT_MS = 15_000
_QUAKE_PLACES = (
    "Kahramanmaraş", "Malatya", "Hatay", "Adana", "Crete", "Honshu", "Sumatra", "Chile",
)  # fmt: skip
_MEDIA_META = tuple(
    (
        {"width": w, "height": h, "size": f"{w}x{h}", "aspect": w / h},
        {"width": 480, "height": 480 * h // w, "size": f"480x{480 * h // w}", "aspect": w / h},
    )
    for w, h in ((1200, 900), (1080, 1350), (1920, 1080), (800, 800))
)
_ALT_TEXTS = (
    "A photo of the view from my window.",
    "Screenshot of a terminal with an error message.",
    "A cat asleep on a keyboard.",
    "A chart of daily temperatures, rising.",
)
# The talk's longest post: "a silly comment followed by the same emoji 68,930 times".
_LONGEST_OPENING = "Marsey says hello to every single person on this instance!!! "
_ACCOUNT_CACHE = 32_768  # account templates kept (about 2 kB each)


def _languages() -> tuple[list[str], list[float]]:
    codes = [c for c, _ in _LANGUAGE_SHARES]
    weights = [w for _, w in _LANGUAGE_SHARES]
    tail = [c for c in _MORE_LANGUAGES if c not in codes][: TALK["languages"] - len(codes)]
    codes += tail
    weights += [0.9 / (i + 8) for i in range(len(tail))]  # a long tail, about 1.4% together
    assert len(codes) == len(set(codes)) == TALK["languages"]
    return codes, weights


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace('"', "&quot;").replace("'", "&#39;")
    )  # fmt: skip


def _iso_day(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


class _Clock:
    """Mastodon's ISO times from epoch milliseconds, cheaply: statuses come in time order, so
    the text of each second is made once and kept for a while."""

    _MILLIS = [f"{m:03d}Z" for m in range(1000)]

    def __init__(self) -> None:
        self._days: dict[int, str] = {}
        self._seconds: dict[int, str] = {}

    def prefix(self, day: int) -> str:
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = _iso_day(day + _EPOCH_DAY) + "T"
        return text

    def day(self, day: int) -> str:
        return self.prefix(day)[:-1]

    def _second(self, second: int) -> str:
        text = self._seconds.get(second)
        if text is None:
            if len(self._seconds) >= 200_000:
                self._seconds.clear()
            day, rest = divmod(second, 86_400)
            hour, rest = divmod(rest, 3600)
            minute, sec = divmod(rest, 60)
            text = self._seconds[second] = f"{self.prefix(day)}{hour:02d}:{minute:02d}:{sec:02d}."
        return text

    def ms(self, t: int) -> str:
        second, milli = divmod(t, 1000)
        return self._second(second) + self._MILLIS[milli]

    def seconds(self, t: int) -> str:
        return self._second(t // 1000) + "000Z"


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder)."""
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    counts = [int(x) for x in exact]
    short = total - sum(counts)
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[:short]:
        counts[i] += 1
    return counts


# ----------------------------------------------------------------------------------------
# the world: instances and accounts, built once per (seed, sizes)


class _World:
    def __init__(self, *, seed: int, users: int, instances: int, observers: Sequence[str]) -> None:
        rng = random.Random(f"tootlake-workload/{seed}/world")
        self.clock = _Clock()
        # -- instances
        named = list(_NAMED_INSTANCES)
        for host in observers:
            if host not in {h for h, *_ in named}:
                named.insert(len(named) // 2, (host, 0.004, None, "mastodon"))
        if instances < len(observers):
            raise ConfigError(f"instances={instances} is fewer than the observing instances")
        keep = {h for h in observers}
        named.sort(key=lambda r: (r[0] not in keep, -r[1]))
        named = named[: max(instances, len(keep))]
        hosts = [h for h, *_ in named]
        shares = [s for _, s, *_ in named]
        langs: list[str | None] = [lang for _, _, lang, _ in named]
        software = [sw for *_, sw in named]
        taken = set(hosts)
        tail_mass = max(0.0, 1.0 - sum(shares))
        n_tail = instances - len(hosts)
        harmonic = sum(1 / (j + 30) ** 1.1 for j in range(n_tail)) or 1.0
        tlds = ("social", "org", "net", "de", "fr", "uk", "online", "xyz", "cafe", "space", "host")
        while len(hosts) < instances:
            j = len(hosts) - len(named)
            name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
            style = rng.random()
            if style < 0.35:
                host = f"{name}.{rng.choice(tlds)}"
            elif style < 0.55:
                host = f"mastodon.{name}.{rng.choice(tlds)}"
            elif style < 0.7:
                host = f"social.{name}.{rng.choice(tlds)}"
            elif style < 0.8:
                host = f"{name}.masto.host"
            else:
                host = f"{name}{rng.choice(('', 'don', 'todon', 'stodon'))}.{rng.choice(tlds)}"
            if host in taken:
                continue
            taken.add(host)
            hosts.append(host)
            shares.append(tail_mass * (1 / (j + 30) ** 1.1) / harmonic)
            langs.append(None)
            r = rng.random()
            software.append("misskey" if r < 0.025 else "pleroma" if r < 0.045 else "mastodon")
        self.hosts = hosts
        self.software = software
        self.observer_index = [hosts.index(h) for h in observers]
        instance_cw = list(accumulate(shares))

        # -- languages
        self.languages, lang_weights = _languages()
        lang_cw = list(accumulate(lang_weights))
        by_language: dict[str, list[int]] = {}
        for i, lang in enumerate(langs):
            if lang is not None:
                by_language.setdefault(lang, []).append(i)
        lang_instance_cw = {
            lang: (idx, list(accumulate(shares[i] for i in idx)))
            for lang, idx in by_language.items()
        }
        lang_index = {code: i for i, code in enumerate(self.languages)}

        # -- accounts: founders first (every instance has one), then language anchors (every
        # language is written by one), then the rest.
        n_lang = len(self.languages)
        self.n_users = users
        acct_instance = array("i", bytes(4 * users))
        acct_lang = array("h", bytes(2 * users))
        anchor = bytearray(users)
        n_codes = len(self.languages)
        for k in range(users):
            if k < instances:
                inst = k
                lang = langs[k]
                li = lang_index[lang] if lang else bisect(lang_cw, rng.random() * lang_cw[-1])
            else:
                li = min(bisect(lang_cw, rng.random() * lang_cw[-1]), n_codes - 1)
                if instances <= k < instances + n_lang:
                    li = k - instances
                    anchor[k] = 1
                lang = self.languages[li]
                options = lang_instance_cw.get(lang)
                if options and rng.random() < 0.6:
                    idx, cw = options
                    inst = idx[bisect(cw, rng.random() * cw[-1])]
                else:
                    inst = min(bisect(instance_cw, rng.random() * instance_cw[-1]), instances - 1)
                if anchor[k] and software[inst] != "mastodon":
                    inst = 0 if software[0] == "mastodon" else self.observer_index[0]
            acct_instance[k] = inst
            acct_lang[k] = li
        self.acct_instance = acct_instance
        self.acct_lang = acct_lang
        self.anchor = anchor

        # -- kinds: 0 person, 1 bot, 2 news (a person account posting headlines)
        kind = bytearray(users)
        pool = list(range(min(users, instances + n_lang), users)) or list(range(users))
        rng.shuffle(pool)
        n_bots = max(1, round(users * 0.011))
        n_news = max(1, round(users * 0.003))
        bots, news = pool[:n_bots], pool[n_bots : n_bots + n_news]
        botsin = hosts.index("botsin.space") if "botsin.space" in hosts else None
        for k in bots:
            kind[k] = 1
            if botsin is not None and rng.random() < 0.3:
                acct_instance[k] = botsin
        for k in news:
            kind[k] = 2
        self.kind = kind
        self.quake_bot = bots[min(5, len(bots) - 1)]  # posts earthquake reports all day
        self.marsey = pool[n_bots + n_news] if len(pool) > n_bots + n_news else 0

        # -- activity: the share of posts beyond everyone's first
        weights = [0.0] * users
        people = [k for k in range(users) if kind[k] == 0]
        rng.shuffle(people)
        groups = ((people, 50, 0.895), (bots, 2, 0.075), (news, 3, 0.03))
        for members, offset, mass in groups:
            norm = sum(1 / (r + offset) for r in range(len(members))) or 1.0
            for r, k in enumerate(members):
                weights[k] = mass / (r + offset) / norm
        weights[self.marsey] = min(weights[self.marsey], 1e-7)
        self.author_cw = list(accumulate(weights))
        self.first_post_order = list(range(users))
        rng.shuffle(self.first_post_order)

        # -- per-account details, compact
        names: list[str] = []
        seen: set[str] = set()
        for k in range(users):
            while True:
                r = rng.random()
                if kind[k] == 1:
                    stem = rng.choice(
                        ("news", "bot", "feed", "weather", "alerts", "rss", "updates")
                    )
                    base = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))
                    name = f"{base}{stem}" if r < 0.6 else f"{base}_{stem}"
                elif r < 0.3:
                    name = rng.choice(_FIRST) + rng.choice(("", "_", ".")) + rng.choice(_LAST)
                elif r < 0.6:
                    name = rng.choice(_FIRST) + str(rng.randint(1, 9999))
                else:
                    name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 5)))
                    if rng.random() < 0.3:
                        name = name.capitalize()
                if k == self.marsey:
                    name = "marsey"
                if name not in seen:
                    break
            seen.add(name)
            names.append(name)
        self.usernames = names
        created = array("i", bytes(4 * users))
        counts = array("i", bytes(12 * users))
        flags = bytearray(users)  # bit 0 noindex, 1 #nobot, 2 locked, 3/4 discoverable, 5 fields
        app = bytearray(users)
        note = array("h", bytes(2 * users))
        app_cw = list(accumulate(w for *_, w in _APPS))
        bot_app_cw = list(accumulate(w for *_, w in _BOT_APPS))
        for k in range(users):
            if rng.random() < 0.45:
                created[k] = rng.randint(*_NEW_ACCOUNT_DAYS)
            else:
                created[k] = rng.randint(*_OLD_ACCOUNT_DAYS)
            followers = int(math.exp(rng.gauss(4.0, 1.6)))
            if kind[k]:
                followers *= 10
            counts[3 * k] = followers
            counts[3 * k + 1] = int(math.exp(rng.gauss(4.5, 1.2)))
            counts[3 * k + 2] = int(math.exp(rng.gauss(5.5, 1.8)))
            f = 0
            r = rng.random()
            f |= 1 if r < 0.02 else 0
            f |= 2 if 0.02 <= r < 0.025 else 0
            f |= 4 if rng.random() < 0.03 else 0
            r = rng.random()
            f |= 8 if r < 0.6 else 16 if r < 0.7 else 0  # discoverable True / False / null
            f |= 32 if rng.random() < 0.4 else 0
            if k < instances or anchor[k]:
                f &= ~3  # founders and language anchors keep the counts exact: never opted out
            flags[k] = f
            if kind[k] == 1:
                app[k] = bisect(bot_app_cw, rng.random() * bot_app_cw[-1])
            else:
                app[k] = min(bisect(app_cw, rng.random() * app_cw[-1]), len(_APPS) - 1)
            note[k] = rng.randrange(4096)
        self.created = created
        self.counts = counts
        self.flags = flags
        self.app = app
        self.note = note
        self.app_cw = app_cw
        self.apps = [{"name": a, "website": w} for a, w, _ in _APPS]
        self._accounts: OrderedDict[int, dict[str, Any]] = OrderedDict()  # least recent first
        self.bot_apps = [{"name": a, "website": w} for a, w, _ in _BOT_APPS]

    # -- account objects

    def display_name(self, k: int) -> str:
        name = self.usernames[k]
        style = (k * 2654435761 >> 7) % 10
        if style < 4:
            return name.replace("_", " ").replace(".", " ").title()
        if style < 6:
            return name
        if style < 7:
            return f"{name.capitalize()} 🐘"
        if style < 9:
            return f"{_FIRST[k % len(_FIRST)].capitalize()} {_LAST[k % len(_LAST)].capitalize()}"
        return ""

    def note_html(self, k: int, origin: str) -> str:
        if self.kind[k] == 1:
            text = "Automated account. Posts headlines from the feed, not monitored."
            if self.flags[k] & 2:
                text += " #nobot"
            return f"<p>{text}</p>"
        n = self.note[k]
        if n % 7 == 0:
            return ""
        first = _FIRST[n % len(_FIRST)].capitalize()
        tag = _TAGS[n % len(_TAGS)]
        extra = _BIO_EXTRA[n % len(_BIO_EXTRA)]
        hashtags = (
            f'<a href="https://{origin}/tags/{tag}" class="mention hashtag" rel="tag">#<span>{tag}'
            "</span></a>"
        )
        if self.flags[k] & 2:
            hashtags += (
                f' <a href="https://{origin}/tags/nobot" class="mention hashtag" rel="tag">'
                "#<span>nobot</span></a>"
            )
        return f"<p>{first}. Interested in {tag} and other things. {extra}</p><p>{hashtags}</p>"

    def account_id(self, k: int, obs: int) -> str:
        """Author `k`'s id on instance `obs`: a snowflake of when that instance learnt of it."""
        if self.acct_instance[k] == obs:
            day = self.created[k]
        else:
            day = max(self.created[k], _KNOWN_SINCE + k % 60)
        return str(
            (((day - _EPOCH_DAY) * 86_400_000 + (k * 7919) % 86_400_000) << 16) | (obs & 0xFFFF)
        )

    def account(self, k: int, obs: int, day: int) -> dict[str, Any]:
        """The account object of author `k` as observing instance `obs` shows it on `day`
        (a fresh dict: templates are cached, since a few authors write most posts)."""
        key = (k << 16) | obs
        cache = self._accounts
        template = cache.get(key)
        if template is None:
            if len(cache) >= _ACCOUNT_CACHE:
                cache.popitem(last=False)
            template = cache[key] = self._account(k, obs)
        else:
            cache.move_to_end(key)
        account = template.copy()
        account["last_status_at"] = self.clock.day(day)
        account["emojis"] = []
        fields = template["fields"]
        account["fields"] = [f.copy() for f in fields] if fields else []
        return account

    def _account(self, k: int, obs: int) -> dict[str, Any]:
        inst = self.acct_instance[k]
        origin = self.hosts[inst]
        observer = self.hosts[obs]
        username = self.usernames[k]
        local = inst == obs
        created_day = self.created[k]
        sw = self.software[inst]
        hexid = f"{(k * 0x9E3779B97F4A7C15 + obs) & 0xFFFFFFFFFFFFFFFF:016x}"
        aid = self.account_id(k, obs)
        if local:
            acct = username
            avatar = f"https://{observer}/system/accounts/avatars/{hexid[:3]}/{hexid[3:6]}/original/{hexid}.png"
        else:
            acct = f"{username}@{origin}"
            avatar = f"https://{observer}/system/cache/accounts/avatars/{hexid[:3]}/{hexid[3:6]}/original/{hexid}.jpg"
        f = self.flags[k]
        followers, following, statuses = (
            self.counts[3 * k],
            self.counts[3 * k + 1],
            self.counts[3 * k + 2],
        )
        account: dict[str, Any] = {
            "id": aid,
            "username": username,
            "acct": acct,
            "display_name": self.display_name(k),
            "locked": bool(f & 4),
            "bot": self.kind[k] == 1,
            "discoverable": True if f & 8 else False if f & 16 else None,
            "group": False,
            "created_at": self.clock.prefix(created_day - _EPOCH_DAY) + "00:00:00.000Z",
            "note": self.note_html(k, origin),
            "url": f"https://{origin}/@{username}"
            if sw != "pleroma"
            else f"https://{origin}/users/{username}",
            "avatar": avatar,
            "avatar_static": avatar,
            "header": f"https://{observer}/headers/original/missing.png",
            "header_static": f"https://{observer}/headers/original/missing.png",
            "followers_count": followers,
            "following_count": following,
            "statuses_count": statuses,
            "last_status_at": None,
        }
        if local:
            account["noindex"] = bool(f & 1)
        account["emojis"] = []
        if f & 32:
            site = f"{username}.example.org"
            link = (
                f'<a href="https://{site}" rel="me nofollow noopener noreferrer" target="_blank">'
                f'<span class="invisible">https://</span><span class="">{site}</span>'
                '<span class="invisible"></span></a>'
            )
            account["fields"] = [
                {"name": "Pronouns", "value": _BIO_EXTRA[k % 4], "verified_at": None},
                {"name": "Web", "value": link, "verified_at": None},
            ]
        else:
            account["fields"] = []
        return account


# ----------------------------------------------------------------------------------------
# text


class _Texts:
    """Sentence pools per language, HTML-escaped once."""

    def __init__(self, seed: int, languages: Sequence[str]) -> None:
        rng = random.Random(f"tootlake-workload/{seed}/texts")
        self.sentences: list[list[str]] = []
        for code in languages:
            pool = self._pool(rng, code)
            self.sentences.append([_escape(s) for s in pool])
        self.terms = {t: [_escape(s) for s in texts] for t, texts in _TERM_POSTS.items()}
        self.headlines = [_escape(s) for s in _HEADLINES]

    @staticmethod
    def _pool(rng: random.Random, code: str) -> list[str]:
        if code in _PHRASES:
            starts, ends = _PHRASES[code]
            pool = [
                f"{s} {e}" if code not in ("ja", "zh", "ko") else f"{s}{e}"
                for s in starts
                for e in ends
            ]
            rng.shuffle(pool)
            return pool
        script = _LANGUAGE_SCRIPT.get(code)
        if script:
            lo, hi = _SCRIPTS[script]
            letters = [chr(c) for c in range(lo, hi + 1)]
        else:
            letters = list("abcdefghijklmnoprstuvyzaeiouaeio")
            if code in ("fi", "et", "hu"):
                letters += list("äöaaiikkllnnss")
            elif code in ("pl", "cs", "sk", "hr", "sl", "lt", "lv"):
                letters += list("ąęłńśźżčšžř")
            elif code in ("gl", "ca", "eu", "ast", "oc"):
                letters += list("ñçxzaeo")
        pool = []
        for _ in range(64):
            words = [
                "".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
                for _ in range(rng.randint(4, 12))
            ]
            pool.append(" ".join(words).capitalize() + rng.choice((".", ".", ".", "!", "?")))
        return pool


# ----------------------------------------------------------------------------------------
# the generator


class _Generator:
    def __init__(
        self,
        n: int,
        *,
        seed: int = 0,
        start: datetime = TALK_START,
        days: float = 10,
        observed_on: str | Mapping[str, float] = "mastodon.social",
        users: int | None = None,
        instances: int | None = None,
        longest: bool = False,
        daily: Sequence[float] | None = None,
    ) -> None:
        if n < 0:
            raise ConfigError(f"Invalid number of statuses: {n}. Give 0 or more.")
        if days <= 0:
            raise ConfigError(f"Invalid days: {days}. Give a positive number of days.")
        if start.tzinfo is None:
            raise ConfigError("start must be timezone-aware, e.g. datetime(2023, 2, 3, tzinfo=UTC)")
        if isinstance(observed_on, str):
            observers = {observed_on.lower(): 1.0}
        else:
            observers = {h.lower(): float(w) for h, w in observed_on.items() if w > 0}
        if not observers:
            raise ConfigError("observed_on needs at least one instance host")
        ratio = max(n, 1) / TALK["posts"]
        users = users if users is not None else max(1, round(TALK["users"] * ratio))
        instances = instances if instances is not None else round(TALK["instances"] * ratio)
        instances = max(instances, len(observers), min(20, users))
        users = max(users, instances)
        if n and users > n:
            users = n
            instances = min(instances, users)
        self.n = n
        self.seed = seed
        self.longest = longest
        self.world = _World(seed=seed, users=users, instances=instances, observers=list(observers))
        self.texts = _Texts(seed, self.world.languages)
        self.observer_weights = list(accumulate(observers.values()))
        self.start_ms = int(start.timestamp() * 1000)
        self.span_ms = int(days * 86_400_000)
        self.daily = list(daily) if daily is not None else None
        self.days = days
        self.start = start

    # -- time

    def _hour_counts(self, rng: random.Random) -> list[int]:
        hours = math.ceil(self.span_ms / 3_600_000)
        n_days = math.ceil(hours / 24)
        if self.daily is not None:
            day_w = (self.daily * n_days)[:n_days]
        elif self.start == TALK_START and n_days == len(_TALK_DAILY):
            day_w = list(_TALK_DAILY)
        else:
            day_w = []
            for d in range(n_days):
                weekday = (self.start + timedelta(days=d)).weekday()
                day_w.append((1.05 if weekday < 5 else 0.92) * rng.uniform(0.9, 1.1))
        weights = []
        for h in range(hours):
            when = self.start + timedelta(hours=h)
            hour = when.hour + when.minute / 60
            curve = (
                1
                + 0.42 * math.cos(2 * math.pi * (hour - 15) / 24)
                + 0.08 * math.cos(4 * math.pi * (hour - 10) / 24)
            )
            part = min(1.0, (self.span_ms - h * 3_600_000) / 3_600_000)
            weights.append(day_w[h // 24] * curve * part * rng.uniform(0.95, 1.05))
        return _apportion(self.n, weights)

    # -- statuses

    def statuses(self) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """(receipt ms, observer index, status) in receipt order."""
        w = self.world
        texts = self.texts
        clock = w.clock
        n, users = self.n, w.n_users
        rng = random.Random(f"tootlake-workload/{self.seed}/posts")
        rnd = rng.random
        choices = rng.choices
        hosts = w.hosts
        observers = w.observer_index
        obs_cw = self.observer_weights
        single_obs = observers[0] if len(observers) == 1 else None
        author_range = range(users)
        author_cw = w.author_cw
        first_order = w.first_post_order
        acct_instance, acct_lang, kind, anchor = w.acct_instance, w.acct_lang, w.kind, w.anchor
        software, languages, usernames = w.software, w.languages, w.usernames
        sentences = texts.sentences
        length_factor = [_LENGTH_FACTOR.get(code, 1.0) for code in languages]
        en = languages.index("en")
        quake_bot = w.quake_bot
        lengths = [math.exp(rng.gauss(4.48, 0.75)) for _ in range(4096)]  # characters wanted
        last_status: dict[int, tuple[int, str, str]] = {}  # author -> (observer, id, account id)
        next_first = 0  # every author's first post is spread evenly over the stream
        next_first_at = 0
        longest_at = n // 2 + n // 7 if self.longest and n else -1
        i = 0
        hour_counts = self._hour_counts(random.Random(f"tootlake-workload/{self.seed}/time"))
        for hour, count in enumerate(hour_counts):
            if not count:
                continue
            base = self.start_ms + hour * 3_600_000
            span = min(3_600_000, self.span_ms - hour * 3_600_000)
            offsets = sorted(int(rnd() * span) for _ in range(count))
            drawn = choices(author_range, cum_weights=author_cw, k=count)
            obs_drawn = (
                [single_obs] * count
                if single_obs is not None
                else [
                    observers[j]
                    for j in choices(range(len(observers)), cum_weights=obs_cw, k=count)
                ]
            )
            day = base // 86_400_000
            rates = self._term_rates(day)
            for j in range(count):
                t = base + offsets[j]
                special = None
                if i == next_first_at and next_first < users:
                    k = first_order[next_first]
                    next_first += 1
                    next_first_at = (next_first * n) // users if next_first < users else -1
                    if i == longest_at:
                        longest_at += 1  # keep every author's first post
                elif i == longest_at:
                    k = w.marsey
                    special = "longest"
                else:
                    k = drawn[j]
                obs = obs_drawn[j]
                i += 1
                inst = acct_instance[k]
                local = inst == obs
                origin = hosts[inst]
                sw = software[inst]
                kk = kind[k]
                # -- when: remote statuses arrive after they were written
                if local:
                    created = t - int(rnd() * 40)
                else:
                    r = rnd()
                    created = t - (
                        int(-math.log(1.0 - r) * 4000) if r < 0.98 else int(rnd() * 14_400_000)
                    )
                seq = (i * 40503 + k) & 0xFFFF
                own_id = str((created << 16) | seq)
                sid = own_id if local else str((t << 16) | (i & 0xFFFF))
                # -- language and words
                li = acct_lang[k]
                u = rnd()
                term = None
                if u < rates[-1][0] and not anchor[k] and special is None:
                    for limit, name in rates:
                        if u < limit:
                            term = name
                            break
                if k == quake_bot and special is None:
                    term = "quake"
                if term is not None or not anchor[k] and li != en and rnd() < 0.08:
                    li = en
                if sw != "mastodon" or (rnd() < 0.02 and not anchor[k]):
                    language = None
                else:
                    language = languages[li]
                # -- the content
                tags: list[str] = []
                mentions: list[int] = []
                link: tuple[str, str | None] | None = None
                r = rnd()
                if special == "longest":
                    body = _LONGEST_OPENING + "😺" * (LONGEST_CHARACTERS - len(_LONGEST_OPENING))
                elif term == "quake":
                    mag = 2.5 + rnd() * 4
                    body = (
                        f"#Earthquake M{mag:.1f} strikes {int(rnd() * 90) + 5} km "
                        f"{('N', 'S', 'E', 'W', 'NE', 'SW')[int(rnd() * 6)]} of "
                        f"{_QUAKE_PLACES[int(rnd() * len(_QUAKE_PLACES))]} "
                        f"{clock.seconds(created)[11:16]} UTC"
                    )
                    tags.append("earthquake")
                    link = ("www.emsc-csem.org", f"Earthquake/earthquake.php?id={seq * 7 + 1000}")
                elif term is not None:
                    pool = texts.terms[term]
                    body = pool[int(rnd() * len(pool))]
                    if rnd() < 0.4:
                        body += " " + sentences[en][int(rnd() * len(sentences[en]))]
                elif kk and rnd() < 0.9:
                    pool = texts.headlines
                    body = pool[int(rnd() * len(pool))]
                    link = (_DOMAINS[int(rnd() * len(_DOMAINS))], None)
                elif r < 0.03:
                    body = ""  # media only
                else:
                    pool = sentences[li]
                    size = len(pool)
                    target = lengths[int(rnd() * 4096)] * length_factor[li]
                    if rnd() < 0.012:
                        target *= 6
                    parts = [pool[int(rnd() * size)]]
                    chars = len(parts[0])
                    while chars < target:
                        s = pool[int(rnd() * size)]
                        parts.append(s)
                        chars += len(s) + 1
                    if len(parts) > 2 and rnd() < 0.3:
                        cut = 1 + int(rnd() * (len(parts) - 1))
                        body = " ".join(parts[:cut]) + "</p><p>" + " ".join(parts[cut:])
                    elif len(parts) > 1 and rnd() < 0.15:
                        body = (
                            " ".join(parts[:1])
                            + ("<br />" if local else "<br>")
                            + " ".join(parts[1:])
                        )
                    else:
                        body = " ".join(parts)
                    if rnd() < 0.2:
                        body += f" {int(rnd() * 1000)}"
                    if rnd() < 0.14:
                        m = int(rnd() * 3) + 1
                        mentions = list({drawn[int(rnd() * count)]: None for _ in range(m)})
                    if rnd() < 0.24:
                        m = 1 + int(rnd() * rnd() * 5)
                        local_tags = _LOCAL_TAGS.get(languages[li])
                        for _ in range(m):
                            if local_tags and rnd() < 0.4:
                                tags.append(local_tags[int(rnd() * len(local_tags))])
                            else:
                                tags.append(_TAGS[int(rnd() * rnd() * len(_TAGS))])
                    if rnd() < 0.16:
                        link = (_DOMAINS[int(rnd() * len(_DOMAINS))], None)
                if mentions or tags or link is not None:
                    html = self._content(
                        body,
                        origin,
                        local,
                        tags,
                        [(usernames[m], hosts[acct_instance[m]]) for m in mentions],
                        link,
                        seq,
                    )
                else:
                    html = f"<p>{body}</p>" if body else ""
                # -- the rest of the status
                media = None
                if special is None and (body == "" or rnd() < (0.08 if kk else 0.2)):
                    media = self._media(rng, hosts[obs], origin, local, created, seq)
                card = None
                if link is not None and rnd() < 0.45:
                    card = self._card(link, seq, obs)
                reply_to = None
                reply_account = None
                if rnd() < 0.06:
                    prev = last_status.get(k)
                    if prev is not None and prev[0] == obs:
                        reply_to, reply_account = prev[1], prev[2]
                account = w.account(k, obs, created // 86_400_000)
                last_status[k] = (obs, sid, account["id"])
                cw = rnd() < 0.04 and special is None
                faves = 0 if rnd() < 0.85 else int(rnd() * rnd() * 40)
                status: dict[str, Any] = {
                    "id": sid,
                    "created_at": clock.ms(created)
                    if (local or sw != "mastodon")
                    else clock.seconds(created),
                    "in_reply_to_id": reply_to,
                    "in_reply_to_account_id": reply_account,
                    "sensitive": cw or (media is not None and rnd() < 0.05),
                    "spoiler_text": (
                        "CW: "
                        + ("politics", "food", "mental health", "eye contact", "long")[seq % 5]
                    )
                    if cw
                    else "",
                    "visibility": "public",
                    "language": language,
                    "uri": f"https://{origin}/users/{usernames[k]}/statuses/{own_id}"
                    if sw == "mastodon"
                    else self._uri(origin, sw, own_id, seq),
                    "url": None,
                    "replies_count": 0 if rnd() < 0.9 else int(rnd() * 5),
                    "reblogs_count": 0 if rnd() < 0.9 else int(rnd() * 10),
                    "favourites_count": faves,
                    "edited_at": None,
                    "content": html,
                    "reblog": None,
                }
                status["url"] = (
                    f"https://{origin}/@{usernames[k]}/{own_id}"
                    if sw == "mastodon"
                    else status["uri"]
                )
                if local:  # only the author's own server knows the client app
                    if rnd() < 0.02:
                        status["application"] = None  # e.g. posted by an app since deleted
                    elif kk == 1:
                        status["application"] = w.bot_apps[w.app[k]].copy()
                    else:
                        app = w.app[k] if rnd() < 0.85 else self._any_app(rnd)
                        status["application"] = w.apps[app].copy()
                status["account"] = account
                status["media_attachments"] = media or []
                status["mentions"] = mentions and [
                    {
                        "id": w.account_id(m, obs),
                        "username": usernames[m],
                        "url": f"https://{hosts[acct_instance[m]]}/@{usernames[m]}",
                        "acct": usernames[m]
                        if acct_instance[m] == obs
                        else f"{usernames[m]}@{hosts[acct_instance[m]]}",
                    }
                    for m in mentions
                ]
                status["tags"] = tags and [
                    {"name": tag.lower(), "url": f"https://{hosts[obs]}/tags/{tag.lower()}"}
                    for tag in tags
                ]
                emojis = []
                if rnd() < 0.02:
                    emojis = [self._emoji(hosts[obs], seq)]
                    status["content"] = html.replace("</p>", f" :{emojis[0]['shortcode']}:</p>", 1)
                status["emojis"] = emojis
                status["card"] = card
                status["poll"] = (
                    self._poll(rnd, created, seq) if special is None and rnd() < 0.008 else None
                )
                yield t, obs, status

    def _any_app(self, rnd: Any) -> int:
        cw = self.world.app_cw
        return min(bisect(cw, rnd() * cw[-1]), len(_APPS) - 1)

    def _term_rates(self, day: int) -> list[tuple[float, str]]:
        today = date.fromordinal(day + _EPOCH_DAY)
        rates = dict(_TERM_BASE)
        rates.update(_TERM_DAYS.get(today, {}))
        out, total = [], 0.0
        for name in sorted(rates):
            total += rates[name]
            out.append((total, name))
        return out

    @staticmethod
    def _uri(origin: str, sw: str, own_id: str, seq: int) -> str:
        number = int(own_id)
        if sw == "misskey":  # an "aid": base-36 milliseconds since 2000, then 2 of noise
            value = ((number >> 16) - 946_684_800_000) * 1296 + seq % 1296
            digits = ""
            while value:
                value, digit = divmod(value, 36)
                digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
            return f"https://{origin}/notes/{digits}"
        hexed = f"{(number * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128):032x}"  # a uuid
        uuid = f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"
        return f"https://{origin}/objects/{uuid}"

    @staticmethod
    def _content(
        body: str,
        origin: str,
        local: bool,
        tags: list[str],
        mentions: list[tuple[str, str]],
        link: tuple[str, str | None] | None,
        seq: int,
    ) -> str:
        if not body and not tags and not mentions and link is None:
            return ""
        extra = "" if local else ' rel="nofollow noopener noreferrer" target="_blank"'
        out = []
        if mentions:
            cards = (
                f'<span class="h-card"><a href="https://{host}/@{name}" class="u-url mention"'
                f"{extra}>@<span>{name}</span></a></span>"
                for name, host in mentions
            )
            out.append(" ".join(cards) + " ")
        out.append(body)
        if link is not None:
            domain, path = link
            if path is None:
                section = _SLUG_WORDS[seq % len(_SLUG_WORDS)]
                slug = _SLUG_WORDS[(seq >> 4) % len(_SLUG_WORDS)]
                path = f"{section}/2023/feb/{seq % 28 + 1:02d}/{slug}-{seq}"
            prefix = "https://www." if domain.startswith("www.") else "https://"
            rest = f"{domain.removeprefix('www.')}/{path}"
            shown, hidden = rest[:30], rest[30:]
            rel = (
                ' target="_blank" rel="nofollow noopener noreferrer"'
                if local
                else ' rel="nofollow noopener noreferrer" target="_blank"'
            )
            out.append(
                f' <a href="{prefix}{rest}"{rel}><span class="invisible">{prefix}</span>'
                f'<span class="{"ellipsis" if hidden else ""}">{shown}</span>'
                f'<span class="invisible">{hidden}</span></a>'
            )
        html = "<p>" + "".join(out) + "</p>"
        if tags:
            rel = ' rel="tag"' if local else ' rel="nofollow noopener noreferrer" target="_blank"'
            html += "<p>" + " ".join(
                f'<a href="https://{origin}/tags/{tag}" class="mention hashtag"{rel}>'
                f"#<span>{tag}</span></a>"
                for tag in tags
            ) + "</p>"  # fmt: skip
        return html

    @staticmethod
    def _media(
        rng: random.Random, observer: str, origin: str, local: bool, created: int, seq: int
    ) -> list[dict[str, Any]]:
        out = []
        store = f"https://{observer}/system/{'' if local else 'cache/'}media_attachments/files/"
        for m in range(1 + int(rng.random() ** 3 * 4)):
            mid = str(((created + 1 + m) << 16) | (seq & 0xFFFF))
            path = f"{mid[0:3]}/{mid[3:6]}/{mid[6:9]}/{mid[9:12]}/{mid[12:15]}/{mid[15:18]}"
            variant = (seq + m) & 3
            original, small = _MEDIA_META[variant]
            video = (seq + m) % 13 == 0
            out.append({
                "id": mid,
                "type": "video" if video else "image",
                "url": f"{store}{path}/original/{mid[-8:]}.{'mp4' if video else 'jpg'}",
                "preview_url": f"{store}{path}/small/{mid[-8:]}.jpg",
                "remote_url": None if local else f"https://{origin}/system/media_attachments/files/{path}/original/{mid[-8:]}.jpg",
                "preview_remote_url": None,
                "text_url": None,
                "meta": {"original": original.copy(), "small": small.copy()},
                "description": None if (seq + m) % 3 == 0 else _ALT_TEXTS[variant],
                "blurhash": "UcGJmLy4T;RC?Ks=s@M_-XV|xInz-qRijEo#",
            })  # fmt: skip
        return out

    @staticmethod
    def _card(link: tuple[str, str | None], seq: int, obs: int) -> dict[str, Any]:
        domain = link[0]
        return {
            "url": f"https://{domain}/",
            "title": _HEADLINES[seq % len(_HEADLINES)],
            "description": "Read the full story on our website.",
            "type": "link",
            "author_name": "",
            "author_url": "",
            "provider_name": domain.removeprefix("www."),
            "provider_url": "",
            "html": "",
            "width": 400,
            "height": 225,
            "image": f"https://cdn.example/cache/preview_cards/images/{seq:09d}/original/{seq:x}.jpg",
            "embed_url": "",
            "blurhash": "UMEU}gAC9HR+XS$*R*s90gs:^jNGnjafofn$",
        }

    def _poll(self, rnd: Any, created: int, seq: int) -> dict[str, Any]:
        options = [
            {"title": title, "votes_count": int(rnd() * 20)}
            for title in ("Yes", "No", "Show results")[: 2 + int(rnd() * 2)]
        ]
        return {
            "id": str(seq * 31 + 1000),
            "expires_at": self.world.clock.ms(created + 86_400_000),
            "expired": False,
            "multiple": rnd() < 0.2,
            "votes_count": sum(o["votes_count"] for o in options),
            "voters_count": None,
            "options": options,
            "emojis": [],
        }

    @staticmethod
    def _emoji(observer: str, seq: int) -> dict[str, Any]:
        code = ("blobcat", "ablobcatwave", "mastodon", "verified", "star_solid")[seq % 5]
        base = f"https://{observer}/system/custom_emojis/images/000/{seq % 1000:03d}"
        return {
            "shortcode": code,
            "url": f"{base}/original/{code}.png",
            "static_url": f"{base}/static/{code}.png",
            "visible_in_picker": True,
        }


# ----------------------------------------------------------------------------------------
# the public API


def generate_statuses(
    n: int,
    *,
    seed: int = 0,
    start: datetime = TALK_START,
    days: float = 10,
    observed_on: str | Mapping[str, float] = "mastodon.social",
    users: int | None = None,
    instances: int | None = None,
    longest: bool = False,
    daily: Sequence[float] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """`n` statuses as `(observed_on, status)` pairs, in the order the observer received them.

    seed         the same seed gives the same statuses, byte for byte
    start, days  the time window (the talk's: 3 February 2023, ten days)
    observed_on  the instance whose public stream is recorded, or {host: share} for several
    users        distinct authors (default: the talk's 142,877 per 1,622,149 posts, scaled)
    instances    distinct author instances (default: the talk's 8,309, scaled)
    longest      include the talk's longest post (68,991 characters) once, mid-stream
    daily        relative volume per day (default: the talk's days, or a weekly rhythm)
    """
    gen = _Generator(
        n, seed=seed, start=start, days=days, observed_on=observed_on, users=users,
        instances=instances, longest=longest, daily=daily,
    )  # fmt: skip
    hosts = gen.world.hosts
    for _t, obs, status in gen.statuses():
        yield hosts[obs], status


def generate_events(
    n: int, *, edits: float = 0.015, deletes: float = 0.01, **options: Any
) -> Iterator[WorkloadEvent]:
    """`n` new statuses ("update") plus, in time order, edits of some ("status.update", a
    share `edits`, minutes later) and deletes of others ("delete", a share `deletes`, minutes
    to hours later; the payload is the observer's status id). Options as generate_statuses."""
    gen = _Generator(n, **options)
    hosts = gen.world.hosts
    clock = gen.world.clock
    rng = random.Random(f"tootlake-workload/{gen.seed}/events")
    pending: list[tuple[int, int, str, int, dict[str, Any] | str]] = []
    order = 0
    for t, obs, status in gen.statuses():
        while pending and pending[0][0] <= t:
            at, _, kind, o, payload = heapq.heappop(pending)
            yield WorkloadEvent(kind, hosts[o], payload, at)
        yield WorkloadEvent("update", hosts[obs], status, t)
        r = rng.random()
        if r < edits:
            at = t + 30_000 + int(rng.expovariate(1 / 600_000))
            edited = dict(status)
            edited["content"] = _edit_content(status["content"])
            local = "application" in status
            edited["edited_at"] = clock.ms(at) if local else clock.seconds(at - 2_000)
            order += 1
            heapq.heappush(pending, (at, order, "status.update", obs, edited))
        elif r < edits + deletes:
            at = t + 20_000 + int(rng.expovariate(1 / 3_600_000))
            order += 1
            heapq.heappush(pending, (at, order, "delete", obs, status["id"]))
    while pending:
        at, _, kind, o, payload = heapq.heappop(pending)
        yield WorkloadEvent(kind, hosts[o], payload, at)


def _edit_content(html: str) -> str:
    if not html:
        return "<p>(added a caption)</p>"
    head, sep, tail = html.rpartition("</p>")
    return f"{head} (edit: fixed a typo){sep}{tail}" if sep else html + " (edit)"


def status_lines(n: int, *, wrapped: bool = True, **options: Any) -> Iterator[bytes]:
    """The fast path: statuses already serialized, one JSON line each (ending in a newline).

    wrapped=True gives tootlake's own recording format `{"observed_on": host, "status": {...}}`
    (so several observers can share a file); False gives bare statuses, as a stream's `data:`.
    Options as generate_statuses.
    """
    dumps = orjson.dumps
    if wrapped:
        for host, status in generate_statuses(n, **options):
            yield dumps({"observed_on": host, "status": status}) + b"\n"
    else:
        for _host, status in generate_statuses(n, **options):
            yield dumps(status) + b"\n"


def write_jsonl(path: str | Path, n: int, *, wrapped: bool = True, **options: Any) -> int:
    """Write `n` statuses as JSON lines (see status_lines); return the bytes written."""
    written = 0
    with open(path, "wb") as handle:
        batch: list[bytes] = []
        for line in status_lines(n, wrapped=wrapped, **options):
            batch.append(line)
            if len(batch) >= 2048:
                written += sum(map(len, batch))
                handle.writelines(batch)
                batch.clear()
        written += sum(map(len, batch))
        handle.writelines(batch)
    return written


def write_sse(
    path: str | Path,
    n: int,
    *,
    edits: float = 0.015,
    deletes: float = 0.01,
    heartbeats: bool = True,
    observed_on: str = "mastodon.social",
    **options: Any,
) -> dict[str, int]:
    """Write an SSE capture of one instance's public stream, framed as a real server frames it:
    the `:)` opener, `event: NAME` / `data: ONE-LINE` / blank line per event, a `delete` with
    a bare id, and a `:thump` comment every 15 s of stream time (the pre-2026 framing, which
    every client parses). Return counts of what was written (updates, edits, deletes,
    heartbeats, bytes). Options as generate_events."""
    if not isinstance(observed_on, str):
        raise ConfigError("An SSE capture records one instance: give observed_on as one host")
    counts = {"updates": 0, "edits": 0, "deletes": 0, "heartbeats": 0, "bytes": 0}
    start = options.get("start", TALK_START)
    next_beat = int(start.timestamp() * 1000) + _HEARTBEAT_MS
    dumps = orjson.dumps
    with open(path, "wb") as handle:
        chunks: list[bytes] = [b":)\n"]
        for event in generate_events(
            n, edits=edits, deletes=deletes, observed_on=observed_on, **options
        ):
            if heartbeats and event.at_ms >= next_beat:
                beats = (event.at_ms - next_beat) // _HEARTBEAT_MS + 1
                chunks.append(b":thump\n" * beats)
                counts["heartbeats"] += beats
                next_beat += beats * _HEARTBEAT_MS
            if event.kind == "delete":
                assert isinstance(event.payload, str)
                chunks.append(b"event: delete\ndata: " + event.payload.encode() + b"\n\n")
                counts["deletes"] += 1
            else:
                kind = b"update" if event.kind == "update" else b"status.update"
                chunks.append(b"event: " + kind + b"\ndata: " + dumps(event.payload) + b"\n\n")
                counts["updates" if event.kind == "update" else "edits"] += 1
            if len(chunks) >= 2048:
                counts["bytes"] += sum(map(len, chunks))
                handle.writelines(chunks)
                chunks.clear()
        counts["bytes"] += sum(map(len, chunks))
        handle.writelines(chunks)
    return counts
