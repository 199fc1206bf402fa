"""One active evaluator at a time: a lease in Redis with a fencing token.

``acquire(now_ms)`` takes or renews the lease for ``holder`` and returns the fencing
token of the holder's term (strictly increasing across terms), or ``None`` when someone
else holds a live lease. A holder that dies stops renewing; its lease expires after
``ttl_ms`` and the next caller takes over with a larger token. Writes guarded by
:meth:`Lease.fenced_write` carry the token and are refused once a newer term exists, so a
paused ex-leader cannot overwrite alert state after a takeover.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import redis

_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]))
end
if cur then return nil end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] token key, then string keys, then hash keys; ARGV: token, #strings, the
# string values, then per hash: field count, field, value, ... (a hash is replaced).
_FENCED_WRITE = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < cur then return 0 end
local nstr = tonumber(ARGV[2])
local a = 3
for k = 2, nstr + 1 do redis.call('SET', KEYS[k], ARGV[a]); a = a + 1 end
for k = nstr + 2, #KEYS do
  redis.call('DEL', KEYS[k])
  local n = tonumber(ARGV[a]); a = a + 1
  for _ = 1, n do redis.call('HSET', KEYS[k], ARGV[a], ARGV[a + 1]); a = a + 2 end
end
return 1
"""


class Lease:
    def __init__(self, client: redis.Redis, name: str, holder: str, ttl_ms: int = 5000) -> None:
        self._client = client
        self.key = f"{name}:lease"
        self.token_key = f"{name}:lease-token"
        self.holder = holder
        self.ttl_ms = ttl_ms
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._fenced_write = client.register_script(_FENCED_WRITE)

    def acquire(self) -> int | None:
        """Take or renew the lease; the fencing token while held, else ``None``."""
        token = self._acquire(keys=[self.key, self.token_key], args=[self.holder, self.ttl_ms])
        return None if token is None else int(cast(Any, token))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.holder])

    def fenced_write(
        self,
        token: int,
        values: Mapping[str, bytes] | None = None,
        hashes: Mapping[str, Mapping[str, bytes]] | None = None,
    ) -> bool:
        """Atomically set ``values`` and replace ``hashes`` unless a newer term exists.

        False when the write was refused (this holder's term is over)."""
        values = values or {}
        hashes = hashes or {}
        keys = [self.token_key, *values, *hashes]
        args: list[bytes | str | int | float] = [token, len(values), *values.values()]
        for mapping in hashes.values():
            args.append(len(mapping))
            for k, v in mapping.items():
                args += [k, v]
        return bool(self._fenced_write(keys=keys, args=args))
