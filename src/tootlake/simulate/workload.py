"""A seeded generator of statuses shaped like real fediverse traffic.

`generate(n, hosts=..., seed=...)` (or a `Workload` kept across calls) returns `Draft`s: what an
author wrote, before any server gave it ids. The simulated fediverse turns a draft into Mastodon
JSON per observing instance (`tootlake.simulate.status`).

What "shaped like real data" means here, each number read off public timelines:
  * origins: the simulated instances plus "virtual" remote servers (mastodon.social-heavy, a
    few Misskey, Akkoma, Bridgy Fed and Threads ones, whose uris look nothing like Mastodon's);
  * languages skewed (English about half, then German, Japanese, French, Spanish...), about 3%
    null; each author mostly writes one language;
  * lengths with a long tail (log-normal words), HTML with `<p>`, `<br>`, hashtags, mentions,
    links split into invisible/ellipsis spans as Mastodon renders them;
  * client apps on local posts (Web, Ivory, Tusky, the official apps, Elk...), a third hidden;
  * bots, a few opted-out accounts (`noindex`, or #nobot in the bio), and statuses public feeds
    must never show: unlisted/private/direct, boosts, replies to other people;
  * a share of posts (`real_share`) borrow content, tags, media and cards from real recorded
    statuses (data/statuses.jsonl), so real-world HTML reaches the collector.

Everything is a pure function of (seed, number of simulated instances): hosts only name things,
so the same seed gives the same workload whatever ports the servers got.
"""

from __future__ import annotations

import bisect
import itertools
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = ["Author", "Draft", "VIRTUAL_HOSTS", "Workload", "generate", "real_statuses"]

# Remote servers that are not simulated: (host, share of virtual posts, software).
VIRTUAL_HOSTS: tuple[tuple[str, float, str], ...] = (
    ("mastodon.social", 0.30, "mastodon"),
    ("mstdn.social", 0.04, "mastodon"),
    ("fosstodon.org", 0.04, "mastodon"),
    ("infosec.exchange", 0.04, "mastodon"),
    ("mas.to", 0.03, "mastodon"),
    ("hachyderm.io", 0.03, "mastodon"),
    ("chaos.social", 0.03, "mastodon"),
    ("mstdn.jp", 0.03, "mastodon"),
    ("mastodon.world", 0.02, "mastodon"),
    ("troet.cafe", 0.02, "mastodon"),
    ("det.social", 0.02, "mastodon"),
    ("techhub.social", 0.02, "mastodon"),
    ("piaille.fr", 0.01, "mastodon"),
    ("norden.social", 0.01, "mastodon"),
    ("mastodon.art", 0.01, "mastodon"),
    ("misskey.io", 0.05, "misskey"),
    ("fe.disroot.org", 0.01, "akkoma"),
    ("bsky.brid.gy", 0.03, "bridgy"),
    ("threads.net", 0.02, "threads"),
)

LANGUAGES: tuple[tuple[str | None, float], ...] = (
    ("en", 0.47), ("de", 0.12), ("ja", 0.07), ("fr", 0.05), ("es", 0.045), ("pt", 0.03),
    ("nl", 0.025), ("it", 0.015), ("pl", 0.01), ("zh", 0.01), ("sv", 0.01), ("fi", 0.01),
    ("ru", 0.008), ("ko", 0.006), ("uk", 0.005), ("ca", 0.005), ("cs", 0.005), ("da", 0.005),
    ("tr", 0.005), (None, 0.03),
)  # fmt: skip

