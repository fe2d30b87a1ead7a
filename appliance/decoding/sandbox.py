"""Decode each untrusted file in a disposable child process.

Design (a small "zygote", the same idea as multiprocessing's forkserver, but with no pickle and no
re-import of the caller's ``__main__``):

* The caller (a pipeline worker that has an OCR model loaded) starts, once, a fresh interpreter
  -- not a fork of itself -- that imports the decoders (numpy, Pillow, pypdfium2), warms them up
  and waits on a Unix socket. Its single-threaded state is all a decoder child inherits.
* Per file the zygote forks a child. The child becomes its own process group, dies with the
  zygote (``PR_SET_PDEATHSIG``), is not dumpable, sets ``RLIMIT_AS`` / ``CPU`` / ``FSIZE`` /
  ``NOFILE`` / ``NPROC`` / ``CORE`` and decodes with :func:`appliance.decoding.decode_file`,
  writing page ``.npy`` files and a small JSON result into the scratch dir.
* The zygote enforces the wall-clock limit (SIGKILL to the child's process group), reaps the child
  and reports how it ended. Only the zygote reaps, so the kill can never hit a recycled pid.
* The parent never unpickles anything from the child: the result is JSON, validated field by
  field, and every page file's ``.npy`` header is checked against what the child claims.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import resource
import secrets
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Final

from appliance.errors import (
    CorruptFile,
    DecodeError,
    DecoderCrashed,
    EncryptedDocument,
    LimitExceeded,
    UnsupportedFormat,
)
from appliance.settings import DecodeLimits

from .formats import DecodedPage, page_file_name

__all__ = ["decode_sandboxed", "shutdown_sandbox", "zygote_main"]

_ERRORS: Final[dict[str, type[DecodeError]]] = {
    c.__name__: c
    for c in (DecodeError, UnsupportedFormat, CorruptFile, LimitExceeded, EncryptedDocument, DecoderCrashed)
}
_CODE_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_MAX_MESSAGE: Final = 300
_MAX_RESULT_BYTES: Final = 1 << 20
_EXIT_OK, _EXIT_NO_MEMORY, _EXIT_INTERNAL = 0, 3, 70
_START_TIMEOUT: Final = 60.0
_REPLY_GRACE: Final = 30.0
_BOOT: Final = "import sys; from appliance.decoding.sandbox import zygote_main; zygote_main(int(sys.argv[1]))"


def decode_sandboxed(
    path: Path, limits: DecodeLimits, scratch_dir: Path, *, first_pages: int | None = None
) -> list[DecodedPage]:
    """Decode ``path`` in a disposable child process; pages land in ``scratch_dir`` as ``.npy``.
    ``first_pages`` stops after that many pages (intake previews).

    Raises the :class:`DecodeError` family. Errors raised in the child come back with the same
    class, code and message; a child that dies or overruns a limit gives :class:`DecoderCrashed`.
    On any failure the scratch files of this decode are removed.
    """
    from . import check_file_size

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise DecodeError("the file disappeared before it could be read", code="file_missing") from None
    if not stat.S_ISREG(st.st_mode):
        raise DecodeError("not a regular file; refused", code="not_regular_file")
    check_file_size(st.st_size, limits)
    token = secrets.token_hex(12)
    request = {
        "path": os.fsencode(path).hex(),
        "out_dir": os.fsencode(scratch_dir).hex(),
        "token": token,
        "limits": limits.model_dump(mode="json"),
        "first_pages": first_pages,
    }
    try:
        reply = _run(request, limits.timeout_seconds + _REPLY_GRACE)
        return _outcome(reply, limits, scratch_dir, token)
    finally:
        _remove(scratch_dir, f"{token}.result.json")


def _outcome(reply: dict[str, Any], limits: DecodeLimits, scratch_dir: Path, token: str) -> list[DecodedPage]:
    try:
        status, value = reply.get("status"), reply.get("value")
        if status == "exited" and value == _EXIT_OK:
            return _read_result(scratch_dir, token, limits)
        raise _crash(status, value, limits)
    except BaseException:
        for name in os.listdir(scratch_dir):
            if name.startswith(token + "."):
                _remove(scratch_dir, name)
        raise


def _crash(status: object, value: object, limits: DecodeLimits) -> DecoderCrashed:
    if status == "timeout":
        return DecoderCrashed(
            f"decoding took longer than the time limit ({limits.timeout_seconds:g} s)", code="decoder_timeout"
        )
    if status == "exited" and value == _EXIT_NO_MEMORY:
        return DecoderCrashed(
            f"the file needs more memory than the decoder limit ({limits.memory_mb} MB)",
            code="decoder_out_of_memory",
        )
    if status == "signaled" and value == signal.SIGXCPU:
        return DecoderCrashed(
            f"decoding used more than the CPU time limit ({limits.cpu_seconds} s)", code="decoder_cpu_limit"
        )
    if status == "signaled" and value == signal.SIGKILL:
        return DecoderCrashed(
            "the decoder was killed (by the system or an operator, e.g. for lack of memory)",
            code="decoder_killed",
        )
    if status == "signaled" and isinstance(value, int):
        try:
            name = signal.Signals(value).name
        except ValueError:
            name = f"signal {value}"
        return DecoderCrashed(
            f"the decoder crashed on this file ({name}); the file is damaged, hostile, or too large "
            f"for the decoder memory limit ({limits.memory_mb} MB)"
        )
    if status == "lost":
        return DecoderCrashed("the decoder service stopped unexpectedly", code="decoder_killed")
    return DecoderCrashed("the decoder failed unexpectedly; the technician log has details")


def _read_result(scratch_dir: Path, token: str, limits: DecodeLimits) -> list[DecodedPage]:
    try:
        fd = os.open(scratch_dir / f"{token}.result.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            raw = f.read(_MAX_RESULT_BYTES + 1)
        if len(raw) > _MAX_RESULT_BYTES:
            raise ValueError("oversized result")
        result = json.loads(raw)
        if result["ok"]:
            items = result["pages"]
            if not isinstance(items, list) or not 0 < len(items) <= limits.max_pages:
                raise ValueError("page count")
            return [
                DecodedPage.from_json(item, i, scratch_dir / page_file_name(token, i), limits.max_pixels)
                for i, item in enumerate(items)
            ]
        error: Exception
        if "oserror" in result:  # a failure of the scratch dir (disk full, ...): not the file's fault
            err = int(result["oserror"])
            error = OSError(err, f"decoder could not write to the scratch dir: {os.strerror(err)}")
        else:
            code, message = str(result["code"]), str(result["message"])
            if not _CODE_RE.match(code):
                raise ValueError("error code")
            message = "".join(ch if ch.isprintable() else " " for ch in message)[:_MAX_MESSAGE]
            error = _ERRORS[result["error"]](message, code=code)
    except (KeyError, TypeError, ValueError, OSError) as e:
        raise DecoderCrashed("the decoder returned an invalid result") from e
    raise error


def _remove(directory: Path, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(directory / name)


# --- parent side: the zygote process --------------------------------------------------------
class _Zygote:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        # one thread per library: a decoder child must not inherit thread pools, and RLIMIT_AS
        # must not be eaten by per-thread arenas
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=sys.__stderr__.fileno() if sys.__stderr__ else subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.sock = ours
        self.owner = os.getpid()
        try:
            self._receive(_START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def run(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            self.sock.send(json.dumps(request).encode())
            return self._receive(timeout)
        except TimeoutError:
            self.close()
            return {"status": "timeout"}
        except OSError:
            self.close()
            return {"status": "lost"}

    def _receive(self, timeout: float) -> dict[str, Any]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("decoder zygote closed its socket")
        reply: dict[str, Any] = json.loads(data)
        return reply

    def close(self) -> None:
        self.sock.close()  # the zygote sees EOF, kills any running child and exits
        if self.owner != os.getpid():
            return
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # its children die with it (PR_SET_PDEATHSIG)
            self.proc.wait()


_lock = threading.Lock()
_current: _Zygote | None = None


def _run(request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One decode at a time per process; (re)start the zygote when needed."""
    global _current
    with _lock:
        if _current is None or not _current.alive():
            if _current is not None and _current.owner == os.getpid():
                _current.close()
            _current = None
            try:
                _current = _Zygote()
            except (OSError, ValueError) as e:
                raise DecoderCrashed("the decoder service could not start", code="decoder_unavailable") from e
        return _current.run(request, timeout)


