"""Benchmark cvm against lifetimes and pymc-marketing on simulated logs of growing size.

The logs come from cvm's simulator (BG/NBD purchases, Gamma-Gamma spend) and are cached under
``benchmarks/data/``. Every (tool, size, step) runs in its own process: cvm's steps in the project
environment (``steps_cvm.py``), the peers' in ``benchmarks/peers/.venv`` (``steps_peers.py``). The
child times its step (imports and inputs excluded); this process polls the peak memory of the
child's whole process tree, enforces the time and memory limits, merges the results into the JSON
file by (tool, size, step) and prints a table with the targets.

    uv sync --locked --project benchmarks/peers        # the peers' environment, once
    python benchmarks/scale.py [--sizes 10k 100k 1M 1M-cov 50M-tx]
        [--tools cvm lifetimes pymc_marketing pymc_marketing_nutpie]
        [--steps summary features map nuts clv clv_point pipeline] [--timeout 1800]
        [--memory-limit-gb 20] [--out benchmarks/results/scale.json] [--no-warm-up]
    python benchmarks/scale.py --logs-only [--sizes …]   # only simulate (and cache) the logs
    python benchmarks/scale.py --report                  # only print the table of --out
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil
from steps_common import RESULT_PREFIX

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEER_PYTHON = BENCH / "peers" / ".venv" / "bin" / "python"
PEER_SYNC = "uv sync --locked --project benchmarks/peers"

# pymc_marketing_nutpie: pymc-marketing sampling with nuts_sampler="nutpie", its own peer column
TOOLS = ("cvm", "lifetimes", "pymc_marketing", "pymc_marketing_nutpie")
PEERS = TOOLS[1:]
COMPILED = ("cvm", "pymc_marketing")  # tools whose models PyTensor compiles
SHORT = {"lifetimes": "lt", "pymc_marketing": "pm", "pymc_marketing_nutpie": "pmn"}
LABEL = {"pymc_marketing_nutpie": "pm+nutpie"}  # column headers (default: the tool's name)
STEPS = ("summary", "features", "map", "nuts", "clv", "clv_point", "pipeline")
FIT_STEPS = ("summary", "features", "map", "nuts", "clv", "clv_point")
SUPPORTED = {
    "cvm": set(STEPS),
    "lifetimes": {"summary", "map", "clv_point"},
    "pymc_marketing": {"summary", "map", "nuts", "clv", "clv_point"},
    "pymc_marketing_nutpie": {"nuts", "clv"},
}
NO_PIPELINE = "not supported: a library, no end-to-end pipeline to run"
NOT_SUPPORTED = {
    "lifetimes": {
        "nuts": "not supported: lifetimes fits by maximum likelihood only, no posterior",
        "clv": "not supported: lifetimes has no posterior draws to take a CLV interval from",
        "pipeline": NO_PIPELINE,
    },
    "pymc_marketing": {"pipeline": NO_PIPELINE},
    "pymc_marketing_nutpie": {"pipeline": NO_PIPELINE},
}
# the sampler changes only the posterior: pymc-marketing's other steps are the same code, and
# its models the same PyTensor compile cache
SAME_AS = {"pymc_marketing_nutpie": "pymc_marketing"}
# the step whose output a step reads
PRODUCER = {"clv": "nuts", "clv_point": "map"}
# peers have no churn features: the features row compares cvm with their summary
STAND_IN = {"features": "summary"}


@dataclass(frozen=True)
class LogSpec:
    """A simulated log: its customers, how it is simulated and which steps run on it."""

    name: str
    customers: int
    seed: int
    steps: tuple[str, ...]  # run when --steps is not given
    allowed: tuple[str, ...] = STEPS
    chunk: int = 1_000_000  # customers simulated at a time
    horizon_days: int = 546
    cohort_days: int = 84
    params: dict[str, float] = field(default_factory=dict)  # empty: CDNOW's estimates
    # 0/1 customer covariates: (name, purchase coefficient, dropout coefficient) in the form of
    # models/btyd/covariates.py; cvm's fits and CLV then use them
    covariates: tuple[tuple[str, float, float], ...] = ()
    tools: tuple[str, ...] = TOOLS  # the tools that run on the log
    # where a clv reads its posterior when the nuts step of this size broke a limit: the work
    # directory of that (smaller) size, whose draws serve as well (the cost is in the customers)
    inputs_fallback: str | None = None

    def generation(self) -> dict:
        """What the log's content depends on (a cached log is reused while this is unchanged)."""
        spec = asdict(self)
        del spec["steps"], spec["allowed"], spec["tools"], spec["inputs_fallback"]
        if not self.covariates:  # the logs without covariates stay as they were cached
            del spec["covariates"]
        return spec | {"summary": "map" in self.allowed}