# A few words per language: enough for text that a language detector and a word count believe.
_WORDS: dict[str, str] = {
    "en": "the a of and to in is it that for on with this was just today people time new good "
    "really think about what know like open source data work week coffee train rain morning "
    "release bug fix server small garden book reading cat dog music city weather",
    "de": "der die das und ist nicht ich es zu mit auf heute ein eine wieder noch schon mal "
    "Zug Bahn Kaffee Wetter gut neue Woche Arbeit Stadt Buch Katze Musik Regen Garten wirklich",
    "fr": "le la les et est une un pas je des que pour dans avec sur aujourd'hui très bien "
    "nouveau travail semaine café train pluie ville livre chat musique jardin vraiment",
    "es": "el la los y es un una que de en para con por hoy muy bien nuevo trabajo semana café "
    "tren lluvia ciudad libro gato música jardín realmente",
    "pt": "o a os e é um uma que de em para com por hoje muito bem novo trabalho semana café "
    "chuva cidade livro gato música jardim",
    "nl": "de het een en is niet ik dat van op met vandaag nieuw goed werk week koffie trein "
    "regen stad boek kat muziek tuin",
    "it": "il la i e è un una che di in per con oggi molto bene nuovo lavoro settimana caffè "
    "treno pioggia città libro gatto musica",
    "pl": "i w na jest nie to się z że do dzisiaj bardzo dobrze nowy praca tydzień kawa pociąg "
    "deszcz miasto książka kot muzyka",
    "sv": "och att det som en på är för med jag idag mycket bra ny arbete vecka kaffe tåg regn "
    "stad bok katt musik",
    "fi": "ja on ei se että mutta tänään hyvin uusi työ viikko kahvi juna sade kaupunki kirja "
    "kissa musiikki",
    "ru": "и в не на я что это с как сегодня очень хорошо новый работа неделя кофе поезд "
    "дождь город книга кот музыка",
    "uk": "і в не на я що це з як сьогодні дуже добре новий робота тиждень кава потяг дощ "
    "місто книга кіт музика",
    "ca": "el la i és un una que de en per amb avui molt bé nou feina setmana cafè tren pluja",
    "cs": "a v na je se že to s jsem dnes velmi dobře nový práce týden káva vlak déšť město",
    "da": "og i at det en er til på med jeg i dag meget godt ny arbejde uge kaffe tog regn by",
    "tr": "ve bir bu da için ile çok bugün iyi yeni iş hafta kahve tren yağmur şehir kitap",
}
# Languages written without spaces: phrases glued together.
_PHRASES: dict[str, str] = {
    "ja": "今日は 本当に 新しい 仕事が 終わった 雨が 降っている コーヒーを 飲みながら "
    "電車で 本を 読んだ 猫が かわいい 音楽を 聴いています よろしくお願いします",
    "zh": "今天 天气 很好 我们 一起 新的 工作 咖啡 火车 下雨 城市 读书 猫咪 音乐 真的",
    "ko": "오늘 정말 새로운 일이 끝났다 비가 온다 커피를 마시면서 기차에서 책을 읽었다 고양이 음악",
}
_EMOJI = ["🙂", "😂", "🎉", "❤️", "🔥", "👀", "🤔", "☕", "🌧️", "🐈", "📚", "🚆", "✨", "🙏", "💡"]

