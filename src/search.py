"""The cube search: for one budget, plan candidate networks (``tinynet_ms.candidates``), train and evaluate each
with the model zoo's own training (``train.py``, or ``scripts/run_distribute_train.sh`` for data parallel), record
everything in ``OUT/cube.json`` as it goes, and report the table, a plot and the best network as a config.

    python cube.py search DATA --macs 50M [--samples 8] [--epochs 5] [--device_num N] [--config C]
                              [--out DIR] [--key value ...]

Resumable: ``cube.json`` holds the plan and every finished candidate; a re-run with the same arguments reads
those back and trains the rest, an interrupted candidate resuming from its last epoch (``--resume auto``). A lock
on ``OUT`` (held by the search and the training it runs) keeps two searches from writing one directory.

The training is the model zoo's (``train.py`` and ``scripts/`` of this checkout), run as a separate process per
candidate, the way a user runs it; the planning (``tinynet_ms.candidates``, ``tinynet_ms.latency``) is the library's.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from src.config import KEYS, load_config
from tinynet_ms.atomic import atomic_path, lock_directory, write_text_atomic
from tinynet_ms.candidates import Candidate, plan
from tinynet_ms.cli import EXIT_USAGE, UsageError
from tinynet_ms.design import RWD, b0_macs, count_macs, macs_cost, network_design, per_network
from tinynet_ms.formula import read_record
from tinynet_ms.latency import LATENCY_TARGETS, PROBE_SECONDS, REPORT_SECONDS, best_medians
from tinynet_ms.records import Field, RecordError, check_fields, confined
from tinynet_ms.train.metrics import MetricsLog

SEARCH_FORMAT = "tinynet_ms.cube/1"  # the record format's name since the first search: kept so old records read
SEARCH_FILE = "cube.json"
MACS_TOLERANCE = 0.02  # every candidate's counted MACs within 2% of a MACs budget
LATENCY_TOLERANCE = 0.10  # a measured latency repeats within ~10% at best (latency.py): a tighter band drops good points
# Keys the search sets for every candidate (the rest of the config and the user's overrides pass through).
SEARCH_KEYS = {"model": "the search trains model: tinynet", "r": "the search sets r", "w": "the search sets w",
               "d": "the search sets d", "image_size": "each candidate trains at its own resolution (its r)",
               "output_dir": "each candidate writes to OUT/candidates/...", "resume": "the search resumes candidates",
               "overwrite": "the search manages its candidates' directories", "data_path": "give DATA",
               "epochs": "use the search's own --epochs", "config_path": "use --config"}


ROOT = Path(__file__).resolve().parent.parent  # the model-zoo checkout: train.py, scripts/, ascend310_infer/


@dataclass
class Search:
    """What a search is: a re-run must ask for the same to continue it (``identity``)."""

    data: str
    config: str
    overrides: list[str]
    epochs: int
    samples: int
    device_num: int
    num_classes: int
    out: Path  # where it writes (not part of its identity: a search directory may move)
    budget_macs: int | None = None
    budget_ms: float | None = None
    latency_target: str | None = None
    latency_runs: int = 50
    device_target: str = "CPU"  # the resolved config's (implied by config and overrides)

    @property
    def budget(self) -> float:
        return float(self.budget_macs if self.budget_macs is not None else self.budget_ms)

    @property
    def unit(self) -> str:
        return "MACs" if self.budget_macs is not None else "ms"

    def identity(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("out", "device_target")}


def show_budget(search: Search) -> str:
    if search.budget_macs is not None:
        return f"{search.budget_macs / 1e6:g}M MACs"
    return f"{search.budget_ms:g} ms batch-1 latency ({search.latency_target})"


# -- config ---------------------------------------------------------------------------------------------------
def resolved_config(config: str, overrides: Sequence[str]) -> dict:
    """The config with ``overrides`` as train.py resolves it: also the check that every override is a known key
    with a valid value, before anything trains."""
    cfg = load_config(config, list(overrides))
    return {key: getattr(cfg, key) for key in KEYS}  # config keys only (not load_config's config_path)


def check_overrides(overrides: Sequence[str]) -> None:
    """The user's ``--key value`` pass through to every candidate, except the keys the search sets."""
    for arg in overrides:
        name = arg[2:].partition("=")[0] if arg.startswith("--") else ""
        if name in SEARCH_KEYS:
            raise UsageError(f"--{name} cannot be given to a cube search: {SEARCH_KEYS[name]}")