LOGS = {
    spec.name: spec
    for spec in (
        LogSpec("10k", 10_000, seed=10_000, steps=FIT_STEPS),
        LogSpec("100k", 100_000, seed=100_000, steps=FIT_STEPS),
        LogSpec("1M", 1_000_000, seed=1_000_000, steps=STEPS, inputs_fallback="10k"),
        # the same size with three 0/1 covariates on the purchase rate and on dropout: cvm only
        LogSpec(
            "1M-cov",
            1_000_000,
            seed=1_000_001,
            steps=("map", "nuts", "clv", "clv_point"),
            allowed=("map", "nuts", "clv", "clv_point"),
            covariates=(("vip", 0.6, -0.5), ("web", -0.4, 0.5), ("north", 0.3, 0.3)),
            tools=("cvm",),
        ),
        # frequent buyers (~14 transactions each over two years): about 56 M transactions
        LogSpec(
            "50M-tx",
            4_000_000,
            seed=50,
            steps=("summary", "features"),
            allowed=("summary", "features"),
            chunk=500_000,
            horizon_days=730,
            cohort_days=182,
            params={"r": 0.75, "alpha": 2.5, "a": 0.8, "b": 12.0},
        ),
    )
}


# --- targets ---------------------------------------------------------------------------------

Get = Callable[[str, str, str], dict | None]


@dataclass(frozen=True)
class Target:
    """A figure the results are judged against; ``check`` returns (verdict, detail)."""

    label: str
    size: str
    step: str
    short: str
    check: Callable[[Get], tuple[str, str]]


def _ok(record: dict | None) -> bool:
    return record is not None and record["status"] == "ok"


def _within(size: str, step: str, seconds: float | None = None, mb: float | None = None):
    def check(get: Get) -> tuple[str, str]:
        rec = get("cvm", size, step)
        if not _ok(rec):
            return ("not measured", "") if rec is None else ("FAIL", rec["status"])
        detail = f"{rec['seconds']:.2f} s, {rec['peak_mb']:,.0f} MB"
        bad = (seconds is not None and rec["seconds"] > seconds) or (
            mb is not None and rec["peak_mb"] > mb
        )
        return ("FAIL" if bad else "pass"), detail

    return check


def _faster(size: str, step: str, peer: str, factor: float, peer_step: str | None = None):
    """cvm's step at least ``factor`` times as fast as the peer's (a peer over time: a bound)."""

    def check(get: Get) -> tuple[str, str]:
        mine, theirs = get("cvm", size, step), get(peer, size, peer_step or step)
        if mine is None or theirs is None:
            return "not measured", ""
        if not _ok(mine):
            return "FAIL", f"cvm: {mine['status']}"
        if _ok(theirs):
            speedup = theirs["seconds"] / mine["seconds"]
            verdict = "pass" if speedup >= factor else "FAIL"
            return verdict, f"{peer} time / cvm time = {speedup:,.3g}"
        if theirs["status"].startswith("over time limit"):
            bound = theirs["timeout_seconds"] / mine["seconds"]
            verdict = "pass" if bound >= factor else "no comparison"
            return verdict, f"{peer} time / cvm time ≥ {bound:,.3g} ({theirs['status']})"
        return "no comparison", f"{peer}: {theirs['status']}"

    return check