# Client apps of local posts: (name, website) and weight. Mastodon serializes the web UI as
# {"name": "Web", "website": null}.
_APPS: tuple[tuple[tuple[str, str | None], float], ...] = (
    (("Web", None), 0.40),
    (("Ivory for iOS", "https://tapbots.com/ivory/"), 0.09),
    (("Mastodon for iOS", "https://app.joinmastodon.org/ios"), 0.09),
    (("Mastodon for Android", "https://app.joinmastodon.org/android"), 0.08),
    (("Tusky", "https://tusky.app"), 0.06),
    (("Elk", "https://elk.zone"), 0.04),
    (("Ice Cubes", "https://github.com/Dimillian/IceCubesApp"), 0.03),
    (("Phanpy", "https://phanpy.social"), 0.03),
    (("Fedilab", "https://fedilab.app"), 0.03),
    (("Moa", "https://moa.party"), 0.01),
    (("Megalodon", "https://sk22.github.io/megalodon"), 0.02),
    (("IFTTT", "https://ifttt.com"), 0.01),
    (("Buffer", "https://buffer.com"), 0.01),
)
_BOT_APPS: tuple[tuple[str, str | None], ...] = (
    ("feed2toot", "https://gitlab.com/chaica/feed2toot"),
    ("Mastodon Twitter Crossposter", None),
    ("RSS to Mastodon", None),
    ("earthquake-bot", None),
)
_SPOILERS = ("politics", "US politics", "food", "mental health", "eye contact", "spoilers", "long")
_LINK_HOSTS = (
    "www.bbc.com/news/articles",
    "github.com",
    "www.theguardian.com/world/2025",
    "arstechnica.com/science",
    "blog.example.org/posts",
    "www.heise.de/news",
    "www.youtube.com/watch?v=",
    "en.wikipedia.org/wiki",
)
_TAGS = (
    "Mastodon",
    "fediverse",
    "OpenSource",
    "photography",
    "caturday",
    "rstats",
    "python",
    "art",
    "news",
    "climate",
    "music",
    "books",
    "running",
    "linux",
    "TTRPG",
    "cooking",
    "Bahn",
    "Politik",
    "gardening",
    "science",
    "DnD",
    "100DaysOfCode",
    "SilentSunday",
    "nobot",
)
_SYLLABLES = ["ka", "ri", "to", "mi", "na", "lo", "ve", "ra", "sen", "tor", "el", "an", "jo"]
_SYLLABLES += ["ha", "yu", "ki", "ben", "mar", "lu", "zo", "fe", "dan", "nic"]

# The opt-out tags people put in a bio or a profile field, lowercase; in bios, as written
OPT_OUT_TAGS = ("nobot", "nobots", "noindex", "nosearch", "noarchive")
_BIO_OPT_OUT = ("nobot", "NoBots", "noindex", "nosearch")

_VISIBILITY = (("public", 0.86), ("unlisted", 0.09), ("private", 0.04), ("direct", 0.01))
_VISIBILITIES = [v for v, _ in _VISIBILITY]


def _unique_usernames(authors: list[Author]) -> list[Author]:
    """`authors` with each username taken once on their server (as Mastodon's are: case
    aside, one account per name), a number added to a repeated one. Two accounts under one
    name made one account of two for a collector, whose `noindex` then hid the other's posts
    while the ground truth still expected them."""
    taken: set[str] = set()
    out = []
    for author in authors:
        username, n = author.username, 1
        name, dot, rest = username.partition(".")  # (a bridge's name.bsky.social)
        while username.lower() in taken:
            n += 1
            username = f"{name}_{n}{dot}{rest}"
        taken.add(username.lower())
        out.append(author if username == author.username else replace(author, username=username))
    return out


