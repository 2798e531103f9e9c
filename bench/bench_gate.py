"""Benchmark of the regression gate: 100,000 paired samples across seven tasks (issue 7: < 2 s).

    python bench/bench_gate.py [--n 100000] [--n-boot 1000] [--repeat 3]

Fabricates a baseline and a current run of seven stand-in tasks whose metrics have the shapes of the
built-in plugins' (0/1 means -> McNemar; fractional means, ratios and per-split POPE formulas -> paired
bootstrap; GQA's chi-square distribution where importable), with a few percent of answers changed in
both directions so that every test really runs. Times

1. ``compare``: pairing by uid, every McNemar and paired bootstrap (``--n-boot`` replicates),
   Holm, verdicts, plus rendering the table, JUnit XML and Markdown - the gate itself;
2. the whole command in-process: reading the committed baseline file and the current run
   directory (results.json + a 100,000-line samples.jsonl), then 1.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molmo_eval.core import registry
from molmo_eval.core.metric import Metric
from molmo_eval.core.task import Task
from molmo_eval.core.types import AnswerKind, ModelInfo, RunRecord, TaskResult
from molmo_eval.gate.baseline import RunData, load, write_baseline
from molmo_eval.gate.output import junit_xml, markdown, print_report
from molmo_eval.gate.verdicts import GateConfig, Outcome, compare
from molmo_eval.metrics import paired
from molmo_eval.metrics.generic import f1, mean, ratio
from molmo_eval.metrics.stats import aggregate
from molmo_eval.run.rundir import write_run
from molmo_eval.run.scores import TaskRows

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the harness does: idle OpenMP threads sleep

Cols = dict[str, np.ndarray]


def _real(module: str, attr: str) -> Callable[[], tuple[Metric, ...]] | None:
    try:
        mod = __import__(module, fromlist=[attr])
        return getattr(mod, attr)
    except (ImportError, AttributeError):
        return None


# --- stand-in tasks: metric shapes of the built-in plugins --------------------------------------

def _binary(rng: np.random.Generator, n: int, p: float, applies: np.ndarray | None = None) -> np.ndarray:
    x = (rng.random(n) < p).astype(float)
    return x if applies is None else np.where(applies, x, np.nan)


def vqa_like(rng: np.random.Generator, n: int) -> Cols:
    return {"accuracy": rng.choice([0.0, 0.3, 0.6, 0.9, 1.0], size=n, p=[.25, .05, .05, .05, .6])}


def gqa_like(rng: np.random.Generator, n: int) -> Cols:
    acc = _binary(rng, n, 0.6)
    is_bin = rng.random(n) < 0.4
    cols = {"accuracy": acc, "binary": np.where(is_bin, acc, np.nan), "open": np.where(is_bin, np.nan, acc),
            "consistency": np.where(acc > 0, rng.choice([0.0, 0.5, 1.0], size=n), np.nan)}
    group = rng.integers(0, 50, size=n).astype(float)
    gold = group * 4 + rng.integers(0, 4, size=n)
    cols.update(dist_group=group, dist_gold=gold, dist_pred=np.where(acc > 0, gold, -1.0))
    return cols


def refcoco_like(rng: np.random.Generator, n: int) -> Cols:
    boxes = np.arange(n) % 2 == 0
    return {"acc@0.5": _binary(rng, n, 0.5, boxes), "iou": np.where(boxes, rng.random(n), np.nan),
            "point_in_box": _binary(rng, n, 0.6, ~boxes), "point_in_mask": _binary(rng, n, 0.5, ~boxes)}


def pointqa_like(rng: np.random.Generator, n: int) -> Cols:
    pointing = rng.random(n) < 0.8
    frac = rng.choice([0.0, 0.5, 1.0, 1 / 3], size=n)
    return {"precision": np.where(pointing, frac, np.nan), "recall": np.where(pointing, rng.permutation(frac), np.nan),
            "f1": np.where(pointing, frac, np.nan), "count_correct": _binary(rng, n, 0.5, pointing),
            "accuracy": _binary(rng, n, 0.55, ~pointing)}


def mmbench_like(rng: np.random.Generator, n: int) -> Cols:
    main = np.arange(n) % 4 == 0
    return {"circular": _binary(rng, n, 0.5, main), "vanilla": _binary(rng, n, 0.7, main)}


def pope_like(rng: np.random.Generator, n: int) -> Cols:
    label = rng.random(n) < 0.5
    pred = np.where(rng.random(n) < 0.85, label, ~label)
    f = lambda x: x.astype(float)  # noqa: E731
    return {"tp": f(pred & label), "fp": f(pred & ~label), "tn": f(~pred & ~label), "fn": f(~pred & label),
            "correct": f(pred == label), "pred_yes": f(pred), "label_yes": f(label),
            "split_index": (np.arange(n) % 3).astype(float)}


def pope_standin() -> tuple[Metric, ...]:
    """POPE's five numbers from the core helpers (pooled rows, no per-split mean)."""
    return (mean("accuracy", "correct"), ratio("precision", "tp", "pred_yes"), ratio("recall", "tp", "label_yes"),
            f1("f1", "tp", "fp", "fn"), mean("yes_ratio", "pred_yes"))