def _both(*checks):
    def check(get: Get) -> tuple[str, str]:
        results = [c(get) for c in checks]
        order = ("FAIL", "not measured", "no comparison", "pass")
        verdict = min((v for v, _ in results), key=order.index)
        return verdict, "; ".join(d for _, d in results if d)

    return check


PYMC_MARKETING = ("pymc_marketing", "pymc_marketing_nutpie")

TARGETS = [
    Target("1M MAP ≤ 2 s", "1M", "map", "≤ 2 s", _within("1M", "map", seconds=2)),
    Target("1M NUTS ≤ 60 s", "1M", "nuts", "≤ 60 s", _within("1M", "nuts", seconds=60)),
    Target(
        "1M CLV (1,000 draws) ≤ 60 s and ≤ 2 GB",
        "1M",
        "clv",
        "≤ 60 s, ≤ 2 GB",
        _within("1M", "clv", seconds=60, mb=2048),
    ),
    Target(
        "1M point CLV (at the MAP) ≤ 1 s",
        "1M",
        "clv_point",
        "≤ 1 s",
        _within("1M", "clv_point", seconds=1),
    ),
    # judged against both samplers of pymc-marketing: the faster one (nutpie) is the fair peer
    Target(
        "100k NUTS ≥ 10× faster than pymc-marketing (PyMC's NUTS and nutpie)",
        "100k",
        "nuts",
        "≥ 10× pm, pmn",
        _both(*(_faster("100k", "nuts", p, 10) for p in PYMC_MARKETING)),
    ),
    Target(
        "100k posterior CLV ≥ 10× faster than pymc-marketing (from either sampler's posterior)",
        "100k",
        "clv",
        "≥ 10× pm, pmn",
        _both(*(_faster("100k", "clv", p, 10) for p in PYMC_MARKETING)),
    ),
    *(
        Target(
            f"{s} MAP at least as fast as lifetimes",
            s,
            "map",
            "≤ lt",
            _faster(s, "map", "lifetimes", 1),
        )
        for s in ("10k", "100k", "1M")
    ),
    Target(
        "50M-tx features ≤ 4 GB and faster than lifetimes' summary",
        "50M-tx",
        "features",
        "≤ 4 GB, < lt summary",
        _both(
            _within("50M-tx", "features", mb=4096),
            _faster("50M-tx", "features", "lifetimes", 1, peer_step="summary"),
        ),
    ),
    Target(
        "`cvm run` on 1M ≤ 10 min and ≤ 8 GB",
        "1M",
        "pipeline",
        "≤ 600 s, ≤ 8 GB",
        _within("1M", "pipeline", seconds=600, mb=8192),
    ),
]


# --- running a step in a child process ----------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    timeout: float
    memory_mb: float
    poll: float = 0.1

    def describe_memory(self) -> str:
        return f"over memory limit ({self.memory_mb / 1024:g} GB)"

    def describe_time(self) -> str:
        return f"over time limit ({self.timeout:g} s)"


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _tree_rss_mb(root: psutil.Process) -> float:
    total = 0
    for proc in _tree(root):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total / 2**20


def _kill_tree(root: psutil.Process) -> None:
    """Kill the child and every process it started (they share its session's process group)."""
    for proc in _tree(root):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(root.pid, signal.SIGKILL)


def _watch(proc: subprocess.Popen, limits: Limits) -> tuple[str | None, float]:
    """Poll the tree's memory until the child exits or breaks a limit; (limit status, peak MB)."""
    root, peak, start = psutil.Process(proc.pid), 0.0, time.perf_counter()
    while True:
        try:
            proc.wait(timeout=limits.poll)
            return None, peak
        except subprocess.TimeoutExpired:
            pass
        peak = max(peak, _tree_rss_mb(root))
        broken = None
        if peak > limits.memory_mb:
            broken = limits.describe_memory()
        elif time.perf_counter() - start > limits.timeout:
            broken = limits.describe_time()
        if broken:
            _kill_tree(root)
            proc.wait()
            return broken, peak


