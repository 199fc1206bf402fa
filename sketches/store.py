"""The Redis sketch store: references per model and version (the one Redis adapter here).

Keys (``P`` = key prefix)::

    P:ref:v1:<model>:<version>         Reference bytes (versioned header; sketches.reference)
    P:ref:v1:<model>:<version>:digest  blake2b of those bytes (cache check; absent before 0.2)
    P:ref:v1:index                     set of "<model>:<version>"

A model's events of version ``v`` use the reference of ``v`` when one is stored, else
the model's ``default`` reference. Bump ``v1`` when the stored format changes so old
bytes are never misread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from sketches.errors import DriftlineError
from sketches.reference import Reference

DEFAULT_VERSION = "default"


def _digest(blob: bytes) -> bytes:
    return hashlib.blake2b(blob, digest_size=16).hexdigest().encode()


class ReferenceNotFound(DriftlineError):
    """No reference stored for that model (and version, nor a default)."""


@dataclass(frozen=True)
class ReferenceInfo:
    model: str
    version: str
    created: str
    rows: int
    columns: int
    chunks: int
    size_bytes: int


class ReferenceStore:
    def __init__(self, client: redis.Redis, prefix: str = "driftline",
                 chunks: Callable[[str], bool] | None = None) -> None:
        """``chunks``: whether a model's references are read with their chunk profiles
        (None: always). The evaluator reads them only for models whose rules learn
        thresholds: the chunks are most of a reference's bytes (4/5 with 4 chunks) and
        every model's references stay cached in memory."""
        self._client = client
        self._prefix = prefix
        self._chunks = chunks
        self._digests: dict[tuple[str, str], bytes | None] = {}
        """(model, version) -> its digest as read by the last :meth:`prefetch`."""
        self._cache: dict[tuple[str, str], tuple[bytes, Reference]] = {}  # (digest, ref)
        # MULTI only on a single Redis: on a Redis Cluster the blob, its digest and the
        # index live in different slots (a reader seeing the blob before its digest only
        # reads the blob once more)
        self._atomic = not isinstance(client, redis.RedisCluster)

    def _key(self, model: str, version: str) -> str:
        return f"{self._prefix}:ref:v1:{model}:{version}"

    @property
    def _index(self) -> str:
        return f"{self._prefix}:ref:v1:index"

    def put(self, reference: Reference, model: str, version: str = DEFAULT_VERSION) -> int:
        """Store ``reference`` for ``model``/``version``; returns its size in bytes. A digest
        of the bytes is stored beside them, so readers check a few bytes, not the blob."""
        blob = reference.to_bytes()
        self._digests.pop((model, version), None)
        pipe = self._client.pipeline(transaction=self._atomic)
        pipe.set(self._key(model, version), blob)
        pipe.set(self._digest_key(model, version), _digest(blob))
        pipe.sadd(self._index, f"{model}:{version}")
        pipe.execute()
        return len(blob)

    def _digest_key(self, model: str, version: str) -> str:
        return self._key(model, version) + ":digest"

    def get_exact(self, model: str, version: str) -> Reference | None:
        """The reference stored for exactly ``version``. A cached one is reused while the
        stored digest is unchanged (one small read); its derived data (e.g. the numeric
        distributions) is then computed once per reference, not once per evaluation."""
        key = (model, version)
        cached = self._cache.get(key)
        known = key in self._digests
        if known and self._digests[key] is None:
            self._cache.pop(key, None)
            return None  # (put writes the digest with the blob; delete removes both)
        if cached is not None:
            digest = self._digests[key] if known else self._client.get(
                self._digest_key(model, version))
            if digest is not None and digest == cached[0]:
                return cached[1]
        blob = self._client.get(self._key(model, version))
        if blob is None:
            self._cache.pop((model, version), None)
            return None
        assert isinstance(blob, bytes)
        ref = Reference.from_bytes(blob, chunks=self._chunks is None or self._chunks(model))
        self._cache[(model, version)] = (_digest(blob), ref)
        return ref

    def prefetch(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Read the digests of ``pairs`` and of their models' default references in one
        round trip; until the next call, :meth:`get_exact` of those trusts these answers
        instead of reading a digest per call (an evaluation asks for hundreds)."""
        wanted = sorted({k for model, version in pairs
                         for k in ((model, version), (model, DEFAULT_VERSION))})
        pipe = self._client.pipeline(transaction=False)  # (keys span cluster slots)
        for model, version in wanted:
            pipe.get(self._digest_key(model, version))
        self._digests = dict(zip(wanted, pipe.execute(), strict=True))

    def get(self, model: str, version: str = DEFAULT_VERSION) -> Reference | None:
        """The reference for ``version``, falling back to the model's default."""
        ref = self.get_exact(model, version)
        if ref is None and version != DEFAULT_VERSION:
            ref = self.get_exact(model, DEFAULT_VERSION)
        return ref

    def require(self, model: str, version: str = DEFAULT_VERSION) -> Reference:
        ref = self.get(model, version)
        if ref is None:
            raise ReferenceNotFound(
                f"no reference for model {model!r} version {version!r} (nor a default); "
                f"store one with `driftline reference put`"
            )
        return ref

    def delete(self, model: str, version: str = DEFAULT_VERSION) -> bool:
        self._digests.pop((model, version), None)
        pipe = self._client.pipeline(transaction=self._atomic)
        pipe.delete(self._key(model, version))
        pipe.srem(self._index, f"{model}:{version}")
        pipe.delete(self._digest_key(model, version))
        deleted, _, _ = pipe.execute()
        self._cache.pop((model, version), None)
        return bool(deleted)

    def models(self) -> set[str]:
        """Names of the models with a stored reference (no reference is read)."""
        names = set()
        for member in self._client.smembers(self._index):
            text = member.decode() if isinstance(member, bytes) else str(member)
            names.add(text.rpartition(":")[0])
        return names

    def list(self) -> list[ReferenceInfo]:
        out: list[ReferenceInfo] = []
        for member in sorted(self._client.smembers(self._index)):
            text = member.decode() if isinstance(member, bytes) else str(member)
            model, _, version = text.rpartition(":")
            blob = self._client.get(self._key(model, version))
            if not isinstance(blob, bytes):
                continue
            ref = Reference.from_bytes(blob)
            out.append(
                ReferenceInfo(model, version, ref.created, ref.rows, len(ref.profile.columns),
                              len(ref.chunks), len(blob))
            )
        return out
