"""Posts and accounts of the simulated fediverse by the ids each instance gave them, for
`GET /api/v1/statuses/:id` and `GET /api/v1/accounts/:id` (what `tootlake revalidate` asks),
and the accounts that were deleted or suspended.

The index is built from the fediverse's posts when a lookup needs it, not as posts are
published: publishing stays as cheap as before, and a fediverse nobody looks up pays
nothing. A lookup that misses rebuilds it (at most every `REBUILD_EVERY` seconds unless
posts were published since), so copies that arrive late (federation delays) are found too.
Posts whose content the fediverse evicted (`retention`) have no author any more: their
accounts are not found.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from tootlake.simulate.status import Renderer, SimPost
from tootlake.simulate.workload import Author

__all__ = ["DELETED", "SUSPENDED", "Directory"]

DELETED = "deleted"  # the account is gone: its statuses and itself answer 404
SUSPENDED = "suspended"  # its statuses answer 404; the account answers with `suspended: true`
REBUILD_EVERY = 0.2  # seconds between two rebuilds a miss may cause


class Directory:
    """Finds a copy of a post, or an account, by the id one instance gave it."""

    def __init__(self, posts: Mapping[str, SimPost], renderer: Renderer) -> None:
        self._posts = posts
        self._renderer = renderer
        self._copies: dict[tuple[int, int], SimPost] = {}
        self._accounts: dict[tuple[int, int], Author] = {}
        self._built_at = 0.0
        self._built_with = -1  # len(posts) when last built
        self.gone: dict[int, str] = {}  # author key -> DELETED or SUSPENDED

    def _build(self) -> None:
        copies: dict[tuple[int, int], SimPost] = {}
        accounts: dict[tuple[int, int], Author] = {}
        account_id = self._renderer.account_id
        for post in list(self._posts.values()):
            draft = post.draft
            for index, local_id in list(post.copies.items()):
                copies[(index, local_id)] = post
                if draft is not None:
                    accounts[(index, account_id(draft.author, index))] = draft.author
        self._copies, self._accounts = copies, accounts
        self._built_at, self._built_with = time.monotonic(), len(self._posts)

    def _stale(self) -> bool:
        return (
            len(self._posts) != self._built_with
            or time.monotonic() - self._built_at >= REBUILD_EVERY
        )

    def status(self, index: int, local_id: int) -> SimPost | None:
        """The post instance `index` knows as `local_id`, or None."""
        key = (index, local_id)
        post = self._copies.get(key)
        if post is None and self._stale():
            self._build()
            post = self._copies.get(key)
        return post

    def account(self, index: int, account_id: int) -> Author | None:
        """The author instance `index` knows as account `account_id`, or None."""
        key = (index, account_id)
        author = self._accounts.get(key)
        if author is None and self._stale():
            self._build()
            author = self._accounts.get(key)
        return author

    def state(self, author: Author) -> str | None:
        """DELETED, SUSPENDED, or None for an account that is still there."""
        return self.gone.get(author.key)
