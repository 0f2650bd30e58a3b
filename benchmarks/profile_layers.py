"""Where a server request's CPU goes, layer by layer, from a py-spy speedscope profile.

    python benchmarks/server_load.py --profile /tmp/prof      # writes /tmp/prof-server.json
    python benchmarks/profile_layers.py /tmp/prof-server.json [--cpu-us 2200]

Each sample is charged to one layer: the innermost frame that belongs to a known layer decides
(so `json.dumps` called by the run store counts as the store, a socket write under uvicorn as
uvicorn). Samples whose innermost frame is the event loop's own `run` (uvloop's C code:
epoll, socket reads and writes, scheduling callbacks) form their own line; import-time samples
(start-up) are left out. `--cpu-us` (the server's CPU µs per request measured without the
profiler, `CPU us/req` in server_load's table) turns the shares into µs per request.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

#: (layer, file prefixes), tried from the innermost frame outwards; the first match wins
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQLite run store (checkpoints, chain read)", ("taskengine/store/",)),
    ("activity tracking", ("taskengine/observability/activity/", "taskengine/kv/")),
    ("template rendering", ("taskengine/templates/",)),
    ("provider call: openai SDK + aiohttp", ("openai/", "httpx", "aiohttp/", "aiohappyeyeballs/",
                                             "taskengine/providers/", "taskengine/model_calls")),
    ("engine: run loop, journal, handler", ("taskengine/",)),
    ("FastAPI/Starlette routing, deps, pydantic", ("fastapi/", "starlette/", "pydantic", "anyio/")),
    ("uvicorn: HTTP parsing, response writes", ("uvicorn/", "httptools")),
)  # fmt: skip
#: taskengine's server package is its own layer, tried before the engine's catch-all
SERVER = ("server routes + middleware", ("taskengine/server/",))
#: frames of start-up and shutdown (imports, opening the runtime, the first collection)
_START_UP = frozenset({"_find_and_load", "tune_gc_for_service", "_open_state", "_close_state"})
LOOP = "event loop (uvloop: epoll, socket I/O, scheduling)"
OTHER = "other (stdlib at top level)"


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "lib/python3."):
        if marker in path:
            path = path.split(marker)[-1]
            if marker == "lib/python3.":
                path = path.partition("/")[2]
    return path


def _layer(files: list[str], leaf_name: str) -> str:
    if leaf_name in ("Runner.run", "run_until_complete", "run_forever"):
        return LOOP
    rules = (*LAYERS[:4], SERVER, *LAYERS[4:])
    for file in reversed(files):
        for name, prefixes in rules:
            if file.startswith(prefixes):
                return name
    return OTHER


def layers(profile: dict) -> tuple[Counter[str], float]:
    """Seconds of CPU per layer, and the total, over every thread of a speedscope profile."""
    frames = profile["shared"]["frames"]
    files = [_short(f.get("file", "")) for f in frames]
    names = [f["name"] for f in frames]
    spent: Counter[str] = Counter()
    for thread in profile["profiles"]:
        for stack, weight in zip(thread["samples"], thread["weights"], strict=True):
            if not stack or any(names[i] in _START_UP for i in stack):
                continue
            spent[_layer([files[i] for i in stack], names[stack[-1]])] += weight
    return spent, sum(spent.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", help="speedscope JSON written by py-spy")
    parser.add_argument("--cpu-us", type=float, help="measured CPU µs per request")
    args = parser.parse_args(argv)
    with open(args.profile) as src:
        spent, total = layers(json.load(src))
    print(f"{'layer':<52} {'share':>7}" + (f" {'µs/req':>8}" if args.cpu_us else ""))
    for name, seconds in spent.most_common():
        share = seconds / total
        line = f"{name:<52} {share * 100:>6.1f}%"
        if args.cpu_us:
            line += f" {share * args.cpu_us:>8.0f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