def _last_line(path: Path, prefix: str = "") -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.startswith(prefix)]
    lines = [ln for ln in lines if ln.strip()]
    return lines[-1] if lines else ""


def measure(cmd: list[str], cwd: Path, env: dict, logs: Path, limits: Limits) -> dict:
    """Run ``cmd``; its status, wall time, peak tree memory and the child's result line."""
    out, err = logs.with_suffix(".out"), logs.with_suffix(".err")
    with out.open("w") as stdout, err.open("w") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=True
        )
        broken, peak = _watch(proc, limits)
        wall = time.perf_counter() - start
    line = _last_line(out, RESULT_PREFIX)
    result = json.loads(line[len(RESULT_PREFIX) :]) if line else {}
    if broken:
        status = broken
    elif "error" in result:
        status = f"failed: {result.pop('error')}"
    elif proc.returncode != 0:
        status = f"failed: {_last_line(err) or f'exit code {proc.returncode}'}"
    else:
        status = "ok"
    peak = max(peak, result.pop("self_peak_mb", 0.0))
    return {"status": status, "wall_seconds": wall, "peak_mb": peak, "result": result}


def child_env(tool: str, data: Path) -> dict:
    """The environment of a step: a PyTensor cache of the tool's own, no telemetry."""
    env = dict(os.environ)
    flags = env.get("PYTENSOR_FLAGS", "blas__ldflags=")
    cache = data / "pytensor" / SAME_AS.get(tool, tool)
    env["PYTENSOR_FLAGS"] = f"{flags},base_compiledir={cache}"
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def step_command(
    tool: str, step: str, log_dir: Path, work: Path, inputs: Path | None = None
) -> list[str]:
    if tool == "cvm":
        head = [sys.executable, str(BENCH / "steps_cvm.py"), step]
    else:
        head = [str(PEER_PYTHON), str(BENCH / "steps_peers.py"), step, "--tool", tool]
    tail = ["--inputs", str(inputs)] if inputs is not None else []
    return [*head, "--log-dir", str(log_dir), "--work", str(work), *tail]


def pipeline_command(log_dir: Path, work: Path, env: dict) -> tuple[list[str], Path]:
    """``cvm run`` on the log, in a scratch copy of ``conf/`` (params written there, not timed).

    Paths in params.yaml are relative to the working directory, so data, artifacts, reports and
    mlflow.db all land in the scratch directory.
    """
    run_dir = work / "pipeline"
    shutil.copytree(ROOT / "conf", run_dir / "conf")
    params = ["data=simulated", f"data.path={log_dir.resolve() / 'transactions.parquet'}"]
    cvm = [sys.executable, "-m", "pipeline"]
    subprocess.run(
        [*cvm, "params", *params, "--output", "params.yaml"],
        cwd=run_dir,
        env=env,
        check=True,
        capture_output=True,
    )
    return [*cvm, "run", "--params", "params.yaml"], run_dir


def _producer_broke_limit(tool: str, size: str, step: str, get: Get) -> str | None:
    """The step whose output ``step`` reads, when that step broke a limit at this size."""
    producer = PRODUCER.get(step)
    own = get(tool, size, producer) if producer else None
    return producer if own is not None and own["status"].startswith("over ") else None


def borrowed_inputs(tool: str, size: str, step: str, get: Get) -> str | None:
    """The size whose output a step reads when its own size's producer step broke a limit (a
    CLV can be timed on another size's posterior: its cost is in the customers, not the draws'
    values), or ``None``: the step reads its own size's."""
    producer, fallback = _producer_broke_limit(tool, size, step, get), LOGS[size].inputs_fallback
    if producer is None or fallback is None:
        return None
    return fallback if _ok(get(tool, fallback, producer)) else None


