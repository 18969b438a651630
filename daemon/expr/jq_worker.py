"""jq programs run in a worker process that can be stopped.

libjq runs in C and never yields: `def f: f; f` loops forever holding the GIL, and
`[range(1e8)]` allocates until the process aborts. Neither can be stopped inside the
daemon's own process, so every program runs in a small worker process (this file, run as a
script: it imports nothing of podium) with an address-space limit; the caller waits with a
timeout and kills the worker when it is over. Workers are kept between calls (a call then
costs a pipe round trip, not a process start) and die with the daemon (PR_SET_PDEATHSIG,
and end of input).

Frames on both pipes: 4-byte big-endian length, then JSON. A request is `[program, input]`
(the input as JSON text); an answer `{"results": [...]}` or `{"error": "message"}`.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MEMORY_LIMIT = 1 << 30  # bytes of address space a worker may use
MAX_ANSWER = 100_000_000  # bytes of one answer read back
MAX_RESULTS = 100_000  # results of one program (as `range` in a template)
MAX_WORKERS = 4  # programs running at once; more callers wait for a worker
_HEADER = struct.Struct(">I")


class JqError(Exception):
    """A program that failed, ran too long or ran out of memory; the message says which."""


class _Worker:
    def __init__(self) -> None:
        self.memory_limit = MEMORY_LIMIT
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(MEMORY_LIMIT), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )

    def send(self, request: bytes) -> None:
        """BrokenPipeError when the worker is gone (killed while idle)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(_HEADER.pack(len(request)) + request)
        self.proc.stdin.flush()

    def answer(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.fileno()
        (size,) = _HEADER.unpack(_read(out, _HEADER.size, deadline))
        if size > MAX_ANSWER:
            raise JqError(f"the results are over the limit of {MAX_ANSWER} bytes")
        answer: dict[str, Any] = json.loads(_read(out, size, deadline))
        return answer

    def exit_code(self) -> int | None:
        try:
            return self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class _Timeout(Exception):
    pass


def _read(fd: int, size: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while size:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise _Timeout
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class Pool:
    """Idle workers and a cap on busy ones; safe to call from any thread."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_WORKERS)

    def run(self, program: str, text: str, seconds: float, limit: float | None = None) -> list[Any]:
        """Every result of `program` on the JSON `text`, within `seconds` (what is left of
        a time `limit`, which the message names)."""
        started = time.monotonic()
        if not self._slots.acquire(timeout=max(seconds, 0)):
            raise JqError(f"no jq worker was free within {seconds:g} s")
        try:
            worker = self._sent(json.dumps([program, text]).encode())
            try:
                answer = worker.answer(started + seconds)
            except _Timeout:
                worker.stop()
                shown = seconds if limit is None else limit
                raise JqError(f"the program ran for more than {shown:g} s") from None
            except EOFError:
                code = worker.exit_code()
                worker.stop()
                raise JqError(_died(code, worker.memory_limit)) from None
            except BaseException:
                worker.stop()
                raise
            self._give_back(worker)
        finally:
            self._slots.release()
        if "error" in answer:
            raise JqError(answer["error"])
        results: list[Any] = answer["results"]
        return results

    def _sent(self, request: bytes) -> _Worker:
        """A worker that has the request: an idle one, or a new one if none (or it died)."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is not None:
            try:
                worker.send(request)
                return worker
            except BrokenPipeError:
                worker.stop()
        worker = _Worker()
        worker.send(request)
        return worker

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)


def _died(code: int | None, limit: int) -> str:
    if code is not None and code < 0 and -code in (signal.SIGKILL, signal.SIGABRT):
        return (
            f"the program ran out of memory (limit {limit >> 20} MB) "
            f"and was stopped ({signal.Signals(-code).name})"
        )
    return f"the jq worker stopped unexpectedly (exit status {code})"


_pool: Pool | None = None
_pool_lock = threading.Lock()


def pool() -> Pool:
    """The process-wide pool, created on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = Pool()
            atexit.register(_pool.close)
        return _pool


# -- the worker side (run as a script) -------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Killed when the daemon dies, even by SIGKILL, even in a loop that never reads."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the daemon died before prctl took effect
        os._exit(1)


def _serve(compile_program: Callable[[str], Any], limit: int) -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = stdin.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return  # the daemon closed the pipe
        program, text = json.loads(stdin.read(_HEADER.unpack(header)[0]))
        answer: dict[str, Any]
        try:
            results = []
            for result in compile_program(program).input_text(text):
                results.append(result)
                if len(results) > MAX_RESULTS:
                    raise ValueError(f"the program gives more than {MAX_RESULTS} results")
            answer = {"results": results}
        except ValueError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            answer = {"error": first_line.removeprefix("jq: error: ").rstrip(":")}
        except MemoryError:
            answer = {"error": f"the program ran out of memory (limit {limit >> 20} MB)"}
        data = json.dumps(answer).encode()
        stdout.write(_HEADER.pack(len(data)) + data)
        stdout.flush()


def _main() -> None:
    import resource
    from functools import lru_cache

    _die_with_parent(int(sys.argv[2]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C on the daemon is the daemon's
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import jq  # type: ignore[import-not-found]

    _serve(lru_cache(maxsize=256)(jq.compile), limit)


if __name__ == "__main__":
    _main()