def gqa_standin() -> tuple[Metric, ...]:
    return tuple(mean(k) for k in ("accuracy", "binary", "open", "consistency"))


def _plugin_metrics(module: str, attr: str, fallback: Callable[[], tuple[Metric, ...]]) -> Callable[[], tuple[Metric, ...]]:
    real = _real(module, attr)
    return fallback if real is None else real


SPECS: dict[str, tuple[Callable[[np.random.Generator, int], Cols], Callable[[], tuple[Metric, ...]]]] = {
    "bench-vqav2": (vqa_like, lambda: (mean("accuracy"),)),
    "bench-textvqa": (vqa_like, lambda: (mean("accuracy"),)),
    "bench-gqa": (gqa_like, gqa_standin),
    "bench-refcoco": (refcoco_like, lambda: (mean("acc@0.5"), mean("mean_iou", "iou"), mean("point_in_box"),
                                             mean("point_in_mask"))),
    "bench-pointqa": (pointqa_like, lambda: (mean("precision"), mean("recall"), mean("f1"),
                                             mean("count_accuracy", "count_correct"), mean("accuracy"))),
    "bench-mmbench": (mmbench_like, lambda: (mean("circular_accuracy", "circular"),
                                             mean("vanilla_accuracy", "vanilla"))),
    "bench-pope": (pope_like, pope_standin),
}


def use_plugin_metrics() -> list[str]:
    """Swap in the GQA and POPE metric functions of the built-in plugins, where importable."""
    used = []
    for task, module, attr, standin in (("bench-gqa", "molmo_eval.metrics.gqa", "gqa_metrics", gqa_standin),
                                        ("bench-pope", "molmo_eval.metrics.pope", "pope_metrics", pope_standin)):
        fns = _plugin_metrics(module, attr, standin)
        if fns is not standin:
            SPECS[task] = (SPECS[task][0], fns)
            used.append(f"{module}.{attr}")
    return used


def _plugin(task_name: str) -> type[Task]:
    @dataclass(frozen=True)
    class Bench(Task):
        name = task_name
        description = "gate benchmark stand-in"
        splits = ("val",)
        default_splits = ("val",)
        answer_kind = AnswerKind.TEXT
        primary_metric = ""
        data_dir = task_name

        def load(self, data_dir, split):  # never called: the gate reads records only
            raise NotImplementedError

        data_files = prompt = parse = score = load

        def metrics(self):
            return SPECS[task_name][1]()

    return Bench


# --- fabricated runs ---------------------------------------------------------------------------

def perturb(cols: Cols, rng: np.random.Generator, share: float) -> Cols:
    """The current run: ``share`` of the rows take the scores of another row where the same columns
    apply (a changed answer, better or worse; what applies to a sample is the sample's, not the model's)."""
    n = len(next(iter(cols.values())))
    rows = rng.choice(n, size=int(share * n), replace=False)
    out = {k: v.copy() for k, v in cols.items()}
    fixed = ("split_index", "dist_group", "dist_gold", "label_yes")  # properties of the question, not the answer
    key = np.column_stack([np.isnan(v) if k not in fixed else v for k, v in cols.items()])
    pattern = np.unique(key, axis=0, return_inverse=True)[1].ravel()
    for p in np.unique(pattern[rows]):
        targets, pool = rows[pattern[rows] == p], np.flatnonzero(pattern == p)
        donors = rng.choice(pool, size=targets.size)
        for k, v in out.items():
            if k not in fixed:
                v[targets] = cols[k][donors]
    return out


REGRESSED = "bench-textvqa"


def make_side(label: str, n: int, seed: int, current: bool) -> RunData:
    tasks, rows = {}, {}
    per_task = n // len(SPECS)
    for i, (task, (gen, metrics)) in enumerate(SPECS.items()):
        cols = gen(np.random.default_rng([seed, i]), per_task)
        if current:
            cols = perturb(cols, np.random.default_rng([seed, i, 1]), 0.05)
            if task == REGRESSED:  # a real regression: 3% of the answers lose all credit
                cols["accuracy"][np.random.default_rng([seed, i, 2]).random(per_task) < 0.03] = 0.0
        cols["split"] = np.array(["val"] * per_task, dtype=object)
        uids = np.array([f"{task}/val/{j}" for j in range(per_task)], dtype=object)
        rows[task] = TaskRows(uids, cols)
        agg = aggregate(metrics(), cols, seed=0, label=task, n_boot=0)
        tasks[task] = TaskResult(task, ("val",), "official", "1", per_task, agg, {},
                                 data_digests={f"{task}.json": "0" * 64})
    record = RunRecord(label, "2025-01-01T00:00:00Z", "ok", {}, {"molmo_eval": "0.1.0"},
                       ModelInfo("bench", "b" * 16, "pixels"), tasks)
    return RunData(label, record, rows)


