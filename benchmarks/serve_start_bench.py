"""``jianglian serve`` after a restart: process start -> first answered recommendation (issue 13).

Starts ``jianglian serve --workers N`` (a fresh process, as ``make serve`` does) on a prepared data directory
with the ranking index files present, and polls ``POST /api/v1/recommendations`` (a new problem's text, so the
dense encoder really runs) every ``--poll`` seconds from the moment the process is started until one answers
200. Then it waits until ``/readyz`` has answered 200 from every worker, has every worker answer ``--warm``
recommendations of other texts, and reads each worker's memory from ``/proc/<pid>/smaps_rollup`` (RSS, PSS,
USS = private clean + private dirty: mapped pages touched by one worker only count as its own), stops the
server with ``SIGTERM``
and starts the next run. Printed: one line per run and a table with the median over the runs. On a shared
machine the wall clock depends on the other load; the CPU seconds the server's process tree (``jianglian serve``
and its workers) had used when the first answer came do not.

The data directory is prepared once if it holds no store (``jianglian demo --if-empty``, ``train-ranker
--if-missing``, ``index build``, and a read API key kept in ``<data>/bench-api-key``), like ``make serve``.

Run::

    .venv/bin/python benchmarks/serve_start_bench.py --data /tmp/jianglian-serve-bench --workers 2 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin" / "jianglian"
WORDS = ["注塑", "焊接", "数控", "机床", "主轴", "异响", "液压", "泄漏", "伺服", "驱动", "模具", "冷却", "变形", "裂纹",
         "轴承", "过热", "PLC", "程序", "调试", "精度", "电机", "振动", "密封", "涂装"]
BODY = json.dumps({"problem": {"title": "注塑件缩痕严重", "skills": ["注塑成型"]}, "top_k": 5}).encode()


#: Set by ``--tree``: another checkout's code (e.g. the commit before a change) run with this venv.
TREE: Path | None = None
#: Set by ``--encoder``: the served ranking's dense encoder (``JIANGLIAN_EMBEDDING_MODEL``), unset = the default.
ENCODER: str | None = None


def _env(data: Path) -> dict[str, str]:
    env = {**os.environ, "JIANGLIAN_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "JIANGLIAN_API_RATE_LIMIT": "100000 per minute"}  # the polling and warming are not what is measured
    if ENCODER is not None:
        env["JIANGLIAN_EMBEDDING_MODEL"] = ENCODER
    if TREE is not None:  # its own index files: the files' fingerprint includes the index-building code
        env.update(PYTHONPATH=str(TREE), JIANGLIAN_INDEX_DIR=str(data / f"index-{TREE.name}"))
    return env


def prepare(data: Path) -> str:
    """Demo data, the ranker, the index files and an API key in ``data`` (once); returns the key."""
    key_file = data / "bench-api-key"
    env = _env(data)
    if not (data / "store").exists():
        for cmd in (["demo", "--if-empty"], ["train-ranker", "--if-missing"]):
            subprocess.run([str(BIN), *cmd], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    if not key_file.is_file():
        out = subprocess.run([str(BIN), "apikey", "create", "--name", "serve-start-bench", "--scope", "read"],
                             env=env, check=True, cwd=ROOT, capture_output=True, text=True).stdout
        key_file.write_text(next(line.split()[1] for line in out.splitlines() if line.startswith("key:")))
    status = subprocess.run([str(BIN), "index", "status", "--json"], env=env, cwd=ROOT, capture_output=True,
                            text=True)
    usable = status.returncode == 0 and json.loads(status.stdout or "{}").get("usable")
    if not usable:
        subprocess.run([str(BIN), "index", "build"], env=env, check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
    return key_file.read_text().strip()


def _call(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 120) -> tuple[int | None, bytes, Any]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers
    except OSError:
        return None, b"", {}


def _memory(pid: int) -> dict[str, float]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            out[parts[0].rstrip(":")] = int(parts[1])
    return {"rss_mb": out.get("Rss", 0) / 1024, "pss_mb": out.get("Pss", 0) / 1024,
            "uss_mb": (out.get("Private_Clean", 0) + out.get("Private_Dirty", 0)) / 1024}


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its descendants so far, plus their reaped children's."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


def one_run(data: Path, key: str, *, workers: int, port: int, poll: float, warm: int = 20) -> dict[str, Any]:
    """Start the server, time the first answered recommendation, measure the workers, stop it."""
    base = f"http://127.0.0.1:{port}"
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    started = time.perf_counter()
    proc = subprocess.Popen([str(BIN), "serve", "--workers", str(workers), "--port", str(port)], env=_env(data),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result: dict[str, Any] = {"workers": workers}
    try:
        while time.perf_counter() - started < 300:  # listening: /healthz answers without the ranking
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}:\n{proc.stdout.read()[-3000:]}")  # type: ignore[union-attr]
            if _call(base + "/healthz", timeout=5)[0] is not None:
                break
            time.sleep(poll)
        listening = time.perf_counter() - started
        while time.perf_counter() - started < 300:
            status, body, hdr = _call(base + "/api/v1/recommendations", data=BODY, headers=headers)
            now = time.perf_counter() - started
            if status == 200:
                result.update(first_answer_s=now, listening_s=listening, cpu_s=_tree_cpu(proc.pid),
                              answered_by=hdr.get("X-Jianglian-Worker", "one"),
                              n=len(json.loads(body).get("recommendations", json.loads(body).get("items", []))))
                break
            if status is not None and status != 503:
                raise RuntimeError(f"recommendation answered {status}: {body[:500]!r}")
            time.sleep(poll)
        else:
            raise RuntimeError("no answer within 300 s")
        ready: dict[str, Any] = {}
        while len(ready) < workers and time.perf_counter() - started < 300:
            status, body, hdr = _call(base + "/readyz")
            if status == 200:
                ready.setdefault(hdr.get("X-Jianglian-Worker", str(proc.pid)),
                                 (time.perf_counter() - started, json.loads(body).get("ranking")))
            time.sleep(poll)
        result["all_ready_s"] = max(t for t, _ in ready.values())
        result["ranking"] = {w: r for w, (_, r) in ready.items()}
        # every worker answers `warm` recommendations of different texts before its memory is read: a worker
        # that has answered nothing has touched few of the mapped pages, which would make it look cheap
        answered = dict.fromkeys(ready, 0)
        for i in range(warm * workers * 5):
            if min(answered.values(), default=warm) >= warm:
                break
            body = json.dumps({"problem": {"title": f"{WORDS[i % len(WORDS)]}{WORDS[(i * 7 + 3) % len(WORDS)]}故障",
                                           "skills": []}, "top_k": 10}).encode()
            status, _, hdr = _call(base + "/api/v1/recommendations", data=body, headers=headers)
            who = hdr.get("X-Jianglian-Worker", str(proc.pid))
            if status == 200 and who in answered:
                answered[who] += 1
        result["warm_answers"] = answered
        result["memory"] = {w: _memory(int(w)) for w in ready}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/tmp/jianglian-serve-bench"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--port", type=int, default=5391)
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between polls")
    parser.add_argument("--tree", type=Path, default=None,
                        help="run another checkout's code (PYTHONPATH) with this venv, e.g. a `git archive` of the "
                             "commit before a change, for a before/after on the same machine state")
    parser.add_argument("--warm", type=int, default=20,
                        help="recommendations every worker answers before its memory is read")
    parser.add_argument("--encoder", default=None,
                        help="JIANGLIAN_EMBEDDING_MODEL for the server (e.g. none, with an index_bench data directory "
                             "such as /tmp/jianglian-index-bench/scale-45 whose files were built without one)")
    args = parser.parse_args()
    global TREE, ENCODER
    TREE = args.tree.resolve() if args.tree else None
    ENCODER = args.encoder
    key = prepare(args.data)
    load = os.getloadavg()
    print(f"# serve_start_bench: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f} / {load[1]:.1f}, --workers {args.workers}, {args.runs} runs, code "
          f"{TREE or ROOT}, data {args.data}, encoder {ENCODER or 'default'}", flush=True)
    runs = []
    for i in range(args.runs):
        before = os.getloadavg()[0]
        run = one_run(args.data, key, workers=args.workers, port=args.port, poll=args.poll, warm=args.warm)
        run["load"] = before
        runs.append(run)
        mem = "; ".join(f"{m['rss_mb']:.0f}/{m['pss_mb']:.0f}/{m['uss_mb']:.0f}" for m in run["memory"].values())
        mem += f" after {sorted(run['warm_answers'].values())} warm answers"
        seconds = [r.get("seconds") for r in run["ranking"].values()]
        print(f"run {i + 1}: load {before:.1f}, listening {run['listening_s']:.2f} s, first answer "
              f"{run['first_answer_s']:.2f} s (server CPU by then {run['cpu_s']:.2f} s), every worker ready "
              f"{run['all_ready_s']:.2f} s (ranking start {seconds} s), RSS/PSS/USS MB {mem}", flush=True)
        time.sleep(1.0)
    med = statistics.median
    firsts = [r["first_answer_s"] for r in runs]
    print()
    print("| --workers | runs | load average | listening | first answered recommendation: median (min-max) | "
          "CPU of the server's processes until then (median) | every worker ready | per worker RSS / PSS / USS "
          "(median) |")
    print("|---|---|---|---|---|---|---|---|")
    mems = [sorted(r["memory"].values(), key=lambda m: m["uss_mb"]) for r in runs]
    per = "; ".join(f"{med(m[k]['rss_mb'] for m in mems):.0f} / {med(m[k]['pss_mb'] for m in mems):.0f} / "
                    f"{med(m[k]['uss_mb'] for m in mems):.0f} MB" for k in range(len(mems[0])))
    loads = [r["load"] for r in runs]
    print(f"| {args.workers} | {len(runs)} | {min(loads):.1f}-{max(loads):.1f} | "
          f"{med(r['listening_s'] for r in runs):.2f} s | **{med(firsts):.2f} s** "
          f"({min(firsts):.2f}-{max(firsts):.2f}) | {med(r['cpu_s'] for r in runs):.2f} s | "
          f"{med(r['all_ready_s'] for r in runs):.2f} s | {per} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