@dataclass(frozen=True, slots=True)
class Author:
    """An account on its home server (`home`); `home_index` is the simulated instance, or None."""

    key: int  # stable number: seeds the author's ids
    username: str
    home: str
    home_index: int | None
    software: str  # mastodon | misskey | akkoma | bridgy | threads
    display_name: str
    note: str  # bio HTML
    bot: bool
    noindex: bool
    locked: bool
    discoverable: bool
    language: str | None  # the language most of their posts are in
    app: tuple[str, str | None] | None  # preferred client; None: the author hides it
    created_at: str  # Mastodon gives accounts a date: "2022-11-01T00:00:00.000Z"
    followers_count: int
    following_count: int
    statuses_count: int

    @property
    def opted_out(self) -> bool:
        """Asked not to be indexed: `noindex` (visible on the home server only), or an opt-out
        tag in the bio or a profile field (visible everywhere)."""
        return self.noindex or self.opt_out_tag

    @property
    def opt_out_tag(self) -> bool:
        """An opt-out tag (#nobot, #NoBots, #noarchive...) in the bio or a profile field."""
        note = self.note.lower()
        return any(f"#<span>{tag}</span>" in note for tag in OPT_OUT_TAGS) or any(
            marked for _, _, marked in self._fields()
        )

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        """Profile fields (name, value HTML): a third of accounts have some, and about 3% carry
        an opt-out tag there. Drawn from the key, like `group`."""
        return tuple((name, value) for name, value, _ in self._fields())

    def _fields(self) -> tuple[tuple[str, str, bool], ...]:
        draw = zlib.crc32(f"fields/{self.key}".encode()) % 100
        if draw >= 35:
            return ()
        ordinary = ("Pronouns", "they/them", False)
        if draw >= 3:
            return (ordinary,)
        scheme = "http" if self.home.startswith("127.") else "https"
        opt_out = (
            ("Bots", "#NoBots", True),
            ("Archive", _tag_html(f"{scheme}://{self.home}", "noarchive"), True),
            ("Search", "please #nosearch", True),
        )[draw]
        return ordinary, opt_out

    # Flags drawn from the key, not the workload's random sequence (which they leave as it
    # was): about 2% group accounts, 2% moved ones.
    @property
    def group(self) -> bool:
        return zlib.crc32(f"group/{self.key}".encode()) % 100 < 2

    @property
    def moved_to(self) -> tuple[str, str] | None:
        """(username, host) of the account this one moved to, or None."""
        if zlib.crc32(f"moved/{self.key}".encode()) % 100 >= 2:
            return None
        return self.username + "_new", "mas.to" if self.home == "mastodon.social" else (
            "mastodon.social"
        )

    @property
    def indexable(self) -> bool:
        """Opted in to full-text search (Mastodon 4.2+): a setting apart from `noindex` (the
        opt-out of search engines), so both can be on. Drawn from the key, like `group`:
        most discoverable accounts, a few others."""
        draw = zlib.crc32(f"indexable/{self.key}".encode()) % 100
        return draw < (85 if self.discoverable else 15)


@dataclass(slots=True)
class Draft:
    """What an author wrote: everything of a status except its ids and times.

    Treat it as immutable once made (it is not frozen only because frozen dataclasses are
    slow to build, and the publisher builds thousands a second).
    """

    author: Author
    content: str
    language: str | None
    visibility: str = "public"
    sensitive: bool = False
    spoiler_text: str = ""
    tags: tuple[str, ...] = ()
    mentions: tuple[tuple[str, str], ...] = ()  # (username, host)
    media: tuple[dict[str, Any], ...] = ()  # MediaAttachment fields without url/ids
    card: dict[str, Any] | None = None
    poll: dict[str, Any] | None = None
    emojis: tuple[dict[str, Any], ...] = ()
    application: tuple[str, str | None] | None = None  # shown on the home server only
    reply: str | None = None  # None, "self" (a thread) or "other"
    reblog: bool = False
    counts: tuple[int, int, int] = (0, 0, 0)  # replies, reblogs, favourites

    @property
    def streamable(self) -> bool:
        """Would a public stream carry it? Public, not a boost, not a reply to someone else."""
        return self.visibility == "public" and not self.reblog and self.reply != "other"


@cache
def real_statuses() -> tuple[dict[str, Any], ...]:
    """The real recorded statuses shipped in data/statuses.jsonl (public posts, rtoot, MIT)."""
    text = resources.files("tootlake.simulate").joinpath("data/statuses.jsonl").read_bytes()
    return tuple(orjson.loads(line) for line in text.splitlines() if line.strip())


def _escape(text: str) -> str:
    # Mastodon's HTML escaping (Rails' ERB::Util.html_escape): ' becomes &#39;.
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace('"', "&quot;").replace("'", "&#39;")
    )  # fmt: skip


