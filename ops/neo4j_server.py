"""Start and stop the development/test Neo4j 5.26 server (the Java launcher in ``neo4j-launcher/``).

Why this module is long: it owns one process's whole life (Maven build of the launcher, JVM flags, start,
readiness, supervision, stop), which the tests, ``jianglian neo4j`` and the Makefile use from this one place.

The launcher (``jianglian.Neo4jLauncher``) runs Neo4j Community 5.26 embedded with only a Bolt connector on
127.0.0.1, authentication off, and a bounded heap. It prints one line ``JIANGLIAN-NEO4J READY bolt://HOST:PORT``
once the default database ``neo4j`` is available, and shuts down cleanly when its standard input reaches
end-of-file. :class:`Neo4jServer` builds the launcher with Maven when needed, starts the JVM with a pipe as its
standard input, waits for the ready line, and stops it by closing that pipe. If this Python process dies, the
pipe closes and the server stops by itself.

This module only manages the process; it does not import the ``neo4j`` driver.

Examples
--------
>>> with Neo4jServer() as server:  # doctest: +SKIP
...     driver = neo4j.GraphDatabase.driver(server.uri, auth=None)
"""

from __future__ import annotations

import atexit
import collections
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from graph.errors import StoreUnavailable

__all__ = [
    "DEFAULT_HEAP",
    "DEFAULT_STARTUP_TIMEOUT",
    "FAST_START_JVM_OPTIONS",
    "JVM_ARGS_FILE",
    "LAUNCHER_CLASS",
    "LAUNCHER_DIR",
    "READY_PREFIX",
    "Neo4jServer",
    "Neo4jServerError",
    "build_launcher",
    "find_free_port",
    "java_command",
    "jvm_flags",
    "launcher_is_built",
    "serve_forever",
]

#: The Maven project of the launcher (``pom.xml``, ``jvm.args``, ``src/``; builds into ``target/``).
LAUNCHER_DIR = Path(__file__).resolve().parent.parent / "neo4j-launcher"
#: JVM flags Neo4j 5.26 needs (a ``java`` argument file; ``#`` starts a comment).
JVM_ARGS_FILE = LAUNCHER_DIR / "jvm.args"
LAUNCHER_CLASS = "jianglian.Neo4jLauncher"
#: Prefix of the launcher's single ready line; the Bolt URI follows it.
READY_PREFIX = "JIANGLIAN-NEO4J READY "
DEFAULT_HEAP = "1g"
DEFAULT_STARTUP_TIMEOUT = 180.0
HOST = "127.0.0.1"

_STAMP = "target/.jianglian-built"
_SOURCES = ("pom.xml", "src/main/java/jianglian/Neo4jLauncher.java")
_READY_RE = re.compile(re.escape(READY_PREFIX) + r"(bolt://\S+)")
_HEAP_RE = re.compile(r"^\d+[kKmMgG]?$")
_TAIL_LINES = 60

#: JVM options that halve the CPU a start needs (C1 JIT only) at the price of slower long-running queries:
#: right for test sessions, not the default for a development server.
FAST_START_JVM_OPTIONS: tuple[str, ...] = ("-XX:TieredStopAtLevel=1",)


class Neo4jServerError(StoreUnavailable):
    """The development Neo4j server could not be built, started or stopped.

    The message ends with the last lines the process (or Maven) printed.
    """