def candidate_overrides(search: Search, rwd: RWD, run_dir: Path) -> list[str]:
    r, w, d = rwd
    return [*search.overrides, "--num_classes", str(search.num_classes), "--model", "tinynet", "--r", f"{r:g}",
            "--w", f"{w:g}", "--d", f"{d:g}", "--image_size", "0", "--epochs", str(search.epochs),
            "--output_dir", str(run_dir)]


# -- the record -----------------------------------------------------------------------------------------------
# cube.json may have been edited since it was written: every field the search, its report and ``cube.py fit`` read
# is checked before use (the bounds are what a search can write, with room; huge values are refused, not run).
_SHARE, _SECONDS = Field("number", "[0, 1]", null=True), Field("number", "[0, inf)")
_STRUCTURE = Field("list", items=Field("int", "[0, 100000]"), max_len=100)
_BUDGETS = {"budget_macs": Field("number", "(0, 1e15]"), "budget_ms": Field("number", "(0, 1e7]")}
RECORD_FIELDS = {"search": Field("dict"), "candidates": Field("list", items=Field("dict"), max_len=10_000),
                 **_BUDGETS}
SEARCH_FIELDS = {"data": Field("str", max_len=4096), "config": Field("str", max_len=4096),
                 "overrides": Field("list", items=Field("str", max_len=4096), max_len=1000),
                 **{k: Field("int", "[1, 1e6]") for k in ("epochs", "samples", "device_num", "num_classes")},
                 **{k: replace(f, null=True) for k, f in _BUDGETS.items()},
                 "latency_target": Field("str", null=True, choices=LATENCY_TARGETS),
                 "latency_runs": Field("int", "[1, 1e6]")}
CANDIDATE_FIELDS = {"index": Field("int", "[1, 1e6]"), "source": Field("str", max_len=100),
                    **{k: Field("number", KEYS[k].bounds) for k in ("r", "w", "d")},
                    "image_size": Field("int", "[1, 1e5]"), "repeats": _STRUCTURE, "channels": _STRUCTURE,
                    "params": Field("int", "[0, 1e12]"), "macs": _BUDGETS["budget_macs"],
                    "latency_ms": _BUDGETS["budget_ms"], "run_dir": Field("str", max_len=4096),
                    "top1": _SHARE, "top5": _SHARE, "best_epoch": Field("int", "[1, inf)", null=True),
                    "weights": Field("str", null=True, choices=("ema", "model")), "train_seconds": _SECONDS,
                    "wall_seconds": _SECONDS, "failed": Field("str", max_len=10_000)}
DESCRIBED = ("index", "source", "r", "w", "d", "image_size", "repeats", "channels", "params", "macs", "run_dir")
SCORED = ("top5", "train_seconds", "best_epoch")  # what a trained candidate (top1 set) holds besides


