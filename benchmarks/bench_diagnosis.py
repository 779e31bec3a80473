"""Diagnosis accuracy on faulty training programs and their fixed twins (issue 6).

    python benchmarks/bench_diagnosis.py --backend jax            # all cases, one backend
    python benchmarks/bench_diagnosis.py --backend torch --cases dead_relu,leakage
    python benchmarks/bench_diagnosis.py --all-backends            # one process per backend

For every case in benchmarks/faults/ (faulty and fixed): `kerasrecipe.preflight(...)`, then
`model.fit(..., callbacks=kerasrecipe.default(...))` for the case's bounded number of epochs,
then the findings of both, ranked by `kerasrecipe.diagnose.rank_findings` (most severe first,
causes before symptoms). Reported:

- detection: faulty cases with at least one warning/error finding;
- right diagnosis: faulty cases whose top finding's tag is one of the case's tags;
- false alarms: fixed twins with any warning/error finding;
- time and epochs to the first warning/error finding (preflight: before epoch 1, 0 epochs;
  run findings: when DiagnosisCallback first logged them live, else at the end of fit).

Per-backend results go to benchmarks/faults/results-<backend>.json; the "diagnosis" section of
benchmarks/RESULTS.md is rebuilt from every backend's file.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = {"detection": 0.95, "right": 0.80, "false_alarm": 0.05}
EARLY_TAGS = ("nan", "dead_relu", "saturation")   # must be reported within two epochs
SEVERE = ("warning", "error")


def _first_report(log, finding, fit_start):
    """(seconds, epochs) from the start of fit until `finding` was first logged."""
    t = None
    for r in log.records:
        if r.get("kind") == "finding" and r.get("rule") == finding.rule and r.get("tag") == finding.tag:
            t = r.get("time")
            break
    epochs = [r.get("time") for r in log.records if r.get("kind") == "epoch" and r.get("time", 0) >= fit_start]
    if t is None:
        t = epochs[-1] if epochs else time.time()
    n = sum(1 for e in epochs if e <= t + 1e-6)
    if n == 0 or (n < len(epochs) and t > epochs[n - 1] + 1e-6):
        n += 1   # reported during the epoch after the last completed one
    return t - fit_start, max(n, 1)


def run_case(name, mod, fixed, *, budget, workdir, verbose=False):
    import keras

    import kerasrecipe
    from kerasrecipe.diagnose import diagnose_run, rank_findings
    from kerasrecipe.recipe import find_runlog

    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    spec = mod.build(fixed)
    model, x, y, val, kw = spec["model"], spec["x"], spec["y"], spec["validation_data"], dict(spec["fit_kwargs"])
    out = {"case": name, "fixed": fixed, "tags": list(mod.TAGS), "epochs_budget": mod.EPOCHS}
    t0 = time.perf_counter()
    pre = []
    try:
        sw = kw.get("sample_weight")
        if sw is None and kw.get("class_weight"):   # tell preflight how fit will weight the samples
            import numpy as np

            sw = np.asarray([kw["class_weight"][int(t)] for t in np.asarray(y).reshape(-1)], dtype="float32")
        report = kerasrecipe.preflight(model, x, y, validation_data=val, verbose=0, time_budget=budget,
                                       batch_size=kw.get("batch_size"), sample_weight=sw)
        pre = report.findings()
    except Exception as e:  # a crashing check is a bug to report, not a finding
        out["preflight_error"] = f"{type(e).__name__}: {e}"
    t_pre = time.perf_counter() - t0
    run_dir = os.path.join(workdir, f"{name}-{'fixed' if fixed else 'faulty'}")
    cbs = kerasrecipe.default(run_dir=run_dir, tensorboard=False, checkpoint="none", backup=False)
    fit_start = time.time()
    t1 = time.perf_counter()
    try:
        model.fit(x, y, validation_data=val, epochs=mod.EPOCHS, batch_size=kw.pop("batch_size", 32),
                  callbacks=cbs, verbose=0, **kw)
    except Exception as e:
        out["fit_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    t_fit = time.perf_counter() - t1
    log = find_runlog(cbs)
    run = diagnose_run(log)
    ranked = rank_findings(pre + run)
    severe = [f for f in ranked if f.severity in SEVERE]
    pre_keys = {(f.rule, f.tag) for f in pre}
    firsts = []
    for f in severe:
        if (f.rule, f.tag) in pre_keys:
            firsts.append((t_pre, 0, f.tag))
        else:
            s, n = _first_report(log, f, fit_start)
            firsts.append((t_pre + s, n, f.tag))
    out.update({
        "detected": bool(severe),
        "top": None if not ranked else {"tag": ranked[0].tag, "severity": ranked[0].severity, "rule": ranked[0].rule,
                                        "symptom": ranked[0].symptom[:200]},
        "right": bool(severe) and severe[0].tag in mod.TAGS,
        "severe_tags": [f"{f.tag}:{f.severity}" + (" (pre)" if f.rule.startswith("preflight") else "") for f in severe],
        "severe_detail": [f"{f.rule}: {f.symptom[:160]}" for f in severe],
        "epochs_run": len(log.of("epoch")),
        "loss": [round(v, 4) for v in log.epoch_series("loss")],
        "val_loss": [round(v, 4) for v in log.epoch_series("val_loss")],
        "preflight_s": round(t_pre, 2), "fit_s": round(t_fit, 2),
    })
    if firsts:
        s, n, tag = min(firsts)
        out.update({"first_s": round(s, 2), "first_epochs": n, "first_tag": tag})
        early = [(n_, t_) for s_, n_, t_ in firsts if t_ in EARLY_TAGS and t_ in mod.TAGS[:1]]
        if early:
            out["early_epochs"] = min(early)[0]
    if verbose:
        print(json.dumps({k: out.get(k) for k in ("case", "fixed", "detected", "right", "severe_tags", "severe_detail", "preflight_s", "fit_s", "loss", "val_loss",
                                                  "fit_error", "preflight_error")}), flush=True)
    return out


def rerank(r):
    """Recompute a result's top finding from its stored ranked list with the current ordering.

    `severe_tags` holds the warning/error findings as ranked when the case ran (severity, epoch,
    causes first within ties); re-sorting that list stably by (severity, symptom-or-not) gives
    exactly the order of the current `rank_findings`, so results of earlier runs stay comparable.
    """
    from kerasrecipe.diagnose import SYMPTOM_TAGS

    sev = {"error": 0, "warning": 1}
    items = sorted(r["severe_tags"], key=lambda t: (sev[t.split(":")[1].split(" ")[0]],
                                                   1 if t.split(":")[0] in SYMPTOM_TAGS else 0))
    r["severe_tags"] = items
    r["right"] = bool(items) and items[0].split(":")[0] in r["tags"]
    if items:
        tag, rest = items[0].split(":", 1)
        r["top"] = dict(r.get("top") or {}, tag=tag, severity=rest.split(" ")[0])
    return r


def summarize(results):
    faulty = [r for r in results if not r["fixed"]]
    twins = [r for r in results if r["fixed"]]
    det = [r for r in faulty if r["detected"]]
    s = {
        "cases": len(faulty),
        "detection": len(det) / max(len(faulty), 1),
        "right": sum(r["right"] for r in faulty) / max(len(faulty), 1),
        "false_alarm": sum(r["detected"] for r in twins) / max(len(twins), 1),
        "median_first_s": statistics.median([r["first_s"] for r in det]) if det else None,
        "median_first_epochs": statistics.median([r["first_epochs"] for r in det]) if det else None,
    }
    run_only = lambda r: [t for t in r["severe_tags"] if not t.endswith("(pre)")]  # noqa: E731
    s["detection_run"] = sum(1 for r in faulty if run_only(r)) / max(len(faulty), 1)
    s["right_run"] = sum(1 for r in faulty if run_only(r) and run_only(r)[0].split(":")[0] in r["tags"]) / max(
        len(faulty), 1)
    s["false_alarm_run"] = sum(1 for r in twins if run_only(r)) / max(len(twins), 1)
    s["false_alarm_pre"] = sum(1 for r in twins if len(run_only(r)) < len(r["severe_tags"])) / max(len(twins), 1)
    early = [r for r in faulty if r["tags"][0] in EARLY_TAGS]
    s["early_within_2"] = sum(1 for r in early if r.get("early_epochs") is not None and r["early_epochs"] <= 2)
    s["early_cases"] = len(early)
    return s


def _pct(v):
    return "-" if v is None else f"{100 * v:.0f}%"


def markdown(all_results: dict) -> str:
    from _results import machine

    lines = ["## Diagnosis accuracy on faulty programs (issue 6)", "",
             f"Machine: {machine()}. Each case: `preflight` (time budget as run), then `fit` with "
             "`kerasrecipe.default()` for the case's epochs; findings ranked by `rank_findings`. "
             "Targets: detection >= 95%, right diagnosis >= 80%, false alarms <= 5%, NaN/dead/saturation "
             "within 2 epochs. `python benchmarks/bench_diagnosis.py --backend B` reproduces a row. A row may "
             "combine a full run with reruns of the cases a later fix touched (`--out` then `--merge`); the "
             "per-case tables name them.", "",
             "Run-only columns count the findings of the fit's diagnosis alone (kerasrecipe.diagnose); "
             "the preflight column counts the twins flagged by preflight's checks.", "",
             "| backend | cases | detection | right diagnosis | false alarms (twins) | NaN/dead/sat. within 2 epochs "
             "| median time to first finding | median epochs to first finding | detection, run only "
             "| right, run only | false alarms, run only | false alarms, preflight |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for b, res in sorted(all_results.items()):
        s = summarize(res["results"])
        med = "-" if s["median_first_s"] is None else f"{s['median_first_s']:.1f} s"
        lines.append(f"| {b} | {s['cases']} | {_pct(s['detection'])} | {_pct(s['right'])} | {_pct(s['false_alarm'])} "
                     f"| {s['early_within_2']}/{s['early_cases']} | {med} | {s['median_first_epochs']} "
                     f"| {_pct(s['detection_run'])} | {_pct(s['right_run'])} | {_pct(s['false_alarm_run'])} "
                     f"| {_pct(s['false_alarm_pre'])} |")
    for b, res in sorted(all_results.items()):
        reran = res.get("reran") or []
        lines += ["", f"### {b} — per case ({res.get('when', '')}, preflight time budget {res.get('budget')} s)"
                  + (f"; rerun after the full run and merged: {', '.join(reran)}" if reran else ""), "",
                  "| case | fault tags | faulty: top finding | right | faulty: warnings/errors ((pre) = preflight) "
                  "| first (s / epochs) | twin: warnings/errors |",
                  "|---|---|---|---|---|---|---|"]
        by = {}
        for r in res["results"]:
            by.setdefault(r["case"], {})["fixed" if r["fixed"] else "faulty"] = r
        for name in sorted(by):
            f, t = by[name].get("faulty"), by[name].get("fixed")
            if f is None:
                continue
            top = f"{f['top']['tag']} ({f['top']['severity']})" if f.get("top") and f["detected"] else "none"
            if f.get("fit_error"):
                top += " ; fit raised"
            first = f"{f['first_s']:.1f} / {f['first_epochs']}" if f.get("first_s") is not None else "-"
            twin = "-" if t is None else (", ".join(t["severe_tags"]) or "quiet")
            lines.append(f"| {name} | {', '.join(f['tags'])} | {top} | {'yes' if f['right'] else 'no'} "
                         f"| {', '.join(f['severe_tags']) or '-'} | {first} | {twin} |")
    return "\n".join(lines)


def load_all():
    out = {}
    faults_dir = os.path.join(HERE, "faults")
    for fn in sorted(os.listdir(faults_dir)):
        if fn.startswith("results-") and fn.endswith(".json"):
            with open(os.path.join(faults_dir, fn)) as fh:
                d = json.load(fh)
            out[d["backend"]] = d
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"),
                    choices=["jax", "torch", "tensorflow"])
    ap.add_argument("--all-backends", action="store_true", help="run each backend in its own process")
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--budget", type=float, default=10.0, help="preflight time budget per case, seconds")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--out", default=None, help="save this run's results to a JSON file (for --merge)")
    ap.add_argument("--merge", nargs="+", default=None,
                    help="JSON files from --out runs of one backend: combine them as that backend's results "
                         "(a later file's run of a case replaces an earlier one's)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.all_backends:
        for b in ("jax", "torch", "tensorflow"):
            cmd = [sys.executable, os.path.abspath(__file__), "--backend", b, "--budget", str(a.budget)]
            cmd += (["--cases", a.cases] if a.cases else []) + (["-v"] if a.verbose else [])
            subprocess.run(cmd, check=True)
        return 0
    if a.merge:
        parts = []
        for fn in a.merge:
            with open(fn) as fh:
                parts.append(json.load(fh))
        backends = {p["backend"] for p in parts}
        if len(backends) != 1:
            ap.error(f"--merge needs files of one backend, got {sorted(backends)}")
        merged = {}
        for p in parts:   # a later file's run of a case replaces an earlier one
            for r in p["results"]:
                merged[(r["case"], r["fixed"])] = r
        results = [rerank(r) for r in merged.values()]
        reran = sorted({r["case"] for p in parts[1:] for r in p["results"]})
        _save(backends.pop(), results, a.no_write, budget=parts[0].get("budget"), reran=reran)
        return 0
    os.environ["KERAS_BACKEND"] = a.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, HERE)
    from faults import CASES

    names = [c for c in a.cases.split(",") if c] or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; known: {sorted(CASES)}")
    from rich.progress import Progress

    results = []
    with tempfile.TemporaryDirectory(prefix="kr-faults-") as work, Progress(transient=True) as prog:
        task = prog.add_task(f"fault cases ({a.backend})", total=2 * len(names))
        for n in names:
            for fixed in (False, True):
                prog.update(task, description=f"{n} ({'fixed' if fixed else 'faulty'}, {a.backend})")
                results.append(run_case(n, CASES[n], fixed, budget=a.budget, workdir=work, verbose=a.verbose))
                prog.advance(task)
    if a.out:
        from kerasrecipe.io import atomic_write_json

        atomic_write_json(a.out, {"backend": a.backend, "budget": a.budget, "results": results})
    if a.cases:
        print(json.dumps({"backend": a.backend, **summarize(results)}, indent=1))
        return 0
    _save(a.backend, results, a.no_write, budget=a.budget)
    return 0


def _save(backend, results, no_write=False, budget=None, reran=None):
    """Print the totals; unless no_write, keep the backend's results and rebuild the RESULTS.md section."""
    sys.path.insert(0, HERE)
    s = summarize(results)
    print(json.dumps({"backend": backend, **s}, indent=1))
    if no_write:
        return
    from kerasrecipe.io import atomic_write_json

    atomic_write_json(os.path.join(HERE, "faults", f"results-{backend}.json"),
                      {"backend": backend, "when": time.strftime("%Y-%m-%d %H:%M"), "budget": budget, "summary": s,
                       "reran": reran or [], "results": results})
    from _results import write_section

    write_section("diagnosis", markdown(load_all()))


if __name__ == "__main__":
    sys.exit(main())