def jvm_flags(args_file: Path = JVM_ARGS_FILE) -> list[str]:
    """Read the JVM flags from the launcher's argument file.

    Parameters
    ----------
    args_file : pathlib.Path
        A ``java`` ``@argfile`` written one flag per line; lines starting with ``#`` are comments.

    Returns
    -------
    list of str
        The flags in file order.
    """
    lines = (line.strip() for line in args_file.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def find_free_port(host: str = HOST) -> int:
    """Return a TCP port on ``host`` that is free right now (the OS picks it).

    Parameters
    ----------
    host : str
        Address to bind.

    Returns
    -------
    int
        The port. Another process may take it before it is used; :meth:`Neo4jServer.start` retries then.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def launcher_is_built(launcher_dir: Path = LAUNCHER_DIR) -> bool:
    """Tell whether ``target/`` holds a launcher built from the current sources.

    Parameters
    ----------
    launcher_dir : pathlib.Path
        The Maven project directory.

    Returns
    -------
    bool
        True when the build stamp exists and is newer than ``pom.xml`` and the launcher source.
    """
    stamp = launcher_dir / _STAMP
    if not stamp.is_file() or not (launcher_dir / "target" / "classes" / "jianglian" / "Neo4jLauncher.class").is_file():
        return False
    built = stamp.stat().st_mtime
    return all((launcher_dir / s).stat().st_mtime <= built for s in _SOURCES if (launcher_dir / s).exists())


def build_launcher(launcher_dir: Path = LAUNCHER_DIR, *, force: bool = False, quiet: bool = False) -> None:
    """Build the launcher with Maven (``mvn -B package``) unless it is already up to date.

    The first build downloads Neo4j and its dependencies (about 125 MB) into ``~/.m2``; later builds work
    offline. Concurrent callers serialise on a lock file in ``target/``.

    Parameters
    ----------
    launcher_dir : pathlib.Path
        The Maven project directory.
    force : bool
        Build even when :func:`launcher_is_built` says it is up to date.
    quiet : bool
        Print nothing; by default progress goes to standard error.

    Raises
    ------
    Neo4jServerError
        Maven is missing or the build failed (the message ends with Maven's last lines).
    """
    if not force and launcher_is_built(launcher_dir):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise Neo4jServerError("Maven (mvn) is needed to build the Neo4j launcher: apt-get install maven")
    target = launcher_dir / "target"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".build.lock", "w") as lock:
        _lock(lock)
        if not force and launcher_is_built(launcher_dir):
            return
        say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
        say(f"building the Neo4j launcher in {launcher_dir} (mvn package; the first build downloads ~125 MB)")
        # Jars of an older dependency set would stay on the class path next to the new ones.
        shutil.rmtree(target / "lib", ignore_errors=True)
        started = time.monotonic()
        cmd = [mvn, "-B", "-ntp", "-Dstyle.color=never", "-f", str(launcher_dir / "pom.xml"), "package"]
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            if line.startswith(("[INFO] --- ", "[ERROR]", "[INFO] BUILD")):
                say("  mvn: " + line)
        code = proc.wait()
        if code != 0:
            raise Neo4jServerError(
                f"building the Neo4j launcher failed ({' '.join(cmd)} exited {code}):\n" + "\n".join(tail)
            )
        (launcher_dir / _STAMP).write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"), encoding="utf-8")
        say(f"built the Neo4j launcher in {time.monotonic() - started:.1f} s")


def _lock(handle: IO[str]) -> None:
    """Take an exclusive lock on an open file (released when it is closed; no-op without ``fcntl``)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise Neo4jServerError("Java 17 or 21 is needed to run Neo4j 5.26: apt-get install openjdk-17-jre-headless")
    return java


def java_command(
    data_dir: Path,
    port: int,
    *,
    heap: str = DEFAULT_HEAP,
    launcher_dir: Path = LAUNCHER_DIR,
    conf: Mapping[str, str] | None = None,
    jvm_options: Sequence[str] = (),
    ignore_stdin: bool = False,
) -> list[str]:
    """Build the ``java`` command line that runs the launcher.

    Parameters
    ----------
    data_dir : pathlib.Path
        Neo4j home: databases under ``data/``, the debug log under ``logs/``.
    port : int
        Bolt port on 127.0.0.1.
    heap : str
        Maximum heap, a ``-Xmx`` value such as ``"512m"`` or ``"1g"``.
    launcher_dir : pathlib.Path
        The Maven project directory (must be built).
    conf : mapping of str to str, optional
        Extra Neo4j settings, passed as ``--conf key=value``; they override the launcher's defaults.
    jvm_options : sequence of str
        Extra JVM options, placed after the argument file's flags and the heap (so they can override them).
    ignore_stdin : bool
        Pass ``--ignore-stdin``: only a signal stops the server.

    Returns
    -------
    list of str
        The argument vector.
    """
    if not _HEAP_RE.match(heap):
        raise ValueError(f"heap must look like 512m or 1g, got {heap!r}")
    target = launcher_dir / "target"
    classpath = os.pathsep.join([str(target / "classes"), str(target / "lib" / "*")])
    cmd = [
        _java(),
        *jvm_flags(launcher_dir / "jvm.args"),
        f"-Xmx{heap}",
        "-Xms64m",
        "-Dfile.encoding=UTF-8",
        *jvm_options,
        "-cp",
        classpath,
        LAUNCHER_CLASS,
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    for key, value in (conf or {}).items():
        cmd += ["--conf", f"{key}={value}"]
    if ignore_stdin:
        cmd.append("--ignore-stdin")
    cmd.append(str(data_dir))
    return cmd


class Neo4jServer:
    """A Neo4j 5.26 server process on 127.0.0.1, for development and tests.

    Parameters
    ----------
    port : int, optional
        Bolt port; by default a free port is picked (and re-picked if another process takes it first).
    data_dir : str or os.PathLike, optional
        Neo4j home directory, kept after :meth:`stop`; by default a temporary directory removed by :meth:`stop`.
    heap : str
        Maximum JVM heap (``-Xmx``), e.g. ``"1g"``.
    startup_timeout : float
        Seconds to wait for the ready line before giving up.
    stop_timeout : float
        Seconds to wait for a clean shutdown after closing standard input before killing the JVM.
    conf : mapping of str to str, optional
        Extra Neo4j settings (override the launcher's development defaults).
    jvm_options : sequence of str
        Extra JVM options, e.g. :data:`FAST_START_JVM_OPTIONS`.
    echo : bool
        Copy the server's output (its user log, warnings) to standard error as it arrives.
    build : bool
        Build the launcher with Maven when ``target/`` is missing or stale.
    launcher_dir : str or os.PathLike
        The launcher's Maven project.

    Examples
    --------
    >>> with Neo4jServer(heap="512m") as server:  # doctest: +SKIP
    ...     print(server.uri)
    bolt://127.0.0.1:40123
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        heap: str = DEFAULT_HEAP,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        stop_timeout: float = 60.0,
        conf: Mapping[str, str] | None = None,
        jvm_options: Sequence[str] = (),
        echo: bool = False,
        build: bool = True,
        launcher_dir: str | os.PathLike[str] = LAUNCHER_DIR,
    ) -> None:
        if not _HEAP_RE.match(heap):
            raise ValueError(f"heap must look like 512m or 1g, got {heap!r}")
        self._requested_port = port
        self._requested_data_dir = Path(data_dir) if data_dir is not None else None
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.conf = dict(conf or {})
        self.jvm_options = list(jvm_options)
        self.echo = echo
        self.build = build
        self.launcher_dir = Path(launcher_dir)
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._uri: str | None = None
        self._port: int | None = None
        self._data_dir: Path | None = None
        self._temp_dir: Path | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._lock = threading.Lock()
        self.startup_seconds: float | None = None
        """Seconds from starting the JVM to the ready line (set by :meth:`start`)."""

    # -- properties -------------------------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The Bolt URI, ``bolt://127.0.0.1:PORT`` (only while running)."""
        if self._uri is None or not self.running:
            raise Neo4jServerError("the Neo4j server is not running")
        return self._uri

    @property
    def port(self) -> int:
        """The Bolt port (only while running)."""
        if self._port is None or not self.running:
            raise Neo4jServerError("the Neo4j server is not running")
        return self._port

    @property
    def data_dir(self) -> Path | None:
        """The Neo4j home directory in use, or ``None`` before :meth:`start`."""
        return self._data_dir

    @property
    def pid(self) -> int | None:
        """Process id of the JVM, or ``None`` when not started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the JVM is alive."""
        return self._proc is not None and self._proc.poll() is None

    def output_tail(self) -> list[str]:
        """Return the last lines the server printed (standard output and error, merged)."""
        with self._lock:
            return list(self._tail)

    # -- life cycle -------------------------------------------------------------------------------------------

    def start(self) -> Neo4jServer:
        """Build the launcher if needed, start the JVM and wait until Neo4j accepts Bolt connections.

        Returns
        -------
        Neo4jServer
            ``self``.

        Raises
        ------
        Neo4jServerError
            The build failed, Java is missing, or the server exited or did not become ready within
            ``startup_timeout`` (the message ends with its last output lines).
        """
        if self.running:
            raise Neo4jServerError(f"the Neo4j server is already running at {self._uri}")
        if self.build:
            build_launcher(self.launcher_dir)
        elif not (self.launcher_dir / "target" / "lib").is_dir():
            raise Neo4jServerError(f"the Neo4j launcher is not built: mvn -B -f {self.launcher_dir}/pom.xml package")
        if self._requested_data_dir is not None:
            self._data_dir = self._requested_data_dir.resolve()
            self._data_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="jianglian-neo4j-"))
            self._data_dir = self._temp_dir
        atexit.register(self.stop)
        attempts = 1 if self._requested_port is not None else 3
        try:
            for attempt in range(1, attempts + 1):
                port = self._requested_port if self._requested_port is not None else find_free_port()
                try:
                    self._launch(port)
                    return self
                except Neo4jServerError as err:
                    lost_port = "already in use" in str(err) or "BindException" in str(err)
                    if attempt == attempts or not lost_port:
                        raise
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, port: int) -> None:
        assert self._data_dir is not None
        cmd = java_command(
            self._data_dir,
            port,
            heap=self.heap,
            launcher_dir=self.launcher_dir,
            conf=self.conf,
            jvm_options=self.jvm_options,
        )
        with self._lock:
            self._tail.clear()
        self._ready.clear()
        self._uri = None
        started = time.monotonic()
        # A new session keeps a terminal's Ctrl-C away from the JVM: stop() shuts it down in order instead.
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._reader = threading.Thread(target=self._read_output, args=(self._proc,), name="neo4j-output", daemon=True)
        self._reader.start()
        deadline = started + self.startup_timeout
        while not self._ready.wait(0.1):
            code = self._proc.poll()
            if code is not None:
                self._kill()
                raise Neo4jServerError(self._explain(f"the Neo4j server exited with code {code} before it was ready"))
            if time.monotonic() > deadline:
                self._kill()
                raise Neo4jServerError(
                    self._explain(f"the Neo4j server was not ready within {self.startup_timeout:.0f} s")
                )
        self._port = port
        self.startup_seconds = time.monotonic() - started

    def _read_output(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            with self._lock:
                self._tail.append(line)
            match = _READY_RE.search(line)
            if match and not self._ready.is_set():
                self._uri = match.group(1)
                self._ready.set()
            if self.echo:
                print(line, file=sys.stderr, flush=True)
        proc.stdout.close()

    def _explain(self, what: str) -> str:
        tail = self.output_tail()
        log = self._data_dir / "logs" / "debug.log" if self._data_dir is not None else None
        where = f" (debug log: {log})" if log is not None and log.exists() and self._temp_dir is None else ""
        return f"{what}{where}; its last output lines:\n" + ("\n".join(tail) if tail else "(none)")

    def stop(self) -> int | None:
        """Stop the server: close its standard input, wait, kill it after ``stop_timeout`` seconds.

        Safe to call more than once. Removes the temporary data directory, if one was made.

        Returns
        -------
        int or None
            The JVM's exit code (0 after a clean shutdown), or ``None`` if it was not running.
        """
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            try:
                code = proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if self._reader is not None:
                self._reader.join(5)
        self._reader = None
        self._uri = None
        self._port = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
        return code

    def _kill(self) -> None:
        """Kill the JVM (if still alive) and reap it and its output reader."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None

    def wait(self) -> int:
        """Block until the JVM exits on its own; return its exit code."""
        if self._proc is None:
            raise Neo4jServerError("the Neo4j server is not running")
        return self._proc.wait()

    def __enter__(self) -> Neo4jServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self._uri}" if self.running else "stopped"
        return f"<Neo4jServer {state}, data_dir={self._data_dir}>"


def _stdin_is_pipe() -> bool:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _watch_stdin(stop: threading.Event) -> None:
    try:
        fd = sys.stdin.fileno()
        while os.read(fd, 4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()


def serve_forever(
    port: int = 7687,
    data_dir: str | os.PathLike[str] = "data/neo4j",
    *,
    heap: str = DEFAULT_HEAP,
    conf: Mapping[str, str] | None = None,
) -> None:
    """Run a development Neo4j in the foreground until Ctrl-C, SIGTERM, or end-of-file on a piped stdin.

    Used by ``jianglian neo4j``. The server's log is copied to standard error; the data directory is kept.

    Parameters
    ----------
    port : int
        Bolt port on 127.0.0.1.
    data_dir : str or os.PathLike
        Neo4j home directory (created if missing).
    heap : str
        Maximum JVM heap (``-Xmx``).
    conf : mapping of str to str, optional
        Extra Neo4j settings.

    Raises
    ------
    Neo4jServerError
        The server failed to start or exited on its own with a non-zero code.
    """
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, on_term)
    server = Neo4jServer(port=port, data_dir=data_dir, heap=heap, conf=conf, echo=True)
    code: int | None = None
    try:
        server.start()
        print(
            f"Neo4j 5.26 ready at {server.uri} (data in {server.data_dir}, started in "
            f"{server.startup_seconds:.1f} s); Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        if _stdin_is_pipe():
            threading.Thread(target=_watch_stdin, args=(stop,), name="stdin-eof", daemon=True).start()
        while not stop.wait(0.5):
            if not server.running:
                tail = "\n".join(server.output_tail()[-20:])
                raise Neo4jServerError(f"the Neo4j server exited on its own:\n{tail}")
    except KeyboardInterrupt:
        pass
    finally:
        if server.running:
            print("stopping Neo4j ...", file=sys.stderr, flush=True)
        code = server.stop()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    if code not in (0, None):
        raise Neo4jServerError(f"the Neo4j server stopped with exit code {code}")
