"""`molmo-eval score`: metrics without a model.

- ``--run DIR``: re-score a run's saved samples with the current metric code (a changed metric
  never needs the model again; cached outputs stay valid).
- ``--task T --predictions FILE``: score predictions written by other tools in the benchmark's
  usual results format (see each task's `read_predictions`).

``--variant`` and ``--data-root`` take ``V`` / ``DIR`` or ``TASK=V`` / ``TASK=DIR`` as in a run. With
``--output-path DIR`` either form writes a run directory (results.json, samples.jsonl, scores.json,
report.md) that `gate` and `report` read like any run; a scored prediction file is recorded as the
model ``predictions`` whose fingerprint is the file's digest.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError, DataError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="re-score a run, or score another tool's predictions, without a model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, metavar="DIR", help="a run directory (results.json + samples.jsonl)")
    p.add_argument("--task", metavar="T", help="task of the --predictions file")
    p.add_argument("--predictions", type=Path, metavar="FILE", help="predictions in the benchmark's format")
    p.add_argument("--data-root", action="append", metavar="DIR|TASK=DIR",
                   help="data root, or one task's folder (default: the embedded mini world)")
    p.add_argument("--split", metavar="S", help="split of the predictions (default: the task's first default)")
    p.add_argument("--variant", action="append", metavar="V|TASK=V",
                   help="metric variant, for every task or per task (default: official / the run's own)")
    p.add_argument("--allow-missing", action="store_true",
                   help="score questions without a prediction as wrong instead of failing")
    p.add_argument("--output-path", type=Path, metavar="DIR",
                   help="write the scored run here (results.json, samples.jsonl, scores.json, report.md)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run of another evaluation in --output-path")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no CIs)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--ci", action="store_true",
                   help="with --predictions --json: add the 95%% bootstrap CI of each metric (\"ci\"); "
                        "CIs are computed only where they are shown or written")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if (args.run is None) == (args.predictions is None):
        raise ConfigError("score: give either --run DIR or --task T --predictions FILE")
    return rescore_run(args) if args.run is not None else score_predictions(args)


def scoped(values: list[str] | None, flag: str, tasks: list[str]) -> dict[str, str]:
    """``--variant V`` / ``TASK=V`` (and ``--data-root``) as `run` reads them; a TASK not scored is an error."""
    from molmo_eval.core.config import parse_scoped

    out = parse_scoped(values or [], flag)
    unknown = [k for k in out if k != "*" and k not in tasks]
    if unknown:
        raise ConfigError([f"{flag} {k}=...: {k!r} is not a task of this scoring ({', '.join(tasks)})"
                           for k in unknown])
    return out


def rescore_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from molmo_eval.core import registry
    from molmo_eval.core.types import CoordSpace
    from molmo_eval.run import records, rundir
    from molmo_eval.run.guard import score_sample
    from molmo_eval.run.runner import failure_allowance, run_status
    from molmo_eval.run.scoring import sample_from_line, summarize_task, task_config
    from molmo_eval.run.summary import markdown_report, print_table

    run = records.read_run(args.run)  # refuses a folder whose files disagree with its record
    variants = scoped(args.variant, "--variant", list(run.record.tasks))
    if args.data_root:
        raise ConfigError("score --run: --data-root is not used (the run's samples.jsonl holds every sample)")
    if args.output_path is not None and args.output_path.resolve() != run.path.resolve():
        rundir.check_output_path(args.output_path, run.record.config, overwrite=args.overwrite)
    space = CoordSpace(run.record.model.coord_space)
    by_task = _lines_by_task(run)
    results, all_lines = {}, []
    configs = {k: dict(v) for k, v in run.record.task_configs.items()}
    for name, old in run.record.tasks.items():
        task = registry.get_task(name, variants.get(name, variants.get("*", old.variant)))
        lines = by_task.get(name, [])
        samples, scores, n_unparseable, n_failed = [], [], 0, 0
        for line in lines:
            s = sample_from_line(line)
            out = line.get("output")
            failed = out is None or out.get("error") is not None  # no output: its image or the model failed
            gen = None if failed or out is None else _generation(out, line)
            scored = score_sample(task, s, gen, space)
            n_unparseable += int(scored.answer is not None and not scored.answer.parse_ok)
            n_failed += int(bool(failed or scored.error))
            if not failed:  # parsing and scoring are redone: so is their verdict
                line["error"] = scored.error
            samples.append(s)
            scores.append(scored.score)
            line["answer"] = None if scored.answer is None else scored.answer.to_json()
        try:
            tr, final = summarize_task(task, samples, scores, seed=args.seed, n_boot=args.bootstrap,
                                       n_failed=n_failed, n_unparseable=n_unparseable,
                                       digests=old.data_digests, seconds=old.seconds)
        except Exception as e:  # targets in samples.jsonl that the task's metrics cannot use
            raise DataError(f"task {name!r} cannot aggregate these samples ({type(e).__name__}: "
                            f"{str(e)[:200]})", path=records.samples_path(run.path) or run.path) from e
        for line, sc in zip(lines, final):
            line["scores"] = {k: (None if v != v else v) for k, v in sc.values.items()}
            line["fields"] = dict(sc.fields)
        results[name] = tr
        all_lines.extend(lines)
        if name in configs:  # the variant (and with it the metric list) may have changed
            fresh = task_config(task, tr.splits, None)
            configs[name] = {**configs[name], **{k: fresh[k] for k in ("variant", "metric_list", "metadata")}}
    n_failed = sum(tr.n_failed for tr in results.values())
    allowed = failure_allowance(run.record.config, sum(tr.n for tr in results.values()))
    record = replace(run.record, tasks=results, n_failed=n_failed, task_configs=configs,
                     status=run_status(run.record.errors, n_failed, allowed))
    if args.output_path is not None:
        rundir.clean_stale(args.output_path)
        record = rundir.write_run(args.output_path, record, all_lines, markdown_report(record))
    if args.json:
        print(json.dumps(record.to_json(), indent=2))
    else:
        print_table(record, counts=False)  # the counts are the original run's
    return 0


def _generation(out: dict[str, Any], line: dict[str, Any]) -> Any:
    from molmo_eval.core.errors import DataError
    from molmo_eval.core.types import Generation

    try:
        return Generation.from_json(out)
    except (TypeError, ValueError, AttributeError) as e:
        raise DataError(f"malformed output ({type(e).__name__}: {str(e)[:200]})", path="samples.jsonl",
                        record=f"uid {line['uid']}", field="output") from None


def _lines_by_task(run: Any) -> dict[str, list[dict[str, Any]]]:
    """The run's sample lines per task, refused (DataError) when they are not the record's samples:
    a different count per task than its ``n``, a uid twice."""
    from molmo_eval.core.errors import DataError
    from molmo_eval.run import records

    by_task: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    where = records.samples_path(run.path) or run.path / records.SAMPLES
    for i, line in enumerate(run.samples(), 1):
        if line["uid"] in seen:
            raise DataError(f"sample {line['uid']} occurs twice", path=where, record=f"at line {i}", field="uid")
        seen.add(line["uid"])
        by_task.setdefault(line["task"], []).append(line)
    records.check_counts(run.record, {t: len(v) for t, v in by_task.items()}, where)
    return by_task


def score_predictions(args: argparse.Namespace) -> int:
    from molmo_eval.core import registry
    from molmo_eval.core.heap import gc_frozen, keep_until_exit
    from molmo_eval.run.loading import load_split

    if not args.task:
        raise ConfigError("score --predictions: --task is required")
    variants = scoped(args.variant, "--variant", [args.task])
    task = registry.get_task(args.task, variants.get(args.task, variants.get("*")))
    split = task.check_split(args.split) if args.split else task.default_splits[0]
    data_dir = _data_dir(task, scoped(args.data_root, "--data-root", [args.task]))
    config = predictions_config(args, task, split, data_dir)
    if args.output_path is not None:  # before anything is read or scored, as a run checks its folder
        from molmo_eval.run import rundir  # (imported only to write: the run-folder code is 30 ms)

        rundir.check_output_path(args.output_path, config, overwrite=args.overwrite)
    elif args.json and not args.ci and args.predictions.is_file():  # only numbers wanted: a task may
        scored = _columns(task, data_dir, split, args.predictions)  # score the file column-wise
        if scored is not None:
            from molmo_eval.run.scoring import summarize_cols

            tr = summarize_cols(task, scored.cols, (split,), seed=args.seed, n_boot=0, n_failed=0,
                                n_unparseable=scored.n_unparseable, group_ci=False)
            print_json(args, task, split, tr, 0)
            return 0
    # the data files' digests go into a written record; without one nothing would list them
    samples, digests = load_split(task, data_dir, split, digests=args.output_path is not None)
    keep_until_exit(samples)  # from the console, freed by the process's end, not object by object
    with gc_frozen():  # the loaded samples stay out of the collector's rescans (`molmo_eval.core.heap`)
        return _score_loaded(args, task, split, data_dir, config, samples, digests)


def _columns(task: Any, data_dir: Path, split: str, path: Path) -> Any:
    """`Task.score_prediction_columns`, or None (the per-sample path, which names what is wrong) where
    it declines or fails other than with a data error."""
    from molmo_eval.core.errors import MolmoEvalError

    try:
        return task.score_prediction_columns(data_dir, split, path)
    except MolmoEvalError:
        raise
    except Exception:
        return None


def _score_loaded(args: argparse.Namespace, task: Any, split: str, data_dir: Path, config: dict[str, Any],
                  samples: Any, digests: dict[str, str]) -> int:
    from molmo_eval.core.heap import gc_paused, keep_until_exit
    from molmo_eval.core.types import uids_of
    from molmo_eval.run.guard import score_samples
    from molmo_eval.run.scoring import summarize_task

    preds = read_predictions(task, args.predictions, samples)
    gens = list(map(preds.get, uids_of(samples)))
    missing = [s.id for s, g in zip(samples, gens) if g is None]
    if missing and not args.allow_missing:
        raise DataError(f"{len(missing)} of {len(samples)} questions have no prediction (first: "
                        f"{', '.join(missing[:5])}); pass --allow-missing to score them as wrong",
                        path=args.predictions)
    keep_until_exit(gens)
    del preds
    writing = args.output_path is not None
    scores, scored_all, n_unparseable, n_failed = [], [], 0, len(missing)
    space = task.prediction_space()
    with gc_paused():  # scores are acyclic: no collection until they are aggregated (`molmo_eval.core.heap`)
        for at in range(0, len(samples), SCORE_CHUNK):
            chunk = gens[at:at + SCORE_CHUNK]
            for gen, scored in zip(chunk, score_samples(task, samples[at:at + SCORE_CHUNK], chunk, space)):
                n_unparseable += int(scored.answer is not None and not scored.answer.parse_ok)
                n_failed += int(gen is not None and scored.error is not None)
                scores.append(scored.score)
                if writing:  # the sample lines need the answers and errors
                    scored_all.append(scored)
    # CIs are computed where they are shown or written: the table prints the overall CIs, a written
    # record holds them all (breakdowns too, as a run's does), --json prints them only with --ci
    shown = writing or not args.json or args.ci
    tr, final = summarize_task(task, samples, scores, seed=args.seed, n_boot=args.bootstrap if shown else 0,
                               n_failed=n_failed, n_unparseable=n_unparseable, digests=digests,
                               group_ci=writing)
    keep_until_exit(scores, scored_all, final)
    if writing:
        _write_scored(args, task, split, data_dir, config, space, tr,
                      (samples, gens, scored_all, final), n_failed, len(missing))
    if args.json:
        print_json(args, task, split, tr, len(missing))
    else:
        from molmo_eval.run.summary import pct

        print(f"{task.name} / {split} ({task.variant}): n={tr.n}, missing={len(missing)}")
        for k, v in tr.metrics.items():
            ci = "" if v.ci_low is None else f"  [{pct(v.ci_low)}, {pct(v.ci_high)}]"
            print(f"  {k:<20} {pct(v.value):>7}{ci}")
    if missing:
        print(f"note: {len(missing)} questions had no prediction and were scored as wrong", file=sys.stderr)
    return 0


def print_json(args: argparse.Namespace, task: Any, split: str, tr: Any, n_missing: int) -> None:
    """``score --predictions --json``: one JSON object of the metrics and the primary metric's breakdowns."""
    primary = tr.primary_metric
    if tr.metrics.get(primary) is None or tr.metrics[primary].n == 0:  # e.g. boxes under a pointing task
        primary = next((k for k, v in tr.metrics.items() if v.n), primary)
    out = {"task": task.name, "split": split, "variant": task.variant, "n": tr.n,
           "missing": n_missing, "breakdown_metric": primary,
           "metrics": {k: _val(v.value) for k, v in tr.metrics.items()},
           "breakdowns": {g: {k: _val(ms[primary].value) for k, ms in keys.items() if primary in ms}
                          for g, keys in tr.breakdowns.items()}}
    if args.ci:  # [low, high] of the 95% percentile bootstrap; null where none is defined
        out["ci"] = {k: None if v.ci_low is None else [v.ci_low, v.ci_high] for k, v in tr.metrics.items()}
    print(json.dumps(out, indent=2))