def run_step(
    tool: str, size: str, step: str, data: Path, limits: Limits, borrow: str | None = None
) -> dict:
    """Measure one (tool, size, step) and return its record; ``borrow``: read the inputs of
    that size's work directory (:func:`borrowed_inputs`)."""
    log_dir, work = data / "logs" / size, data / "work" / size / tool
    shutil.rmtree(work / step, ignore_errors=True)  # no stale output of an earlier run
    work.mkdir(parents=True, exist_ok=True)
    env = child_env(tool, data)
    if step == "pipeline":
        cmd, cwd = pipeline_command(log_dir, work, env)
    else:
        inputs = data / "work" / borrow / tool if borrow else None
        cmd, cwd = step_command(tool, step, log_dir, work, inputs), ROOT
    run = measure(cmd, cwd, env, work / step, limits)
    result = run["result"]
    seconds = result.pop("seconds", run["wall_seconds"] if step == "pipeline" else None)
    record = {
        "tool": tool,
        "size": size,
        "step": step,
        "status": run["status"],
        "seconds": seconds if run["status"] == "ok" else None,
        "peak_mb": run["peak_mb"],
        "wall_seconds": run["wall_seconds"],
        "rss_before_mb": result.pop("rss_before_mb", None),
        "timeout_seconds": limits.timeout,
        "memory_limit_mb": limits.memory_mb,
        "detail": result,
    }
    if borrow:
        record["inputs_from"] = borrow
    return record


# --- logs --------------------------------------------------------------------------------------


def ensure_log(spec: LogSpec, data: Path) -> dict:
    """The log's metadata, simulating it first unless a log of the same spec is cached."""
    log_dir = data / "logs" / spec.name
    meta_file = log_dir / "log.json"
    wanted = json.loads(json.dumps(spec.generation()))  # as log.json has it: tuples as lists
    files = [log_dir / name for name in ("transactions.parquet", "clean.parquet")]
    complete = meta_file.is_file() and all(f.is_file() for f in files)
    if complete and json.loads(meta_file.read_text())["spec"] == wanted:
        return json.loads(meta_file.read_text())
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    (log_dir / "spec.json").write_text(json.dumps(wanted, indent=2) + "\n")
    print(f"simulating the {spec.name} log ({spec.customers:,} customers) …", flush=True)
    cmd = step_command("cvm", "generate", log_dir, log_dir)
    done = subprocess.run(cmd, cwd=ROOT, env=child_env("cvm", data), capture_output=True, text=True)
    if done.returncode != 0 or not meta_file.is_file():
        raise SystemExit(f"simulating the {spec.name} log failed:\n{done.stderr[-3000:]}")
    meta = json.loads(meta_file.read_text())
    print(f"  {meta['transactions']:,} transactions", flush=True)
    return meta


# --- versions, machine, results file -------------------------------------------------------------


def _git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--", ".") else "")


def cvm_versions() -> dict:
    names = ("pymc", "pytensor", "nutpie", "numpy", "pandas", "duckdb", "ibis-framework")
    return {"cvm": f"{metadata.version('cvm')} ({_git_commit()})"} | {
        n: metadata.version(n) for n in names
    }


def peer_versions() -> dict:
    names = ["lifetimes", "pymc-marketing", "pymc", "pytensor", "nutpie"]
    names += ["numpy", "pandas", "scipy"]
    code = "import json, sys; from importlib.metadata import version as v; "
    code += "print(json.dumps({n: v(n) for n in sys.argv[1:]}))"
    done = subprocess.run([str(PEER_PYTHON), "-c", code, *names], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-500:]}


def tool_version(versions: dict, tool: str) -> str | None:
    if tool == "cvm":
        return versions["cvm"]["cvm"]
    peers = versions.get("peers", {})
    if tool == "pymc_marketing_nutpie":
        return f"{peers.get('pymc-marketing')} (nutpie {peers.get('nutpie')})"
    return peers.get(tool.replace("_", "-"))


def machine() -> dict:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = models[0].split(":", 1)[1].strip() if models else cpu
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }


def _key(record: dict) -> tuple[int, int, int]:
    sizes = list(LOGS)
    size = sizes.index(record["size"]) if record["size"] in sizes else len(sizes)
    return size, STEPS.index(record["step"]), TOOLS.index(record["tool"])