def shutdown_sandbox() -> None:
    """Stop this process's zygote (also done at exit)."""
    global _current
    with _lock:
        if _current is not None:
            _current.close()
            _current = None


atexit.register(shutdown_sandbox)


# --- zygote and child side ------------------------------------------------------------------
def zygote_main(fd: int) -> None:
    """Entry point of the zygote process (see the module docstring)."""
    from . import warm_up

    sock = socket.socket(fileno=fd)
    ctypes.CDLL(None).prctl(4, 0)  # PR_SET_DUMPABLE=0: children cannot ptrace the zygote
    warm_up()
    sock.send(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    while True:
        msg = sock.recv(65536)
        if not msg:
            return  # the parent went away
        reply = _fork_and_wait(sock, json.loads(msg))
        if reply is None:
            return
        sock.send(json.dumps(reply).encode())


def _fork_and_wait(sock: socket.socket, request: dict[str, Any]) -> dict[str, Any] | None:
    timeout = float(request["limits"]["timeout_seconds"])
    zygote = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the decoder child: never returns
        code = _EXIT_INTERNAL
        try:
            sock.close()  # a compromised child must not be able to talk to the parent
            code = _child(request, zygote)
        except BaseException:
            traceback.print_exc()  # for the technician log; the parent reports "decoder failed"
        finally:
            os._exit(code)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # also done by the child; whoever runs first wins the race
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(sock, select.POLLIN)
        deadline = time.monotonic() + timeout
        outcome: dict[str, Any] | None = {}
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome = {"status": "timeout"}
                break
            ready = {fd for fd, _ in poller.poll(remaining * 1000)}
            if pidfd in ready:
                break
            if ready:  # the parent closed its socket (or spoke out of turn): stop everything
                outcome = None
                break
        if outcome is None or outcome:
            _kill_group(pid)
        _, status, usage = os.wait4(pid, 0)
    finally:
        os.close(pidfd)
    if outcome is None:
        return None
    if not outcome:
        if os.WIFSIGNALED(status):
            outcome = {"status": "signaled", "value": os.WTERMSIG(status)}
        else:
            outcome = {"status": "exited", "value": os.waitstatus_to_exitcode(status)}
    outcome.update(cpu_seconds=usage.ru_utime + usage.ru_stime, max_rss_kb=usage.ru_maxrss)
    return outcome


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError):
            kill(pid, signal.SIGKILL)


