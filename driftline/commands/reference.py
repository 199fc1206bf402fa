"""``driftline reference put|get|list|delete`` — training references in Redis.

``put`` takes a reference file written by ``driftline profile`` or, with
``--from-window``, the merged profile of a healthy production measurement window.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import redis

from driftline.commands.common import add_redis_options, redis_client
from driftline.models import parse_duration_ms
from driftline.options import add_option, duration
from sketches.errors import ConfigError, InputDataError
from sketches.reference import Reference
from sketches.store import DEFAULT_VERSION, ReferenceStore
from streams.baseline import version_reference
from streams.reader import WindowReader
from streams.state import RedisStateStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reference", help="store, show, list and delete references in Redis")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    put = verbs.add_parser("put", help="store a reference for a model (and version)")
    put.add_argument("ref", metavar="REF", nargs="?",
                     help="reference file from `driftline profile` (omit with --from-window)")
    _model_flags(put)
    add_option(put, "--from-window", help="build it from the last DURATION of production "
               "windows in Redis instead of a file (e.g. 1h)", type=duration)
    add_option(put, "--topic", help="predictions topic whose windows --from-window reads",
               default="predictions")
    add_redis_options(put)
    put.set_defaults(func=_put)

    get = verbs.add_parser("get", help="describe a stored reference (or save it with --out)")
    _model_flags(get)
    add_option(get, "--out", help="write the reference bytes to this file")
    add_redis_options(get)
    get.set_defaults(func=_get)

    ls = verbs.add_parser("list", help="list stored references")
    add_redis_options(ls)
    ls.set_defaults(func=_list)

    rm = verbs.add_parser("delete", help="delete a stored reference")
    _model_flags(rm)
    add_redis_options(rm)
    rm.set_defaults(func=_delete)


def _model_flags(p: argparse.ArgumentParser) -> None:
    add_option(p, "--model", help="model name", required=True)
    add_option(p, "--version", help="model version (events of other versions fall back to "
               "'default')", default=DEFAULT_VERSION)


def _store(args: argparse.Namespace) -> tuple[redis.Redis, ReferenceStore]:
    client = redis_client(args)
    return client, ReferenceStore(client, args.key_prefix)


def _put(args: argparse.Namespace) -> int:
    client, store = _store(args)
    if args.from_window:
        if args.ref:
            raise ConfigError("give either REF or --from-window, not both")
        ref = _from_window(client, args)
    else:
        if not args.ref:
            raise ConfigError("reference put needs REF (a file from `driftline profile`) "
                              "or --from-window DURATION")
        try:
            ref = Reference.from_bytes(Path(args.ref).read_bytes())
        except OSError as exc:
            raise InputDataError(f"cannot read {args.ref}: {exc}") from exc
    size = store.put(ref, args.model, args.version)
    print(f"stored reference for {args.model}/{args.version}: {ref.rows} rows, "
          f"{len(ref.profile.columns)} columns, {len(ref.chunks)} chunks, {size} bytes")
    return 0


def _from_window(client: redis.Redis, args: argparse.Namespace) -> Reference:
    measure = parse_duration_ms(args.from_window, "--from-window")
    state = RedisStateStore(client, prefix=args.key_prefix, topic=args.topic,
                            horizon_ms=measure)
    merged = WindowReader(state).measurement(args.model, measure)
    if merged is None or not merged.versions:
        raise InputDataError(f"no windows of model {args.model!r} in Redis "
                             f"(topic {args.topic}, prefix {args.key_prefix})")
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ref = version_reference(merged.versions, args.model, args.version, created)
    if ref is None:  # (the same building as a trailing baseline's: streams.baseline)
        raise InputDataError(f"no windows of {args.model} version {args.version} in the "
                             f"last {args.from_window}; versions seen: {sorted(merged.versions)}")
    return ref


def _get(args: argparse.Namespace) -> int:
    _, store = _store(args)
    ref = store.require(args.model, args.version)
    if args.out:
        Path(args.out).write_bytes(ref.to_bytes())
    info = {
        "model": ref.model, "version": ref.version, "created": ref.created, "rows": ref.rows,
        "chunks": len(ref.chunks),
        "columns": {name: str(col.column_type) for name, col in ref.profile.columns.items()},
    }
    json.dump(info, sys.stdout, indent=2)
    print()
    return 0


def _list(args: argparse.Namespace) -> int:
    _, store = _store(args)
    infos = store.list()
    if not infos:
        print("no references stored")
        return 0
    print(f"{'MODEL':24} {'VERSION':12} {'ROWS':>10} {'COLS':>5} {'CHUNKS':>6}  CREATED")
    for i in infos:
        print(f"{i.model:24} {i.version:12} {i.rows:>10} {i.columns:>5} {i.chunks:>6}  {i.created}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    _, store = _store(args)
    if not store.delete(args.model, args.version):
        print(f"no reference for {args.model}/{args.version}", file=sys.stderr)
        return 1
    print(f"deleted reference {args.model}/{args.version}")
    return 0