def _link_html(url: str) -> str:
    """A link as Mastodon shortens it: scheme invisible, 30 characters shown, rest invisible."""
    scheme, rest = url.split("://", 1)
    shown, hidden = rest[:30], rest[30:]
    shown_class = "ellipsis" if hidden else ""
    return (
        f'<a href="{_escape(url)}" target="_blank" rel="nofollow noopener" translate="no">'
        f'<span class="invisible">{scheme}://</span><span class="{shown_class}">{_escape(shown)}'
        f'</span><span class="invisible">{_escape(hidden)}</span></a>'
    )


def _tag_html(host_url: str, tag: str) -> str:
    return (
        f'<a href="{host_url}/tags/{tag}" class="mention hashtag" rel="tag">#<span>{tag}</span></a>'
    )


def _mention_html(username: str, host: str) -> str:
    scheme = "http" if host.startswith("127.") else "https"
    return (
        f'<span class="h-card" translate="no"><a href="{scheme}://{host}/@{username}" '
        f'class="u-url mention">@<span>{username}</span></a></span>'
    )


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _pick(rng: random.Random, items: Sequence[Any], cum_weights: list[float]) -> Any:
    # What rng.choices(items, cum_weights=...)[0] does, minus its overhead (hot path).
    return items[bisect.bisect(cum_weights, rng.random() * cum_weights[-1], 0, len(items) - 1)]