def load_search(path: Path, required: Sequence[str] = DESCRIBED, scored: Sequence[str] = SCORED) -> dict:
    """cube.json at ``path``, checked: every candidate holds ``required`` (a trained one ``scored`` too, a latency
    search's ``latency_ms``), every field present fits ``*_FIELDS``, and each ``run_dir`` is a folder of its own
    under OUT/candidates (a record naming another folder would have its training, with --overwrite true, delete
    a run there). FileNotFoundError when missing; anything else wrong is a UsageError naming the file and the
    first bad key: the directory given holds no search this one can continue."""
    fix = f"delete it to start a new search in {path.parent}, or give another --out"
    try:
        record = check_fields(read_record(path, SEARCH_FORMAT, "python cube.py search"), RECORD_FIELDS, path, fix,
                              required=("candidates",))
        if ("budget_macs" in record) == ("budget_ms" in record):
            raise RecordError(f"{path}: needs one of the keys 'budget_macs' and 'budget_ms'; {fix}")
        check_fields(record.get("search", {}), SEARCH_FIELDS, path, fix, key_prefix="search.")
        owners: dict[Path, int] = {}
        for i, entry in enumerate(record["candidates"]):
            needed = [*required, *(["latency_ms"] if "budget_ms" in record else []),
                      *(scored if entry.get("top1") is not None else [])]
            key = f"candidates[{i}]."
            check_fields(entry, CANDIDATE_FIELDS, path, fix, needed, key_prefix=key)
            if "run_dir" in entry:
                run_dir = confined(path.parent, entry["run_dir"], f"{path}: key '{key}run_dir'", fix,
                                   within="candidates")
                if run_dir in owners:
                    raise RecordError(f"{path}: key '{key}run_dir' is candidates[{owners[run_dir]}]'s too: each "
                                      f"candidate trains in a folder of its own; {fix}")
                owners[run_dir] = i
    except RecordError as exc:
        raise UsageError(str(exc)) from None
    return record


def read_search(out: Path) -> dict | None:
    path = out / SEARCH_FILE
    return load_search(path) if path.exists() else None


