"""``driftline forget --model M --id ID`` (or ``--ids-file``): the right to be forgotten.

Erases what the label join holds about the ids (a hashed id with the prediction's time,
version and score / class waiting for its label) and drops labels that arrive for them
later (counted ``forgotten``). Idempotent. Sketches and per-window aggregates hold no
per-person data, so there is nothing else to erase.
"""

from __future__ import annotations

import argparse
import sys

from driftline.commands.common import add_redis_options, redis_client
from driftline.commands.worker import read_key_file
from driftline.models import load_catalog
from driftline.options import add_option
from sketches.errors import ConfigError
from streams.label_worker import join_store, label_specs


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("forget", help="erase what the label join holds about ids",
                       description=__doc__)
    add_option(p, "--model", help="model whose join holds the ids", required=True)
    p.add_argument("--id", help="one id (repeatable; no environment twin)", action="append",
                   default=[])
    add_option(p, "--ids-file", help="file with one id per line ('-': stdin)")
    add_option(p, "--models-config", help="the workers' models file (it says how the join "
               "of the model is laid out)", required=True)
    add_option(p, "--id-key-file", help="the workers' id hash key file, if they use one")
    add_redis_options(p)
    p.set_defaults(func=run)


def _ids(args: argparse.Namespace) -> list[str]:
    ids = [str(x) for x in args.id]
    if args.ids_file:
        try:
            fh = sys.stdin if args.ids_file == "-" else open(args.ids_file, encoding="utf-8")  # noqa: SIM115
            with fh:
                ids += [line.strip() for line in fh if line.strip()]
        except OSError as exc:
            raise ConfigError(f"cannot read --ids-file {args.ids_file}: {exc}") from exc
    if not ids:
        raise ConfigError("give --id ID (repeatable) or --ids-file FILE")
    return ids


def run(args: argparse.Namespace) -> int:
    ids = _ids(args)
    specs = label_specs(load_catalog(args.models_config))
    if args.model not in specs:
        raise ConfigError(f"model {args.model!r} has no [models.{args.model}.performance] in "
                          f"{args.models_config}: driftline keeps no ids for it")
    client = redis_client(args)
    try:
        join = join_store(client, args.key_prefix, specs, read_key_file(args.id_key_file))
        erased = join.forget(args.model, ids)
    finally:
        client.close()
    print(f"forgot {len(ids)} id(s) of model {args.model}: {erased} newly erased, "
          f"{len(ids) - erased} already forgotten; later labels for them are dropped")
    return 0