def _write_scored(args: argparse.Namespace, task: Any, split: str, data_dir: Path, config: dict[str, Any],
                  space: Any, tr: Any, rows: tuple[Any, Any, Any, Any], n_failed: int, n_missing: int) -> None:
    """``--output-path``: the scored predictions as a run folder (`gate` and `report` read it)."""
    from molmo_eval.run import rundir
    from molmo_eval.run.runner import failure_allowance, run_status
    from molmo_eval.run.scoring import sample_line
    from molmo_eval.run.summary import markdown_report

    lines = [sample_line(s, "", gen, sc.answer, f, cached=False, error=sc.error if gen is not None else "no prediction")
             for s, gen, sc, f in zip(*rows, strict=True)]
    # questions without a prediction were accepted (--allow-missing), as --max-failures accepts
    # failed samples; a prediction that failed to parse or score makes the run partial
    config["max_failures"] = n_missing
    status = run_status([], n_failed, failure_allowance(config, tr.n))
    record = predictions_record(args, task, split, data_dir, space, tr, config, status)
    rundir.clean_stale(args.output_path)
    rundir.write_run(args.output_path, record, lines, markdown_report(record))


SCORE_CHUNK = 16_384  # samples scored together (`Task.score_batch`): bounds the batch's working memory


def read_predictions(task: Any, path: Path, samples: Any) -> Any:
    """The task's reader of a prediction file, with any failure of it a DataError naming the file."""
    from molmo_eval.core.errors import MolmoEvalError

    if not path.is_file():
        raise DataError("missing prediction file" if not path.exists() else "not a regular file", path=path)
    try:
        return task.read_predictions(path, samples)
    except MolmoEvalError:
        raise
    except Exception as e:  # a reader that did not foresee this file: never a traceback
        raise DataError(f"cannot read predictions ({type(e).__name__}: {str(e)[:300]})", path=path) from e


