"""How long the 「批量派单」 page takes: city-wide (up to 200 problems) and for one district, on the demo data.

Usage::

    .venv/bin/python benchmarks/assignment_page_bench.py [--scale 1.0] [--district 亭湖区] [--profile]

Generates the demo dataset, loads it into a fresh embedded store, logs in a city coordinator through the test
client and times ``GET /assignment`` (every district) and ``GET /assignment?district=...``, twice each (the first
call also builds the recommender). ``--profile`` prints where a warm city-wide request spends its time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo.generator import generate  # noqa: E402
from graph.dataset import load_dataset  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from tests.api_support import login_as, make_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--district", default="亭湖区")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, scale=args.scale, seed=7)
        store = MemoryStore()
        load_dataset(store, tmp)
    app = make_app(store)
    client, _ = login_as(app, store, "city")
    print(f"{'page':<36} {'status':>6} {'seconds':>8} {'pairs':>6}")
    for url in ("/assignment", "/assignment", f"/assignment?district={args.district}",
                f"/assignment?district={args.district}"):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        pairs = response.get_data(as_text=True).count('data-testid="plan-pair"')
        print(f"{url:<36} {response.status_code:>6} {elapsed:>8.2f} {pairs:>6}")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(client.get, "/assignment")
        own = r"jianglian|main/(graph|recommender|workflow|web)"  # the project's own functions
        pstats.Stats(profile).sort_stats("cumulative").print_stats(own, 25)


if __name__ == "__main__":
    main()
