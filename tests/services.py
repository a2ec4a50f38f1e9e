"""Run the test suite against PostgreSQL and Redis servers started on loopback: `make test-services`.

Production keeps Django's tables in PostgreSQL and the cache, the Celery broker and the firehose
cursor in Redis; the default suite runs on SQLite and the in-process cache. This starts a
throwaway PostgreSQL cluster and redis-server from the binaries the machine has (Debian's
`postgresql` and `redis-server` packages), points DATABASE_URL and REDIS_URL at them, runs pytest
with the given arguments, and removes both servers whatever the outcome.

PostgreSQL refuses to run as root, so as root its cluster belongs to the `postgres` user the
Debian package creates.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60


def main(pytest_args):
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="skyline-services-")))
        database_url = stack.enter_context(postgres(workdir / "postgres"))
        redis_url = stack.enter_context(redis(workdir / "redis"))
        environment = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
        print(f"PostgreSQL at {database_url}, Redis at {redis_url}", flush=True)
        return subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=ROOT, env=environment).returncode


@contextmanager
def postgres(directory):
    binaries = _postgres_binaries()
    owner = _unprivileged_owner()
    directory.mkdir()
    if owner:
        os.chown(directory.parent, owner.pw_uid, owner.pw_gid)
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if owner else {}
    data = directory / "data"
    subprocess.run(
        [binaries / "initdb", "--pgdata", data, "--username", "skyline", "--auth", "trust", "--encoding", "UTF8",
         "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, **as_owner,
    )
    port = _free_port()
    # A test server: durability buys nothing and costs the suite minutes.
    with open(directory / "server.log", "wb") as log:
        server = subprocess.Popen(
            [binaries / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", directory,
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=subprocess.DEVNULL, stderr=log, **as_owner,
        )
    try:
        _wait(lambda: subprocess.run(
            [binaries / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode == 0, server, "PostgreSQL")
        # The database DATABASE_URL names: processes the tests start (a Celery worker) use it as is.
        subprocess.run([binaries / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "skyline", "skyline"],
                       check=True)
        yield f"postgres://skyline@127.0.0.1:{port}/skyline"
    finally:
        _stop(server)


@contextmanager
def redis(directory):
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    directory.mkdir()
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: _redis_answers(port), server, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(server)


def _postgres_binaries():
    found = shutil.which("initdb") or max(glob.glob("/usr/lib/postgresql/*/bin/initdb"), default=None,
                                          key=lambda path: int(Path(path).parts[-3]))
    if found is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(found).resolve().parent  # PATH may hold symlinks to the version directory


def _unprivileged_owner():
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise SystemExit("running as root: PostgreSQL needs the `postgres` user (apt-get install postgresql)")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait(ready, server, name):
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if server.poll() is not None:
            raise SystemExit(f"{name} exited with status {server.returncode} while starting")
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not start within {START_TIMEOUT} s")
        time.sleep(0.1)


def _stop(server):
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