def write_search(out: Path, record: dict) -> None:
    with atomic_path(out / SEARCH_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


def new_record(search: Search, candidates: list[dict]) -> dict:
    record = {"format": SEARCH_FORMAT, "search": search.identity(), "candidates": candidates}
    if search.budget_macs is not None:
        record["budget_macs"] = search.budget_macs
    else:
        record["budget_ms"] = search.budget_ms
    return record


def describe(index: int, c: Candidate, search: Search) -> dict:
    """A planned candidate: its point, structure and counts (on the built network), and where it trains."""
    # a latency candidate has no MACs budget: its record is taken against its own count
    budget = search.budget_macs or count_macs(c.r, c.w, c.d, search.num_classes).macs
    x = network_design(c.source, budget, c.r, c.w, c.d, search.num_classes)
    entry = {"index": index, "source": c.source, "r": c.r, "w": c.w, "d": c.d, "image_size": x.image_size,
             "repeats": x.repeats, "channels": x.channels, "params": x.params, "macs": x.macs,
             "run_dir": f"candidates/{index:02d}_{c.source}"}
    if search.budget_ms is not None:
        entry["latency_ms"] = round(c.cost, 3)
    return entry


def differences(saved: dict, wanted: dict) -> list[str]:
    return [f"{k}: {saved.get(k)!r} there, {wanted[k]!r} now" for k in wanted if saved.get(k) != wanted[k]]


# -- planning -------------------------------------------------------------------------------------------------
def latency_timers(search: Search, work: Path) -> Callable[[RWD, str], Callable[[], float]]:
    """``timer(rwd, name)``: a timing block (``tinynet_ms.latency``) for a network of this search, at its latency
    target, runs and classes; ``name`` keeps apart the harness files of timers alive together (under ``work``)."""
    from tinynet_ms import latency

    if search.latency_target == "mindspore":
        return lambda rwd, name: latency.mindspore_timer(rwd, search.num_classes, search.latency_runs)
    harness = build_harness()
    return lambda rwd, name: latency.harness_timer(rwd, search.num_classes, search.latency_runs, harness, work / name)


def latency_costs(search: Search, work: Path) -> tuple[Callable[[RWD], float], Callable[[RWD], float]]:
    """A latency search's probe (what the width solver measures, ``PROBE_SECONDS`` per network) and report (what a
    found candidate is reported and held to the budget with: the best of its probe and ``REPORT_SECONDS`` more,
    as long as a re-measurement), each asked once per distinct network."""
    timer = latency_timers(search, work)

    def measure(rwd: RWD, seconds: float) -> float:
        return best_medians([timer(rwd, "probe")], seconds)[0]
    probe = per_network(lambda rwd: measure(rwd, PROBE_SECONDS))
    return probe, per_network(lambda rwd: min(probe(rwd), measure(rwd, REPORT_SECONDS)))


def latency_context(device: str) -> None:
    """MindSpore set up as eval.py runs: latency on the device the config trains on (the CPU here), graph mode."""
    import mindspore as ms

    ms.set_device(device)
    ms.set_context(mode=ms.GRAPH_MODE)


def build_harness() -> Path:
    """The C++ harness (``ascend310_infer/build.sh``), built once; its binary."""
    done = subprocess.run(["bash", str(ROOT / "ascend310_infer" / "build.sh")], capture_output=True, text=True)
    binary = ROOT / "ascend310_infer" / "out" / "main"
    if done.returncode != 0 or not binary.is_file():
        raise RuntimeError("the C++ harness did not build (needs cmake, g++, libopencv-dev and the openvino wheel): "
                           + (done.stderr or done.stdout).strip()[-300:])
    return binary


def plan_search(search: Search) -> list[dict]:
    if search.budget_macs is not None:
        cost = report = per_network(macs_cost(search.num_classes))  # each distinct network counted once
        c, tolerance = search.budget_macs / b0_macs(search.num_classes), MACS_TOLERANCE
    else:
        latency_context(search.device_target)
        cost, report = latency_costs(search, search.out / "latency")
        c, tolerance = None, LATENCY_TOLERANCE
    try:
        found = plan(search.samples, search.budget, cost, c, tolerance, num_classes=search.num_classes,
                     macs_budget=search.budget_macs is not None, report=report)
    except ValueError as exc:  # a budget out of reach, or more samples than fit: the arguments' fault
        raise UsageError(str(exc)) from None
    return [describe(i + 1, x, search) for i, x in enumerate(found)]


# -- training -------------------------------------------------------------------------------------------------
class Stopped(Exception):
    """The search was asked to stop (SIGINT/SIGTERM/SIGHUP); the training it ran has been stopped too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run_candidate(search: Search, entry: dict, lock_fd: int) -> int:
    """Train one candidate to the end in its own process group (its log in ``run_dir/logs/search.log``); a stop
    signal to the search is passed on to the whole group. The exit code."""
    run_dir = search.out / entry["run_dir"]
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    overrides = candidate_overrides(search, (entry["r"], entry["w"], entry["d"]), run_dir)
    if search.device_num > 1:
        cmd = ["bash", str(ROOT / "scripts" / "run_distribute_train.sh"), search.data, search.config,
               str(search.device_num), *overrides]
    else:
        cmd = [sys.executable, str(ROOT / "train.py"), "--config_path", search.config, "--data_path", search.data,
               *overrides]
    # resume auto continues an interrupted candidate; overwrite true clears what a kill during its first epoch left
    cmd += ["--resume", "auto", "--overwrite", "true"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(run_dir / "logs" / "search.log", "ab") as console:
        # the lock fd goes with it: while this training lives, no other search takes the directory
        child = subprocess.Popen(cmd, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
                                 pass_fds=(lock_fd,), env=env)
        stop: list[int] = []

        def forward(signum: int, _frame) -> None:
            stop.append(signum)
            try:
                os.killpg(child.pid, signal.SIGTERM)  # the launcher and train.py stop their ranks and workers
            except ProcessLookupError:
                pass

        handlers = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            code = child.wait()
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
    if stop:
        raise Stopped(stop[0])
    return code


def read_result(run_dir: Path, epochs: int) -> dict:
    """A finished candidate's scores from its ``metrics.jsonl``: the best epoch's top-1 (model or EMA weights, as
    the trainer chose ``best.ckpt``) and that evaluation's top-5; training seconds summed over the epochs."""
    records = MetricsLog(run_dir / "metrics.jsonl").records()  # each checked
    if not records or records[-1].get("epoch") != epochs:
        raise ValueError(f"{run_dir / 'metrics.jsonl'}: the run did not finish its {epochs} epochs")
    best_epoch = records[-1].get("best_epoch") or 0
    at = next((r for r in records if r["epoch"] == best_epoch), None)
    if at is None:  # no finite evaluation at all
        return {"top1": 0.0, "top5": 0.0, "best_epoch": None, "weights": None,
                "train_seconds": sum(r.get("epoch_seconds") or 0.0 for r in records)}
    ema = (at.get("val_top1_ema") or -1.0) > (at.get("val_top1") or -1.0)
    return {"top1": at["val_top1_ema" if ema else "val_top1"], "top5": at["val_top5_ema" if ema else "val_top5"],
            "best_epoch": best_epoch, "weights": "ema" if ema else "model",
            "train_seconds": round(sum(r.get("epoch_seconds") or 0.0 for r in records), 1)}


def last_error(log_file: Path) -> str:
    """The last ``error: ...`` line a training printed (every entry point's one-line failure)."""
    lines = [ln for ln in log_file.read_text(errors="replace").splitlines() if ln.startswith("error: ")]
    return lines[-1].removeprefix("error: ") if lines else "the training refused its arguments"


def train_all(search: Search, record: dict, lock_fd: int) -> None:
    entries = record["candidates"]
    for entry in entries:
        where = f"candidate {entry['index']}/{len(entries)} ({entry['source']} r={entry['r']:g} w={entry['w']:g} " \
                f"d={entry['d']:g}, {entry['image_size']} px, {entry['macs'] / 1e6:.2f}M MACs" + \
                (f", {entry['latency_ms']:.2f} ms" if "latency_ms" in entry else "") + ")"
        if entry.get("top1") is not None:
            print(f"{where}: done before, top-1 {entry['top1']:.4f} (read back from {SEARCH_FILE})", flush=True)
            continue
        run_dir = search.out / entry["run_dir"]
        print(f"{where}: training {search.epochs} epoch(s) in {run_dir} (log: {run_dir / 'logs'})", flush=True)
        start = time.time()
        code = run_candidate(search, entry, lock_fd)
        entry.pop("failed", None)
        if code == EXIT_USAGE:  # the config itself is refused (e.g. a device this machine lacks): so would every one
            raise UsageError(f"candidate {entry['index']}: {last_error(run_dir / 'logs' / 'search.log')} "
                             f"(log: {run_dir / 'logs'})")
        if code == 0:
            entry.update(read_result(run_dir, search.epochs), wall_seconds=round(time.time() - start, 1))
            print(f"  top-1 {entry['top1']:.4f} top-5 {entry['top5']:.4f} (epoch {entry['best_epoch']}) in "
                  f"{entry['wall_seconds']:.0f} s", flush=True)
        else:  # a failed candidate (e.g. diverged) is recorded and the search goes on; a re-run retries it
            entry["failed"] = f"train exit code {code}: see {run_dir / 'logs'}"
            print(f"  failed ({entry['failed']})", file=sys.stderr, flush=True)
        write_search(search.out, record)


# -- report ---------------------------------------------------------------------------------------------------
def best_entry(record: dict) -> dict | None:
    """Highest top-1; a tie goes to the candidate nearest the budget."""
    done = [c for c in record["candidates"] if c.get("top1") is not None]
    if not done:
        return None
    budget, key = (record["budget_macs"], "macs") if "budget_macs" in record else (record["budget_ms"], "latency_ms")
    return max(done, key=lambda c: (c["top1"], -abs(c[key] - budget)))


def table(record: dict) -> str:
    latency = "budget_ms" in record
    best = best_entry(record)
    head = ["#", "source", "r", "w", "d", "input", "repeats", "channels", "params", "MACs"] + \
        (["latency ms"] if latency else []) + ["top-1", "top-5", "train s", "best epoch"]
    rows = []
    for c in record["candidates"]:
        scored = c.get("top1") is not None
        row = [f"{c['index']}{' *' if c is best else ''}", c["source"], f"{c['r']:g}", f"{c['w']:g}", f"{c['d']:g}",
               str(c["image_size"]), ",".join(map(str, c["repeats"])), ",".join(map(str, c["channels"])),
               f"{c['params']:,}", f"{c['macs'] / 1e6:.2f}M"] + ([f"{c['latency_ms']:.2f}"] if latency else [])
        if scored:
            row += [f"{c['top1']:.4f}", f"{c['top5']:.4f}", f"{c['train_seconds']:.0f}", str(c["best_epoch"])]
        else:
            row += ["failed" if c.get("failed") else "-", "-", "-", "-"]
        rows.append(row)
    return markdown_table(head, rows)


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(cells) + " |" for cells in [head, *rows]]
    return "\n".join([lines[0], "|" + "---|" * len(head), *lines[1:]])