def load_results(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {"results": []}


def save_record(path: Path, doc: dict, record: dict) -> None:
    """Replace the (tool, size, step) record in ``doc`` and write the file; the records come
    from the file as it is now, so runs of other sizes or tools in the meantime are kept."""
    same = (record["tool"], record["size"], record["step"])
    doc["results"] = load_results(path)["results"] if path.is_file() else doc["results"]
    kept = [r for r in doc["results"] if (r["tool"], r["size"], r["step"]) != same]
    doc["results"] = sorted([*kept, record], key=_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=float) + "\n")


# --- the table -----------------------------------------------------------------------------------


def _status(record: dict) -> str:
    """A record that is not ``ok`` as the table shows it: a broken limit with the limit."""
    status = record["status"]
    if status.startswith("over time limit"):
        return f"timeout > {record['timeout_seconds']:,.0f} s"
    if status.startswith("over memory limit"):
        return f"out of memory > {record['memory_limit_mb'] / 1024:,.3g} GB"
    if status.startswith("failed: MemoryError"):  # an allocation larger than the machine
        return "out of memory (MemoryError)"
    return status


def _seconds(record: dict | None, width: int = 30) -> str:
    if record is None:
        return "—"
    mark = "†" if record.get("inputs_from") else ""
    if record["status"] != "ok":
        text = _status(record)
        return (text if len(text) <= width else text[: width - 1] + "…") + mark
    return f"{record['seconds']:,.2f}" + mark


def _peer_cell(peer: str, size: str, step: str, get: Get) -> tuple[dict | None, str]:
    """The peer's record for a row and how its seconds read (a missing record: why)."""
    theirs = get(peer, size, STAND_IN.get(step, step))
    if theirs is not None:
        return theirs, _seconds(theirs) + ("*" if step in STAND_IN else "")
    if step in NOT_SUPPORTED.get(peer, {}):
        return None, "not supported"
    if peer in SAME_AS and step not in SUPPORTED[peer]:
        return None, f"as {SHORT[SAME_AS[peer]]}"
    return None, "—"


def _mb(record: dict | None) -> str:
    return f"{record['peak_mb']:,.0f}" if _ok(record) else ""


def _ratio(mine: dict | None, theirs: dict | None) -> str:
    if not _ok(mine) or theirs is None:
        return ""
    if _ok(theirs):
        return f"{mine['seconds'] / theirs['seconds']:.3g}"
    if theirs["status"].startswith("over time limit"):
        return f"< {mine['seconds'] / theirs['timeout_seconds']:.3g}"
    return ""


def table_rows(records: list[dict]) -> list[list[str]]:
    """One row per (size, step): target, cvm s and MB, each peer's s, MB and cvm/peer time."""
    get = _lookup(records)
    header = ["size", "step", "target", "cvm s", "cvm MB"]
    for peer in PEERS:
        header += [f"{LABEL.get(peer, peer)} s", f"{SHORT[peer]} MB", f"cvm/{SHORT[peer]}"]
    rows = [header]
    pairs = sorted(
        {(r["size"], r["step"]) for r in records},
        key=lambda p: _key({"size": p[0], "step": p[1], "tool": "cvm"}),
    )
    for size, step in pairs:
        mine = get("cvm", size, step)
        targets = "; ".join(t.short for t in TARGETS if (t.size, t.step) == (size, step))
        row = [size, step, targets, _seconds(mine), _mb(mine)]
        for peer in PEERS:
            theirs, cell = _peer_cell(peer, size, step, get)
            row += [cell, _mb(theirs), _ratio(mine, theirs)]
        rows.append(row)
    return rows