def write_run_dir(path: Path, data: RunData) -> None:
    """A run directory like the runner's: samples.jsonl lines (prompt, output, target...), scores.json
    and a record listing their digests, written as the runner writes it."""

    def lines():
        assert data.rows is not None
        for task, tr in data.rows.items():
            scores = {k: v for k, v in tr.cols.items() if v.dtype.kind == "f"}
            names = list(scores)
            table = np.column_stack([scores[k] for k in names]).tolist()
            for j, uid in enumerate(tr.uids.tolist()):
                yield {"uid": uid, "task": task, "split": "val", "id": uid.rsplit("/", 1)[1],
                       "prompt": "Question: what colour is the large cube on the left? Answer with one word.",
                       "output": {"text": "red"}, "answer": {"kind": "text", "value": "red", "parse_ok": True},
                       "scores": dict(zip(names, table[j], strict=True)), "fields": {}, "meta": {"kind": "a"},
                       "target": {"answers": ["red"] * 10}, "error": None, "cached": False}

    write_run(path, data.record, list(lines()), "# bench run\n")


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def per_task_seconds(base: RunData, cur: RunData, n_boot: int) -> dict[str, float]:
    """Where the time goes: the paired tests of each task alone."""
    from molmo_eval.gate.verdicts import _aligned
    from molmo_eval.metrics.paired import paired_tests

    assert base.rows is not None and cur.rows is not None
    out = {}
    for task, (_, metrics) in SPECS.items():
        b, c = _aligned(base.rows[task], cur.rows[task])
        t0 = time.perf_counter()
        paired_tests(metrics(), b, c, seed=0, n_boot=n_boot)
        out[task] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="paired samples in all (default 100000)")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--plugin-metrics", action="store_true",
                    help="use the GQA and POPE plugins' own metric functions instead of core stand-ins")
    ap.add_argument("--skip-files", action="store_true", help="time the in-memory gate only")
    ap.add_argument("--full-bootstrap", action="store_true",
                    help="worst case: no metric stops after the first stage, all draw --n-boot replicates")
    args = ap.parse_args(argv)
    if args.full_bootstrap:
        paired.FIRST_STAGE = args.n_boot
    if args.plugin_metrics:
        print("plugin metric functions:", ", ".join(use_plugin_metrics()) or "none importable")
    for name in SPECS:
        registry.register_task(name, _plugin(name))
    base, cur = make_side("baseline", args.n, 1, False), make_side("current", args.n, 1, True)
    cfg = GateConfig(n_boot=args.n_boot)

    def gate_in_memory():
        report = compare(base, cur, cfg)
        print_report(report, io.StringIO())
        junit_xml(report), markdown(report)
        return report

    gate_in_memory()  # warm-up: imports (scipy.stats) are not the gate's cost
    secs, report = _time(gate_in_memory, args.repeat)
    methods: dict[str, int] = {}
    for v in report.verdicts:
        key = v.test.method if v.test else "none"
        methods[key] = methods.get(key, 0) + 1
    n_pairs = sum(len(r) for r in base.rows.values())
    print(f"{n_pairs} paired samples, {len(SPECS)} tasks, {len(report.verdicts)} metrics "
          f"({', '.join(f'{k} {v}' for k, v in sorted(methods.items()))}), n_boot={args.n_boot}")
    print(f"outcomes: {', '.join(f'{o.value} {report.count(o)}' for o in Outcome)}; "
          f"regressed: {', '.join(report.regressed_tasks) or '-'}; exit code {report.exit_code}")
    print(f"gate (pairing, tests, verdicts, table + JUnit + Markdown): {secs:.3f} s  (median of {args.repeat})")
    print("  per task:", ", ".join(f"{t.removeprefix('bench-')} {s:.3f}"
                                   for t, s in per_task_seconds(base, cur, args.n_boot).items()))
    if not args.skip_files:
        time_files(base, cur, args.repeat)
    return 0 if secs < 2.0 else 1


def time_files(base: RunData, cur: RunData, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bl, run_dir = Path(tmp) / "baseline.json", Path(tmp) / "current"
        write_baseline(bl, base)
        write_run_dir(run_dir, cur)
        t_bl, _ = _time(lambda: load(bl), repeat)
        t_run, _ = _time(lambda: load(run_dir), repeat)
        print(f"read baseline file ({bl.stat().st_size / 1e6:.1f} MB): {t_bl:.3f} s;  read current run dir "
              f"(samples.jsonl {(run_dir / 'samples.jsonl').stat().st_size / 1e6:.1f} MB): {t_run:.3f} s")
        from molmo_eval.commands import gate as gate_cmd
        parser = argparse.ArgumentParser()
        gate_cmd.add_parser(parser.add_subparsers())
        cli = parser.parse_args(["gate", "--baseline", str(bl), "--current", str(run_dir), "--quiet",
                                 "--junit", str(Path(tmp) / "j.xml"), "--summary", str(Path(tmp) / "s.md")])
        t_cli, code = _time(lambda: cli.func(cli), 1)
        print(f"whole command in-process (read both sides + gate + write outputs): {t_cli:.3f} s, exit {code}")


if __name__ == "__main__":
    sys.exit(main())
