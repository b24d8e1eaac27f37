"""When the server frees a session whose network silently went away: TCP keepalive,
TCP retransmission, and PostgreSQL's `client_connection_check_interval`.

After a silent drop (`network_blip`) the server does not know: the backend keeps
its slot, its transaction and its locks, and a statement it was running runs on.
The rule modelled (Linux, PostgreSQL 14+), from the time the client was last
heard from, `last` (the end of the session's last statement, or its connect; for
a statement running at the drop, its start):

1. Keepalive (PostgreSQL turns SO_KEEPALIVE on for every TCP client): after
   `tcp_keepalives_idle` of silence the kernel sends a probe, then one every
   `tcp_keepalives_interval`; after `tcp_keepalives_count` unanswered probes it
   declares the connection dead. Probes before the drop were answered, so the
   first unanswered one is at last + j * idle, the first such time at or after
   the drop, and the connection is dead at that + interval * count (defaults:
   7200 + 75 * 9 = 7,875 s of silence). 0 means the OS default, as in PostgreSQL.
2. A session idle at the drop (in a transaction or not) waits in a read of the
   socket: it ends when the connection is declared dead.
3. A session running a statement does not read the socket. Without
   `client_connection_check_interval` it notices only when the statement ends
   and it sends the result ("the server will detect the loss of the connection
   only at the next interaction with the socket", facts.md §2): if the kernel
   has declared the connection dead by then, the send fails and the session
   ends at once; otherwise the reply waits unacknowledged, keepalive stops
   (Linux sends no probe with data in flight) and the kernel gives up after
   its retransmissions, `RETRANSMISSION_TIMEOUT` later (tcp_retries2 = 15;
   PostgreSQL's `tcp_user_timeout` 0 leaves it to the kernel). Meanwhile the
   session is idle (in transaction, if it has one).
4. With `client_connection_check_interval` = c > 0, a running statement polls
   the socket every c from its start and is cancelled, its session ended, at
   the first check that finds the kernel reporting the connection closed. A
   silent drop is reported only once keepalive has declared it dead (rule 1):
   the check shortens a long statement, never the keepalive's wait (the
   PostgreSQL docs: "it may also be necessary to adjust the TCP keepalive
   settings"). Idle sessions are never checked.

`idle_in_transaction_session_timeout` and a restart end a lost session as any
other. Its open transaction is abandoned like an orphan: its locks block others
until the session ends, and its work is rolled back then.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from ..scenario import DatabaseConfig
from .connection import Connection

#: Linux's give-up time for unacknowledged data: tcp_retries2 = 15 "yields a hypothetical timeout of
#: 924.6 seconds" (Documentation/networking/ip-sysctl.rst).
RETRANSMISSION_TIMEOUT = 924.6
LINUX_KEEPALIVE = (7200.0, 75.0, 9)  # net.ipv4.tcp_keepalive_time, _intvl, _probes


class Keepalive(NamedTuple):
    """The four settings that decide when a silently dropped session ends (0: the OS default)."""

    idle: float = LINUX_KEEPALIVE[0]
    interval: float = LINUX_KEEPALIVE[1]
    count: int = LINUX_KEEPALIVE[2]
    check: float = 0.0  # client_connection_check_interval, 0 = off

    @classmethod
    def of(cls, config: DatabaseConfig) -> "Keepalive":
        """The database's settings, 0 read as the Linux default (as PostgreSQL reads it)."""
        return cls(config.tcp_keepalives_idle or LINUX_KEEPALIVE[0],
                   config.tcp_keepalives_interval or LINUX_KEEPALIVE[1],
                   config.tcp_keepalives_count or LINUX_KEEPALIVE[2],
                   config.client_connection_check_interval)

    def dead_at(self, last: float, drop: float) -> float:
        """When the kernel declares dead a connection last heard from at `last` and cut at `drop` (rule 1)."""
        probes_answered = max(0, math.ceil((drop - last) / self.idle) - 1)
        return last + (probes_answered + 1) * self.idle + self.interval * self.count

    def check_finds(self, start: float, dead: float) -> float:
        """When a statement that started at `start` finds its connection `dead` (rule 4; inf without checks)."""
        if self.check <= 0:
            return math.inf
        return start + self.check * max(1, math.ceil((dead - start) / self.check))


class LostSession(Connection):
    """The server's side of a silently dropped connection: it lives on until it notices.
    The app's `Connection` is dead at once (found on use); this one holds the session."""

    __slots__ = ("dead_at",)


def nobody_listens(_conn: Connection, _text: str) -> None:
    """A lost session's FATAL goes into a dead socket: nobody hears it."""
