"""Real servers on loopback for server-mode tests and benchmarks: PostgreSQL and `chroma run`.

``postgres()`` starts a throw-away PostgreSQL cluster (Debian's package: initdb and pg_ctl
under /usr/lib/postgresql/N/bin) on 127.0.0.1 with trust authentication and a socket folder of
its own, and yields its URL; ``chroma(folder)`` starts a Chroma server and yields its port.  Both
stop when the ``with`` block ends.  ``Unavailable`` says why a server could not be had (no
PostgreSQL installed, refused to start), so tests can skip with that reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


class Unavailable(Exception):
    """A server could not be found or started; the message says why."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise Unavailable("PostgreSQL is not installed (apt-get install -y postgresql)")


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb refuses to run as root: run the server as the `postgres` user then."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser") is None:
        raise Unavailable("running as root without `runuser` to start PostgreSQL as `postgres`")
    return ["runuser", "-u", "postgres", "--", *argv]


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free loopback port, removed afterwards; yields its URL.

    Its folder is made directly under the system's temporary folder: the `postgres` user cannot
    reach into pytest's per-user (mode 700) folders.
    """
    binaries = _pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="newsdesk-pg-"))
    try:
        with _cluster(binaries, folder) as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _cluster(binaries: Path, folder: Path) -> Iterator[str]:
    data, sockets, log = folder / "pgdata", folder / "sock", folder / "postgres.log"
    sockets.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        try:
            shutil.chown(folder, "postgres")
            shutil.chown(sockets, "postgres")
        except (LookupError, PermissionError) as exc:
            raise Unavailable(f"no `postgres` user to run PostgreSQL as: {exc}") from exc
        folder.chmod(0o755)
    init = subprocess.run(
        _as_postgres([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                      "-E", "UTF8", "--no-sync", "--locale=C.UTF-8"]),
        check=False, capture_output=True, text=True,
    )
    if init.returncode != 0:
        raise Unavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
    port = free_port()
    options = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
    ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options]
    started = subprocess.run(_as_postgres([*ctl, "-w", "-t", "60", "start"]),
                             check=False, capture_output=True, text=True)
    if started.returncode != 0:
        tail = log.read_text()[-500:] if log.exists() else started.stderr
        raise Unavailable(f"PostgreSQL did not start: {tail.strip()}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([*ctl, "-m", "immediate", "stop"]), check=False,
                       capture_output=True)


@contextmanager
def chroma(folder: Path) -> Iterator[int]:
    """`chroma run` persisting in ``folder`` on a free loopback port; yields the port."""
    command = shutil.which("chroma")
    if command is None:
        raise Unavailable("the `chroma` command (from the chromadb package) is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [command, "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Unavailable("chroma run did not start within 60 s")
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
