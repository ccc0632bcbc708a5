"""An in-memory, transactional stand-in for the addon's registry, for engine tests.

``MemoryRegistry`` plays the caller of :func:`mailsync.sync.sync_mailbox`: its :meth:`matcher`
asks only for the bodies of matching messages not recorded yet (one per Message-ID, also within a
batch), its :meth:`recorder` writes the items and the folder cursor into a *pending* copy that is
committed only when the call ends — so a recorder that fails half-way (``crash=``) leaves nothing
behind, as a rolled-back database transaction would. :meth:`folders` rebuilds the cursors from
what was committed, as the addon does from its database after a crash.

``counts`` (Message-ID → times recorded) is what the no-loss / no-duplicate assertions read.
"""

from __future__ import annotations

import copy

from ..types import FolderState

__all__ = ["MemoryRegistry", "Crash"]


class Crash(Exception):
    """Raised by a crashing recorder (stands for a process killed before its commit)."""


class MemoryRegistry:
    def __init__(self, leads=None):
        self.leads = set(leads) if leads is not None else None  # None: every message matches
        self.counts: dict[str, int] = {}  # Message-ID → times recorded (must stay 1)
        self.links: dict[str, frozenset] = {}  # Message-ID → leads it was linked to
        self.cursors: dict[str, tuple[str, int | None, int]] = {}  # name → (role, uidv, last)
        self.commits = 0
        self.calls = 0
        self.rollbacks = 0

    # -- what the caller persists --
    def folders(self, default=None) -> list[FolderState] | None:
        """FolderState objects rebuilt from the committed cursors (``default`` when none)."""
        if not self.cursors:
            return copy.deepcopy(default) if default is not None else None
        out = [
            FolderState(name=n, role=r, uidvalidity=v, last_uid=u)
            for n, (r, v, u) in self.cursors.items()
        ]
        for fs in default or ():
            if fs.name not in self.cursors:
                out.append(copy.deepcopy(fs))
        return out

    def recorded(self) -> set[str]:
        return set(self.counts)

    def duplicates(self) -> dict[str, int]:
        return {k: v for k, v in self.counts.items() if v != 1}

    # -- callbacks --
    def match_of(self, header):
        if self.leads is None:
            return frozenset({"*"})
        return frozenset(a for a in header.all_addrs if a in self.leads)

    def matcher(self, headers):
        out, seen = {}, set()
        for h in headers:
            if h.message_id in self.counts or h.message_id in seen:
                continue
            match = self.match_of(h)
            if match:
                out[h.uid] = match
                seen.add(h.message_id)
        return out

    def recorder_with(self, crash=None, *, count_empty=False):
        """A recorder; ``crash=(call_no, k)`` raises :class:`Crash` in the ``call_no``-th call
        (0-based, counted from now; only calls with items unless ``count_empty``) after
        recording ``k`` of its items (all of them if it has fewer), before the commit."""
        counter = {"n": 0}

        def record(fs, items, new_last_uid):
            self.calls += 1
            if not items and not count_empty:
                call_no = -1
            else:
                call_no = counter["n"]
                counter["n"] += 1
            counts = dict(self.counts)
            links = dict(self.links)
            for i, (h, _parsed, match) in enumerate(items):
                if crash and crash[0] == call_no and i == crash[1]:
                    self.rollbacks += 1
                    raise Crash(f"crash in call {call_no} after {i} items")
                counts[h.message_id] = counts.get(h.message_id, 0) + 1
                links[h.message_id] = frozenset(links.get(h.message_id, frozenset()) | match)
            if crash and crash[0] == call_no:
                self.rollbacks += 1
                raise Crash(f"crash in call {call_no} after all {len(items)} items")
            # commit: items and cursor together
            self.counts, self.links = counts, links
            self.cursors[fs.name] = (fs.role, fs.uidvalidity, int(new_last_uid))
            self.commits += 1

        return record

    @property
    def recorder(self):
        return self.recorder_with()