def _child(request: dict[str, Any], zygote: int) -> int:
    from . import decode_file

    os.setpgid(0, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the zygote
    libc.prctl(4, 0)  # PR_SET_DUMPABLE=0: no core dumps of citizens' documents, no ptrace by peers
    if os.getppid() != zygote:
        return _EXIT_INTERNAL
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails with EFBIG instead
    limits = DecodeLimits.model_validate(request["limits"])
    out_dir = Path(os.fsdecode(bytes.fromhex(request["out_dir"])))
    path = Path(os.fsdecode(bytes.fromhex(request["path"])))
    token = str(request["token"])
    _set_limits(limits)
    result: dict[str, Any]
    try:
        first = request.get("first_pages")
        pages = decode_file(path, limits, out_dir, token=token, first_pages=int(first) if first else None)
        result = {"ok": True, "pages": [p.to_json() for p in pages]}
    except MemoryError:
        return _EXIT_NO_MEMORY
    except DecodeError as e:
        result = {"ok": False, "error": type(e).__name__, "code": e.code, "message": str(e)}
    except OSError as e:
        result = {"ok": False, "oserror": e.errno or 0}
    fd = os.open(
        out_dir / f"{token}.result.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
    )
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return _EXIT_OK


def _set_limits(limits: DecodeLimits) -> None:
    page_bytes = limits.max_pixels * 3 + (1 << 20)  # the largest .npy page, plus its header
    for which, value in (
        (resource.RLIMIT_AS, limits.memory_mb << 20),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, page_bytes),
        (resource.RLIMIT_NOFILE, 64),
        (resource.RLIMIT_NPROC, 0),  # no fork, no threads
        (resource.RLIMIT_CORE, 0),
    ):
        # CPU: SIGXCPU at the soft limit, SIGKILL one second later
        soft, new_hard = value, value + 1 if which == resource.RLIMIT_CPU else value
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            soft, new_hard = min(soft, hard), min(new_hard, hard)
        resource.setrlimit(which, (soft, new_hard))