class Workload:
    """Drafts for a fediverse of `hosts` (the simulated instances, in order) plus virtual ones.

    `virtual_share` of posts come from `virtual_hosts`; the rest from the simulated instances,
    the first ones busier (Zipf-like, as a flagship server is). `real_share` of drafts reuse
    the content of a real recorded status.
    """

    def __init__(
        self,
        hosts: Sequence[str],
        *,
        seed: int = 0,
        virtual_hosts: Sequence[tuple[str, float, str]] = VIRTUAL_HOSTS,
        virtual_share: float = 0.5,
        real_share: float = 0.2,
        authors_per_host: int = 40,
        bot_share: float = 0.06,
        noindex_share: float = 0.03,
        nobot_share: float = 0.01,
    ) -> None:
        self.hosts = list(hosts)
        self.seed = seed
        self.virtual_hosts = list(virtual_hosts)
        self.virtual_share = virtual_share if self.hosts else 1.0
        if not self.virtual_hosts:
            self.virtual_share = 0.0
        if not self.hosts and not self.virtual_hosts:
            raise ValueError("A workload needs at least one host.")
        self.real_share = real_share
        self.authors_per_host = max(1, authors_per_host)
        self.bot_share = bot_share
        self.noindex_share = noindex_share
        self.nobot_share = nobot_share
        self.rng = random.Random(f"tootlake-workload/{seed}")
        self._sim_weights = _cumulative([1 / (i + 1) ** 0.8 for i in range(len(self.hosts))])
        self._virtual_weights = _cumulative([w for _, w, _ in self.virtual_hosts])
        self._author_weights = _cumulative([1 / (i + 1) for i in range(self.authors_per_host)])
        self._languages = [lang for lang, _ in LANGUAGES]
        self._language_weights = _cumulative([w for _, w in LANGUAGES])
        self._apps = [app for app, _ in _APPS]
        self._app_weights = _cumulative([w for _, w in _APPS])
        self._authors: dict[str, list[Author]] = {}
        # Escaped once here, so sentences made of them need no escaping.
        self._words = {lang: _escape(words).split() for lang, words in (_WORDS | _PHRASES).items()}
        self._visibility_weights = _cumulative([w for _, w in _VISIBILITY])

    # -- authors -----------------------------------------------------------------------------

    def authors(
        self, home_index: int | None, host: str, software: str = "mastodon"
    ) -> list[Author]:
        """The accounts of one server, made on first use from the seed and the server's key."""
        key = f"sim{home_index}" if home_index is not None else host
        authors = self._authors.get(key)
        if authors is None:
            rng = random.Random(f"tootlake-authors/{self.seed}/{key}")
            authors = _unique_usernames(
                [
                    self._author(rng, i, host, home_index, software)
                    for i in range(self.authors_per_host)
                ]
            )
            self._authors[key] = authors
        return authors

    def _author(
        self, rng: random.Random, number: int, host: str, home_index: int | None, software: str
    ) -> Author:
        # crc32, not hash(): str hashes change from one process to the next. Simulated
        # servers are keyed by index, not host, so ports do not change the workload.
        origin_key = f"{self.seed}/{host if home_index is None else home_index}"
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        username = name + (str(rng.randint(1, 999)) if rng.random() < 0.3 else "")
        if software == "bridgy":
            username = f"{name}.bsky.social"
        bot = rng.random() < self.bot_share
        language = _pick(rng, self._languages, self._language_weights)
        bio = " ".join(rng.choices(self._words.get(language or "en", self._words["en"]), k=8))
        note = f"<p>{bio}</p>"
        if rng.random() < self.nobot_share:
            scheme = "http" if host.startswith("127.") else "https"
            # which opt-out tag, drawn apart from `rng` so the workload stays as it was
            tag = _BIO_OPT_OUT[zlib.crc32(f"opt-out/{origin_key}/{number}".encode()) % 4]
            note = f"<p>{bio} {_tag_html(f'{scheme}://{host}', tag)}</p>"
        if bot:
            app: tuple[str, str | None] | None = rng.choice(_BOT_APPS)
        elif rng.random() < 0.35:
            app = None  # the author hides their client: `application: null`
        else:
            app = _pick(rng, self._apps, self._app_weights)
        year = rng.choice((2017, 2018, 2019, 2020, 2022, 2022, 2022, 2023, 2024, 2025))
        followers = int(rng.paretovariate(1.2) * 20)
        return Author(
            key=(zlib.crc32(origin_key.encode()) & 0xFFFFF) * 1000 + number,
            username=username,
            home=host,
            home_index=home_index,
            software=software,
            display_name=(
                name.capitalize() + (" " + rng.choice(_EMOJI) if rng.random() < 0.2 else "")
            ),
            note=note,
            bot=bot,
            noindex=rng.random() < self.noindex_share,
            locked=rng.random() < 0.05,
            discoverable=rng.random() < 0.8,
            language=language,
            app=app,
            created_at=f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T00:00:00.000Z",
            followers_count=followers,
            following_count=int(rng.paretovariate(1.5) * 30),
            statuses_count=int(rng.paretovariate(1.1) * 50),
        )

    def pick_author(self) -> Author:
        """An author: a virtual or a simulated server first, then a (Zipf-busy) account on it."""
        rng = self.rng
        if rng.random() < self.virtual_share:
            index = _pick(rng, range(len(self.virtual_hosts)), self._virtual_weights)
            host, _, software = self.virtual_hosts[index]
            authors = self.authors(None, host, software)
        else:
            index = _pick(rng, range(len(self.hosts)), self._sim_weights)
            authors = self.authors(index, self.hosts[index])
        return _pick(rng, authors, self._author_weights)

    # -- drafts ------------------------------------------------------------------------------

    def draft(self, author: Author | None = None) -> Draft:
        """The next draft of the sequence."""
        rng = self.rng
        author = author or self.pick_author()
        visibility = _pick(rng, _VISIBILITIES, self._visibility_weights)
        roll = rng.random()
        reblog = roll < 0.07
        reply = None if reblog or roll > 0.25 else ("self" if roll < 0.16 else "other")
        if rng.random() < self.real_share:
            draft = self._borrowed_draft(author, rng.choice(real_statuses()))
        elif author.bot:
            draft = self._bot_draft(author)
        else:
            draft = self._text_draft(author, reply)
        application = author.app
        if author.app is not None and not author.bot and rng.random() < 0.2:
            application = _pick(rng, self._apps, self._app_weights)
        draft.visibility = visibility
        draft.reblog = reblog
        draft.reply = reply
        draft.application = application
        draft.counts = (
            int(rng.paretovariate(2.5)) - 1,
            int(rng.paretovariate(1.8)) - 1,
            int(rng.paretovariate(1.4)) - 1,
        )
        return draft

    def drafts(self, n: int) -> list[Draft]:
        return [self.draft() for _ in range(n)]

    def edited(self, draft: Draft) -> Draft:
        """A new version of a draft, as an author edits: a correction or an added line."""
        rng = self.rng
        words = self._words.get(draft.language or "en") or self._words["en"]
        addition = " ".join(rng.choices(words, k=rng.randint(2, 8)))
        return replace(draft, content=draft.content + f"<p>Edit: {addition}</p>")

    def _sentence(self, language: str | None, n_words: int) -> str:
        rng = self.rng
        words = self._words.get(language or "en") or self._words["en"]
        glue = "" if language in _PHRASES else " "
        text = glue.join(rng.choices(words, k=n_words))
        return text[:1].upper() + text[1:]

    def _text_draft(self, author: Author, reply: str | None) -> Draft:
        rng = self.rng
        language = author.language if rng.random() < 0.85 else "en"
        if rng.random() < 0.01:
            language = None  # the client did not say
        scheme = "http" if author.home.startswith("127.") else "https"
        home_url = f"{scheme}://{author.home}"
        # Log-normal word counts: median ~14 words, a few threads-worth posts in the tail.
        n_words = min(int(rng.lognormvariate(2.6, 0.95)) + 1, 900)
        paragraphs: list[str] = []
        left = n_words
        while left > 0:
            size = min(left, max(3, int(rng.expovariate(1 / 25))))
            text = self._sentence(language, size)
            if rng.random() < 0.15:
                text += " " + rng.choice(_EMOJI)
            if size > 12 and rng.random() < 0.3:  # a line break inside the paragraph
                cut = text.find(" ", len(text) // 2)
                if cut > 0 and "&" not in text[cut - 8 : cut + 8]:
                    text = text[:cut] + "<br>" + text[cut + 1 :]
            paragraphs.append(text)
            left -= size
        mentions: list[tuple[str, str]] = []
        if reply == "other" or rng.random() < 0.08:
            other = self.pick_author()
            mentions.append((other.username, other.home))
        if mentions:
            lead = " ".join(_mention_html(u, h) for u, h in mentions)
            paragraphs[0] = f"{lead} {paragraphs[0]}"
        card = None
        if rng.random() < 0.25:
            site = rng.choice(_LINK_HOSTS)
            slug = "".join(
                rng.choices("abcdefghijklmnopqrstuvwxyz0123456789-", k=rng.randint(6, 60))
            )
            url = f"https://{site}/{slug}" if not site.endswith("=") else f"https://{site}{slug}"
            paragraphs[-1] += " " + _link_html(url)
            if rng.random() < 0.6:
                card = _card(url, self._sentence(language, 6), language)
        tags: tuple[str, ...] = ()
        if rng.random() < 0.35:
            tags = tuple(dict.fromkeys(rng.choices(_TAGS[:-1], k=rng.randint(1, 5))))
            links = " ".join(_tag_html(home_url, t) for t in tags)
            if rng.random() < 0.5:
                paragraphs.append(links)
            else:
                paragraphs[-1] += " " + links
        media = _media(rng) if rng.random() < 0.14 else ()
        sensitive = rng.random() < 0.04
        return Draft(
            author=author,
            content="".join(f"<p>{p}</p>" for p in paragraphs),
            language=language,
            sensitive=sensitive or (bool(media) and rng.random() < 0.1),
            spoiler_text=rng.choice(_SPOILERS) if sensitive else "",
            tags=tags,
            mentions=tuple(mentions),
            media=media,
            card=card,
            poll=_poll(rng) if rng.random() < 0.01 else None,
        )

    def _bot_draft(self, author: Author) -> Draft:
        rng = self.rng
        if rng.random() < 0.5:
            magnitude = round(rng.uniform(2.5, 6.5), 1)
            text = f"M {magnitude} - {rng.randint(5, 120)} km of {self._sentence('en', 2)}"
            tags: tuple[str, ...] = ("earthquake",)
        else:
            text = self._sentence(author.language, rng.randint(6, 14))
            tags = (rng.choice(_TAGS[:-1]), "news")
        url = f"https://{rng.choice(_LINK_HOSTS)}/{rng.randint(10**6, 10**9)}"
        scheme = "http" if author.home.startswith("127.") else "https"
        tag_links = " ".join(_tag_html(f"{scheme}://{author.home}", t) for t in tags)
        content = f"<p>{text}<br>{_link_html(url)}</p><p>{tag_links}</p>"
        return Draft(
            author=author, content=content, language=author.language or "en", tags=tags,
            card=_card(url, text, author.language) if rng.random() < 0.5 else None,
        )  # fmt: skip

    def _borrowed_draft(self, author: Author, status: dict[str, Any]) -> Draft:
        """A draft with the content of another status (a real recorded one)."""
        mentions = tuple(
            (m.get("username") or "", urlsplit(m.get("url") or "").netloc)
            for m in status.get("mentions") or ()
        )
        return Draft(
            author=author,
            content=status.get("content") or "",
            language=status.get("language"),
            sensitive=bool(status.get("sensitive")),
            spoiler_text=status.get("spoiler_text") or "",
            tags=tuple(t["name"] for t in status.get("tags") or () if t.get("name")),
            mentions=mentions,
            media=tuple(status.get("media_attachments") or ()),
            card=status.get("card"),
            poll=status.get("poll"),
            emojis=tuple(status.get("emojis") or ()),
        )


def _card(url: str, title: str, language: str | None) -> dict[str, Any]:
    host = urlsplit(url).netloc
    return {
        "url": url, "title": title, "description": "", "language": language, "type": "link",
        "author_name": "", "author_url": "", "provider_name": host.removeprefix("www."),
        "provider_url": "", "html": "", "width": 400, "height": 225, "image": None,
        "image_description": "", "embed_url": "", "blurhash": None, "published_at": None,
        "authors": [],
    }  # fmt: skip


def _media(rng: random.Random) -> tuple[dict[str, Any], ...]:
    kinds = rng.choices(
        ("image", "video", "gifv", "audio"), (0.8, 0.1, 0.07, 0.03), k=rng.randint(1, 4)
    )
    out = []
    for kind in kinds:
        width, height = rng.choice(((1920, 1080), (1080, 1350), (1200, 800), (640, 640)))
        out.append({
            "type": kind,
            "meta": {"original": {"width": width, "height": height, "size": f"{width}x{height}",
                                  "aspect": round(width / height, 4)}},
            "description": "A photo" if rng.random() < 0.6 else None,
            "blurhash": "UFG[ml~qxuIU00M{ofRj9FRjRjM{%MRjj[ay",
        })  # fmt: skip
    return tuple(out)


def _poll(rng: random.Random) -> dict[str, Any]:
    counts = [rng.randint(0, 40) for _ in range(3)]
    options = [
        {"title": t, "votes_count": n} for t, n in zip(("Yes", "No", "Maybe"), counts, strict=True)
    ]
    votes = sum(counts)
    return {
        "id": str(rng.randint(10**5, 10**7)), "expires_at": None, "expired": False,
        "multiple": False, "votes_count": votes, "voters_count": votes, "options": options,
        "emojis": [],
    }  # fmt: skip


def generate(n: int, *, hosts: Sequence[str] = (), seed: int = 0, **options: Any) -> list[Draft]:
    """`n` drafts for a fediverse of `hosts` plus the virtual servers (see `Workload`)."""
    return Workload(hosts, seed=seed, **options).drafts(n)