def plot(record: dict, png: Path) -> Path:
    """Top-1 against r, d and w (one panel each): which dimension matters, as the paper shows it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [c for c in record["candidates"] if c.get("top1") is not None]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    markers = {"tiny": ("o", "tiny formula"), "giant": ("s", "inverse giant formula"), "sample": ("^", "sampled")}
    for ax, key, label in zip(axes, ("r", "d", "w"), ("resolution r", "depth d", "width w")):
        for source, (marker, name) in markers.items():
            points = [c for c in done if c["source"] == source]
            ax.plot([c[key] for c in points], [c["top1"] for c in points], marker, ls="", ms=7, label=name)
        for c in done:
            ax.annotate(str(c["index"]), (c[key], c["top1"]), textcoords="offset points", xytext=(5, 3))
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1")
    axes[0].legend(fontsize=8)
    budget = f"{record['budget_macs'] / 1e6:g}M MACs" if "budget_macs" in record else f"{record['budget_ms']:g} ms"
    fig.suptitle(f"cube search at {budget}: top-1 of each candidate against r, d and w")
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return png


def write_best_config(search: Search, best: dict, path: Path) -> Path:
    """The best network as a config train.py / eval.py / export.py take unchanged: the search's config and
    overrides resolved, the network's r/w/d, its trained weights as ``checkpoint_path`` (eval, export), the config's
    own epochs (the search trained only ``--epochs``)."""
    run_dir = search.out / best["run_dir"]
    overrides = candidate_overrides(search, (best["r"], best["w"], best["d"]), search.out / "best")
    overrides += ["--epochs", str(resolved_config(search.config, search.overrides)["epochs"]), "--data_path",
                  search.data, "--checkpoint_path", str(run_dir / "checkpoints" / "best.ckpt")]
    values = resolved_config(search.config, overrides)
    header = (f"# Best of the cube search in {search.out} ({show_budget(search)}): candidate {best['index']} "
              f"({best['source']}), top-1 {best['top1']:.4f} after {search.epochs} epoch(s) of search training.\n"
              f"# Train it fully: python train.py --config_path {path}; checkpoint_path (eval.py, export.py) is "
              f"the search's weights of it.\n")
    return write_text_atomic(path, header + yaml.safe_dump(values, sort_keys=False))


def report(search: Search, record: dict) -> None:
    text = table(record)
    write_text_atomic(search.out / "cube.md", f"cube search at {show_budget(search)}, {search.epochs} epoch(s) "
                                              f"per candidate ({search.config}; {search.data})\n\n{text}\n")
    print(text)
    best = best_entry(record)
    if best is None:
        print("no candidate finished training: nothing to plot or recommend", file=sys.stderr)
        return
    print(f"wrote {search.out / SEARCH_FILE}, {search.out / 'cube.md'}, {plot(record, search.out / 'cube.png')}, "
          f"{write_best_config(search, best, search.out / 'best.yaml')} (candidate {best['index']}, "
          f"{best['source']}: r={best['r']:g} w={best['w']:g} d={best['d']:g})")


# -- the command ----------------------------------------------------------------------------------------------
def lock(out: Path) -> int:
    """``OUT``'s lock (the one every writer of a run directory takes, ``tinynet_ms.atomic``), its fd; a UsageError
    when another search, the training it started, or another run holds it."""
    return lock_directory(out, "cube search", "wait for it, or stop it first").fd


def check_device(device: str) -> None:
    """A one-line error, before any planning or training, when this MindSpore cannot run ``device`` (the config's
    device_target): otherwise a latency search fails with MindSpore's 40-line report, and a MACs search plans only
    for its first candidate's train.py to refuse the device."""
    import mindspore as ms

    if not getattr(ms.device_context, device.lower()).is_available():
        raise UsageError(f"device_target {device} (the config's) is not available in this MindSpore installation: "
                         f"pass --device_target CPU, or a config for this machine (e.g. --config configs/demo.yaml)")