def _val(v: float) -> float | None:
    return None if v != v else v


def _data_dir(task: Any, roots: dict[str, str]) -> Path:
    """The task's folder: ``--data-root TASK=DIR`` names it, ``--data-root DIR`` holds it, else the
    embedded mini world holds it (as in a run)."""
    if task.name in roots:
        folder = Path(roots[task.name]).expanduser()
    else:
        if "*" in roots:
            root = Path(roots["*"]).expanduser()
        else:
            from molmo_eval.data.embedded import default_data_root

            root = default_data_root()
        folder = root / task.data_dir
    if not folder.is_dir():
        raise ConfigError(f"--data-root: {folder} is not a directory (the folder of task {task.name!r})")
    return folder


def predictions_config(args: argparse.Namespace, task: Any, split: str, data_dir: Path) -> dict[str, Any]:
    """The run configuration recorded for a scored prediction file (what `rundir` compares to tell
    whether ``--output-path`` holds another evaluation)."""
    return {"command": "score", "tasks": [task.name], "model": "predictions",
            "predictions": str(args.predictions), "data_dirs": {task.name: str(data_dir)},
            "splits": {task.name: [split]}, "variants": {task.name: task.variant}, "seed": args.seed,
            "bootstrap": args.bootstrap, "allow_missing": bool(args.allow_missing),
            "output_path": str(args.output_path)}


def predictions_record(args: argparse.Namespace, task: Any, split: str, data_dir: Path, space: Any,
                       result: Any, config: dict[str, Any], status: str) -> Any:
    """The RunRecord of a scored prediction file: the "model" is the file, fingerprinted by its digest."""
    import datetime as dt
    import uuid

    from molmo_eval.core.types import ModelInfo, RunRecord
    from molmo_eval.data.files import file_digest
    from molmo_eval.run.runner import versions
    from molmo_eval.run.scoring import task_config

    model = ModelInfo("predictions", f"predictions-{file_digest(args.predictions)[:20]}", space.value,
                      {"file": str(args.predictions)})
    return RunRecord(run_id=uuid.uuid4().hex[:12],
                     created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), status=status,
                     config=config, packages=versions(), model=model, tasks={task.name: result},
                     n_failed=result.n_failed, counts={"samples": result.n, "model_calls": 0, "cache_hits": 0},
                     task_configs={task.name: task_config(task, [split], None, data_dir=str(data_dir),
                                                          coord_space=space.value)})
