"""The evaluator as a child process of the worker (``driftline worker --evaluator-process``).

By default a worker evaluates in a thread beside its ingest loop, so evaluation CPU
competes with ingest for the interpreter. With ``--evaluator-process`` the worker starts
``driftline evaluator`` with its own settings as a child process (multiprocessing,
*spawn*: a fresh interpreter, nothing inherited from the ingest loop's threads), restarts
it with backoff when it dies (logged at ERROR, counted in :attr:`EvaluatorChild.restarts`)
and stops it when the worker stops. The child serves its own HTTP endpoint — the worker's
``--http-port`` + 1 (``0``: any free port, ``-1``: none) — with the evaluation metrics,
while the worker's endpoint keeps the ingest figures. The child joins the evaluator group
like any ``driftline evaluator``, so its shards move to the other evaluators while it is
down (:mod:`alerts.shards`).
"""

from __future__ import annotations

import argparse
import copy
import logging
import multiprocessing
import threading
import time
from multiprocessing.process import BaseProcess

from sketches.errors import DriftlineError

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 30.0
MAX_BACKOFF_S = 30.0


def child_args(args: argparse.Namespace) -> argparse.Namespace:
    """The worker's parsed settings as the evaluator child takes them."""
    out = copy.copy(args)
    out.http_port = args.http_port + 1 if args.http_port > 0 else args.http_port
    out.func = None  # (not needed in the child; keeps the namespace plain data)
    return out


def _child_main(args: argparse.Namespace) -> None:  # in the child process
    from driftline.commands import evaluator

    level = logging.WARNING - 10 * min(int(getattr(args, "verbose", 0)), 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = evaluator.run(args)
    except DriftlineError as exc:
        log.error("evaluator process: %s", exc)
        code = 2
    raise SystemExit(code)


class EvaluatorChild:
    """Starts, watches and stops the evaluator child (see the module doc)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = child_args(args)
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._thread = threading.Thread(target=self._supervise, name="evaluator-child",
                                        daemon=True)
        self.restarts = 0

    def start(self) -> None:
        self._thread.start()

    def _supervise(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                proc = self._ctx.Process(target=_child_main, args=(self._args,),
                                         name="driftline-evaluator")
                proc.start()
                self._proc = proc
            log.info("evaluator process %d started", proc.pid)
            started = time.monotonic()
            while proc.is_alive() and not self._stop.wait(0.5):
                pass
            if self._stop.is_set():
                return
            proc.join()
            self.restarts += 1
            log.error("evaluator process %d exited (code %s): starting it again in %.0f s",
                      proc.pid, proc.exitcode, delay)
            if self._stop.wait(delay):
                return
            delay = 1.0 if time.monotonic() - started > 60 else min(2 * delay, MAX_BACKOFF_S)

    def stop(self) -> None:
        """Stop the child (SIGTERM: it stops like ``driftline evaluator``; SIGKILL after
        :data:`STOP_TIMEOUT_S`) and the watcher."""
        with self._lock:
            self._stop.set()
            proc = self._proc
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(STOP_TIMEOUT_S)
            if proc.is_alive():
                log.error("evaluator process %d did not stop: killed", proc.pid)
                proc.kill()
                proc.join(5)
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT_S)