def run_search(search: Search) -> dict:
    if not (Path(search.data) / "train").is_dir() or not (Path(search.data) / "val").is_dir():
        raise FileNotFoundError(f"{search.data}: expected DATA/train/<class>/* and DATA/val/<class>/*")
    check_device(search.device_target)
    fd = lock(search.out)
    try:
        record = read_search(search.out)
        if record is None:
            print(f"planning {search.samples} candidates for {show_budget(search)} ...", flush=True)
            record = new_record(search, plan_search(search))
            write_search(search.out, record)
        else:
            changed = differences(record.get("search", {}), search.identity())
            if changed:
                raise UsageError(f"{search.out / SEARCH_FILE} is another search ({'; '.join(changed)}): give the "
                                 f"same arguments to continue it, or another --out")
            print(f"continuing the search in {search.out}", flush=True)
        train_all(search, record, fd)
        report(search, record)
        return record
    finally:
        os.close(fd)


# -- re-measuring a latency search ------------------------------------------------------------------------------
REMEASURE_FILE = "remeasure.json"


def remeasure(out: Path, seconds: float = REPORT_SECONDS) -> dict:
    """Every candidate of the latency search in ``out`` measured again on this machine, now, as the search measured
    it (target, runs, device), all timed in turn for ``seconds`` each (default ``REPORT_SECONDS``, as long as
    each was reported over); written to ``OUT/remeasure.json`` and returned. Holds the search's lock: a training
    running in ``out`` would share the cores."""
    path = out / SEARCH_FILE
    record = read_search(out)
    if record is None:
        raise FileNotFoundError(f"{path} not found: give the directory of a cube search (its --out)")
    if "budget_ms" not in record:
        raise UsageError(f"{path} is a MACs-budget search: only a latency search (--latency_ms) has latencies to "
                         f"re-measure")
    try:
        search = Search(**record["search"], out=out)
    except TypeError:
        raise ValueError(f"{path}: its 'search' entry is not a cube search's (written by another version?)") from None
    search.device_target = resolved_config(search.config, search.overrides)["device_target"]
    entries = [e for e in record["candidates"] if isinstance(e.get("latency_ms"), (int, float))]
    if not entries:
        raise ValueError(f"{path}: no candidate with a latency_ms to re-measure")
    check_device(search.device_target)
    fd = lock(out)
    try:
        latency_context(search.device_target)
        timer = latency_timers(search, out / "latency" / "remeasure")
        blocks = [timer((e["r"], e["w"], e["d"]), f"{e['index']:02d}") for e in entries]
        print(f"re-measuring {len(blocks)} candidates in turn, {seconds:g} s each ...", flush=True)
        again = best_medians(blocks, seconds)
    finally:
        os.close(fd)
    result = {"format": "tinynet_ms.remeasure/1", "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "seconds": seconds, "budget_ms": record["budget_ms"],
              "candidates": [{"index": e["index"], "source": e["source"], "r": e["r"], "w": e["w"], "d": e["d"],
                              "latency_ms": e["latency_ms"], "remeasured_ms": round(t, 3),
                              "difference": round(t / e["latency_ms"] - 1, 4)} for e, t in zip(entries, again)]}
    write_text_atomic(out / REMEASURE_FILE, json.dumps(result, indent=1) + "\n")
    return result


def remeasure_table(result: dict) -> str:
    head = ["#", "source", "r", "w", "d", "reported ms", "re-measured ms", "difference"]
    rows = [[str(c["index"]), c["source"], f"{c['r']:g}", f"{c['w']:g}", f"{c['d']:g}", f"{c['latency_ms']:.3f}",
             f"{c['remeasured_ms']:.3f}", f"{100 * c['difference']:+.1f}%"] for c in result["candidates"]]
    within = sum(abs(c["difference"]) <= LATENCY_TOLERANCE for c in result["candidates"])
    return (f"{markdown_table(head, rows)}\n\n{within} of {len(rows)} within {LATENCY_TOLERANCE:.0%} of their reported "
            f"latency ({result['seconds']:g} s each, {result['measured']})")