def _lookup(records: list[dict]) -> Get:
    index = {(r["tool"], r["size"], r["step"]): r for r in records}
    return lambda tool, size, step: index.get((tool, size, step))


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    left = {0, 1, 2}
    lines = [
        "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(doc: dict) -> str:
    records = doc["results"]
    get = _lookup(records)
    lines = [format_table(table_rows(records)), ""]
    lines.append(
        "seconds: the step alone (imports and inputs excluded; `pipeline`: the whole `cvm run`); "
        "MB: peak RSS of the step's process tree; cvm/peer < 1: cvm is faster."
    )
    lines.append("* peers have no churn features: the features row shows their summary.")
    lines.append(
        'pm+nutpie: pymc-marketing with nuts_sampler="nutpie" (500 tuning steps); '
        "as pm: the same code as pymc-marketing's column."
    )
    lines.append(
        "timeout / out of memory: stopped at the limit shown; cvm/peer < x: at most x "
        "(the peer would have taken longer)."
    )
    borrowed = sorted({r["inputs_from"] for r in records if r.get("inputs_from")})
    if borrowed:
        lines.append(
            f"† read the posterior of the {', '.join(borrowed)} log: the nuts step of its own "
            "size did not finish."
        )
    lines += covariate_cost(get)
    lines += ["", "targets:"]
    for target in TARGETS:
        verdict, detail = target.check(get)
        lines.append(f"  {verdict:<13} {target.label}" + (f"  ({detail})" if detail else ""))
    return "\n".join(lines)


def covariate_cost(get: Get, size: str = "1M-cov", plain: str = "1M") -> list[str]:
    """What cvm's steps cost with covariates: ``size`` against the same steps on ``plain``."""
    lines = []
    for step in LOGS[size].allowed if size in LOGS else ():
        mine, base = get("cvm", size, step), get("cvm", plain, step)
        if mine is not None and not _ok(mine) and _ok(base):
            lines.append(f"  {step:<10} {_status(mine)} against {base['seconds']:,.2f} s")
        elif _ok(mine) and _ok(base):
            lines.append(
                f"  {step:<10} {mine['seconds']:,.2f} s, {mine['peak_mb']:,.0f} MB against "
                f"{base['seconds']:,.2f} s, {base['peak_mb']:,.0f} MB "
                f"(× {mine['seconds'] / base['seconds']:.2g} time)"
            )
    fits = [get("cvm", s, "map") for s in (size, plain)]
    if lines and all(_ok(r) and "counts" in r["detail"] for r in fits):
        mine, base = (r["detail"]["counts"] for r in fits)
        lines.append(
            f"  collapsed rows: {mine.get('distinct_rows', 0):,} distinct (x, t_x, T, covariates)"
            f" against {base['distinct_summaries']:,} distinct (x, t_x, T)"
        )
    if not lines:
        return []
    return [
        "",
        f"covariates: cvm on {size} ({len(LOGS[size].covariates)} 0/1 covariates) against {plain}:",
        *lines,
    ]


# --- main --------------------------------------------------------------------------------------


def _progress(record: dict) -> str:
    if record["status"] != "ok":
        return f"{record['status']}  ({record['wall_seconds']:,.1f} s wall)"
    return f"{record['seconds']:>10,.2f} s {record['peak_mb']:>9,.0f} MB"


def warm_up(tools: set[str], data: Path, limits: Limits, sizes: set[str] = frozenset()) -> None:
    """Fit MAP once per tool on the smallest log, unmeasured, so that PyTensor's compiled C code
    is cached before anything is timed (a first run would otherwise time the compiler); cvm's
    model with covariates is another graph, warmed up on the first log with covariates."""
    covariate_logs = [s for s in LOGS if s in sizes and LOGS[s].covariates][:1]
    for tool in sorted(tools, key=TOOLS.index):
        logs = ["10k", *(covariate_logs if tool == "cvm" else [])]
        for name in logs:
            print(f"warming up {tool}'s compile cache on {name} …", flush=True)
            ensure_log(LOGS[name], data)
            work = data / "work" / "warm-up" / name / tool
            work.mkdir(parents=True, exist_ok=True)
            cmd = step_command(tool, "map", data / "logs" / name, work)
            measure(cmd, ROOT, child_env(tool, data), work / "map", limits)


def blocked_by(tool: str, size: str, step: str, get: Get) -> str | None:
    """Why a step cannot run: its producer step broke a limit and no other size's output
    stands in (:func:`borrowed_inputs`); ``None`` if it can run."""
    producer = _producer_broke_limit(tool, size, step, get)
    if producer is None or borrowed_inputs(tool, size, step, get):
        return None
    return f"not run: {producer} stopped"


def _unmeasured(tool: str, size: str, step: str, status: str, reason: str) -> dict:
    return {
        "tool": tool,
        "size": size,
        "step": step,
        "status": status,
        "seconds": None,
        "peak_mb": None,
        "detail": {"reason": reason},
    }


def measure_or_skip(
    tool: str, size: str, step: str, data: Path, limits: Limits, get: Get | None = None
) -> dict:
    """The step's record: measured, "not supported" by the tool, or "not run" when the step
    whose output it reads broke a limit."""
    if step in NOT_SUPPORTED.get(tool, {}):
        return _unmeasured(tool, size, step, "not supported", NOT_SUPPORTED[tool][step])
    get = get or (lambda *_: None)
    if blocked := blocked_by(tool, size, step, get):
        own = get(tool, size, PRODUCER[step])
        reason = f"its {PRODUCER[step]} step: {_status(own)}, so no input to read"
        return _unmeasured(tool, size, step, blocked, reason)
    borrow = borrowed_inputs(tool, size, step, get)
    print(f"{size:>7} {step:<10} {tool:<21}", end=" ", flush=True)
    record = run_step(tool, size, step, data, limits, borrow)
    print(_progress(record), flush=True)
    return record


def plan(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(size, step, tool) in the order they run: size by size, step by step, tool by tool."""
    todo = []
    for size in args.sizes:
        spec = LOGS[size]
        steps = [s for s in (args.steps or spec.steps) if s in spec.allowed]
        tools = [t for t in args.tools if t in spec.tools]
        todo += [(size, step, tool) for step in STEPS if step in steps for tool in tools]
    return [t for t in todo if t[1] in SUPPORTED[t[2]] or t[1] in NOT_SUPPORTED.get(t[2], {})]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(LOGS), default=list(LOGS))
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--steps", nargs="+", choices=STEPS, help="default: each log's own")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per step")
    parser.add_argument("--memory-limit-gb", type=float, default=20, help="per step's tree")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "scale.json")
    parser.add_argument("--data", type=Path, default=BENCH / "data", help="logs and work dirs")
    parser.add_argument("--no-warm-up", action="store_true", help="time cold compile caches")
    parser.add_argument("--logs-only", action="store_true", help="simulate the logs, no steps")
    parser.add_argument("--report", action="store_true", help="print the table of --out only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = args.data.resolve()
    doc = load_results(args.out)
    if args.report:
        print(report(doc))
        return 0
    if args.logs_only:
        for size in args.sizes:
            ensure_log(LOGS[size], data)
        return 0
    peers = set(args.tools) & set(PEERS)
    if peers and not PEER_PYTHON.is_file():
        print(f"the peers' environment is missing: run `{PEER_SYNC}`", file=sys.stderr)
        return 2
    limits = Limits(args.timeout, args.memory_limit_gb * 1024)
    doc |= {"machine": machine(), "versions": doc.get("versions", {}) | {"cvm": cvm_versions()}}
    if peers:
        doc["versions"]["peers"] = peer_versions()
    todo = plan(args)
    compiling = {SAME_AS.get(t, t) for _, step, t in todo if step in ("map", "nuts", "pipeline")}
    if compiling and not args.no_warm_up:
        warm_up(compiling & set(COMPILED), data, limits, {size for size, _, _ in todo})
    for size, step, tool in todo:
        ensure_log(LOGS[size], data)
        record = measure_or_skip(tool, size, step, data, limits, _lookup(doc["results"]))
        record["version"] = tool_version(doc["versions"], tool)
        record["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        save_record(args.out, doc, record)
    print()
    print(report(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
