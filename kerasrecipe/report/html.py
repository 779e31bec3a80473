"""The run report as one self-contained HTML page (figures embedded as base64 PNG).

`render(data) -> str` turns a loaded run (kerasrecipe.report.rundata.RunData) into the page.
Each section is drawn on its own: a section without data says so (and how to get it), and a
section that fails to draw shows the error in place instead of breaking the page. The page has
no timestamp of its own, so rendering the same run directory twice gives the same bytes.

The page carries a few lines of inline JavaScript that, once loaded, record in the element
`#kr-render-check` how many images there are and how many decoded (`data-images`,
`data-decoded`, `data-status` = "ok" | "broken", `data-errors`); tests read it from a headless
browser's DOM. Nothing is fetched from the network.
"""
from __future__ import annotations

import base64
import html
import math
import os
from typing import Callable, List, Optional, Tuple

import numpy as np

from kerasrecipe.report import plots
from kerasrecipe.report.rundata import RunData

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#dde2ea; --bg:#f6f8fb; --accent:#0b5cad;
        --err:#b3261e; --warn:#a15c00; --info:#2f6f3e; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       margin: 0; background: #fff; }
header { background: var(--fg); color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .sub { color: #c9d2e3; font-size: 13px; }
nav { padding: 8px 32px; background: var(--bg); border-bottom: 1px solid var(--line); font-size: 13px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; white-space: nowrap; }
main { padding: 8px 32px 40px; max-width: 1200px; }
section { margin-top: 26px; }
h2 { font-size: 18px; border-bottom: 2px solid var(--line); padding-bottom: 4px; margin-bottom: 10px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 14px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 130px; background: var(--bg); }
.card .k { color: var(--muted); font-size: 12px; }
.card .v { font-size: 18px; font-weight: 600; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.twocol { display: flex; flex-wrap: wrap; gap: 24px; }
.twocol > div { flex: 1 1 420px; min-width: 0; }
figure { margin: 8px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 12px; }
.empty { color: var(--muted); font-style: italic; background: var(--bg); padding: 8px 12px; border-radius: 4px; }
.broken { color: var(--err); background: #fdecea; padding: 8px 12px; border-radius: 4px; }
.sev { font-weight: 600; padding: 1px 6px; border-radius: 3px; color: #fff; font-size: 12px; }
.sev-error, .st-failed { background: var(--err); }
.sev-warning, .st-warning { background: var(--warn); }
.sev-info, .st-passed { background: var(--info); }
.st-skipped { background: #7a8191; }
.finding { border-left: 4px solid var(--line); padding: 6px 12px; margin: 10px 0; background: var(--bg); }
.finding.error { border-color: var(--err); } .finding.warning { border-color: var(--warn); }
.finding.info { border-color: var(--info); }
.finding .fix { margin: 4px 0 0; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
.tlgrid { display: flex; flex-wrap: wrap; gap: 8px; }
figure.tl { margin: 0; text-align: center; font-size: 11px; }
figure.tl img { width: 72px; height: 72px; image-rendering: pixelated; border: 2px solid #888; }
figure.tl.wrong img { border-color: var(--err); } figure.tl.wrong figcaption { color: var(--err); }
footer { color: var(--muted); font-size: 12px; padding: 12px 32px; border-top: 1px solid var(--line); }
"""

RENDER_CHECK_JS = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message || e)); }, true);
  function check() {
    var imgs = document.images, ok = 0, bad = [];
    for (var i = 0; i < imgs.length; i++) {
      if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; } else { bad.push(imgs[i].alt || String(i)); }
    }
    var m = document.getElementById('kr-render-check');
    m.setAttribute('data-images', String(imgs.length));
    m.setAttribute('data-decoded', String(ok));
    m.setAttribute('data-failed', bad.join('|'));
    m.setAttribute('data-errors', errors.join('|'));
    m.setAttribute('data-status', bad.length || errors.length ? 'broken' : 'ok');
  }
  window.addEventListener('load', check);
})();
"""


# --------------------------------------------------------------------------- small helpers
def esc(s) -> str:
    return html.escape("" if s is None else str(s), quote=True)


def fmt(v) -> str:
    """A value for a table cell: numbers to 4 significant digits, None as a dash."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f) or math.isinf(f):
            return str(f)
        if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e5):
            return f"{f:.3e}"
        return f"{f:.4g}"
    if isinstance(v, (list, tuple)):
        if len(v) > 12:
            return "[" + ", ".join(fmt(x) for x in v[:12]) + f", … ({len(v)} items)]"
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    return str(v)


def empty(msg: str) -> str:
    return f'<p class="empty">{esc(msg)}</p>'


def image(fig, alt: str, caption: str = "") -> str:
    """A figure as an embedded PNG (the figure is closed after)."""
    png = plots.to_png(fig)
    b64 = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{b64}">{cap}</figure>'


def kv_table(d: dict, *, cls: str = "") -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in d.items())
    return f'<table class="{cls}">{rows}</table>'


def table(header: List[str], rows: List[List[str]], *, raw: bool = False, num_cols=()) -> str:
    """A table; cells are escaped unless `raw` (then they are trusted HTML)."""
    th = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            cl = ' class="num"' if i in num_cols else ""
            cells.append(f"<td{cl}>{c if raw else esc(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _sev(s: str) -> str:
    s = str(s or "info")
    return f'<span class="sev sev-{esc(s)}">{esc(s)}</span>'


# --------------------------------------------------------------------------- sections
def _unfinished_fit(records):
    """(fit index, epochs it finished) of the last fit when no `end` event follows its `meta`
    record (interrupted, or still running), else None."""
    last_meta, ended, epochs = None, False, 0
    for r in records:
        kind = r.get("kind")
        if kind == "meta":
            last_meta, ended, epochs = r, False, 0
        elif kind == "event" and r.get("event") == "end":
            ended = True
        elif kind == "epoch":
            epochs += 1
    if last_meta is None or ended:
        return None
    return last_meta.get("fit"), epochs


def _weights_kept(events):
    """The `restored_best` event of the last fit (its weights are the model's), or None."""
    ended = False
    for e in reversed(events):
        kind = e.get("event")
        if kind == "end":
            if ended:
                return None
            ended = True
        elif kind == "restored_best" and e.get("epoch") is not None:
            return e
    return None


def section_summary(d: RunData) -> str:
    meta, log = d.meta, d.log
    epochs = log.of("epoch")
    cards: List[Tuple[str, str]] = []
    backend = meta.get("backend") or (d.env or {}).get("backend")
    cards.append(("backend", fmt(backend)))
    model = meta.get("model") or {}
    if model.get("params") is not None:
        cards.append(("parameters", f"{int(model['params']):,}"))
    if meta.get("num_samples"):
        cards.append(("training samples", f"{int(meta['num_samples']):,}"))
    cards.append(("epochs run", str(len(epochs))))
    if epochs:
        last = epochs[-1].get("logs") or {}
        for key in ("loss", "val_loss"):
            if last.get(key) is not None:
                cards.append((f"last epoch {key}", fmt(last[key])))
        vl = log.epoch_series("val_loss")
        if any(np.isfinite(vl)):
            i = int(np.nanargmin(vl))
            cards.append(("best val_loss", f"{fmt(vl[i])} @ epoch {int(epochs[i].get('epoch', i)) + 1}"))
        for key in plots.metric_names(epochs)[:2]:
            vk = "val_" + key if last.get("val_" + key) is not None else key
            if last.get(vk) is not None:
                cards.append((f"last epoch {vk}", fmt(last[vk])))
        kept = _weights_kept(log.of("event"))
        if kept is not None:
            cards.append(("model's weights", f"epoch {int(kept['epoch']) + 1} (best {kept.get('monitor')} "
                                             f"{fmt(kept.get('value'))}, restored)"))
    if d.findings is not None:
        counts = {s: 0 for s in SEVERITY_ORDER}
        for f in d.findings:
            counts[f.get("severity", "info")] = counts.get(f.get("severity", "info"), 0) + 1
        cards.append(("findings", f"{counts['error']} error · {counts['warning']} warning · {counts['info']} info"))
    html_cards = "".join(f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>'
                         for k, v in cards)
    out = f'<div class="cards">{html_cards}</div>'
    unfinished = _unfinished_fit(log.records)
    if unfinished is not None:
        fit, done = unfinished
        note = (f"The last fit (fit {fmt(fit)}) did not finish: it has no end record after {done} epoch(s) "
                "(interrupted by an exception, Ctrl-C or a killed process, or still running); best.json and "
                "the live findings are those of its last finished epoch.")
        if os.path.exists(os.path.join(d.run_dir, "backup", "state.json")):
            note += (" A crash backup is there (backup/): fitting again with the same callbacks, or with "
                     "kerasrecipe.default(run_dir=...) in a new process, resumes after the last finished epoch.")
        out += f'<p class="broken">{esc(note)}</p>'
    if d.problems:
        out += '<p class="broken">' + "<br>".join(esc(p) for p in d.problems) + "</p>"
    return out


def section_findings(d: RunData) -> str:
    if d.findings is None:
        return empty("No diagnosis in this run directory (findings.json is missing). "
                     "kerasrecipe.default() writes it at the end of fit (DiagnosisCallback).")
    if not d.findings:
        return "<p>The diagnosis found nothing to report: the curves and the internals look healthy.</p>"
    items = sorted(d.findings, key=lambda f: (SEVERITY_ORDER.get(f.get("severity"), 3),
                                              f.get("epoch") if f.get("epoch") is not None else 1 << 30))
    parts = []
    if d.findings_source != "findings.json":
        parts.append(f"<p class='empty'>From {esc(d.findings_source)} (no findings.json).</p>")
    for f in items:
        sev = f.get("severity", "info")
        where = []
        if f.get("layer"):
            where.append(f"layer <code>{esc(f['layer'])}</code>")
        if f.get("epoch") is not None:
            where.append(f"epoch {int(f['epoch']) + 1}")
        if f.get("step") is not None:
            where.append(f"step {int(f['step'])}")
        tips = ", ".join(f.get("tips") or [])
        head = (f"{_sev(sev)} <b>{esc(f.get('rule'))}</b>"
                + (f" <span class='mono'>[{esc(f.get('tag'))}]</span>" if f.get("tag") and f.get("tag") != f.get("rule") else "")
                + (" — " + ", ".join(where) if where else "")
                + (f" <span class='mono'>tips {esc(tips)}</span>" if tips else ""))
        body = [f"<div>{head}</div>", f"<div>{esc(f.get('symptom'))}</div>"]
        if f.get("causes"):
            body.append("<div><i>Likely causes:</i> " + "; ".join(esc(c) for c in f["causes"]) + "</div>")
        if f.get("fixes"):
            body.append("<div class='fix'><b>Fix:</b><ul>" + "".join(f"<li>{esc(x)}</li>" for x in f["fixes"]) + "</ul></div>")
        if f.get("evidence"):
            body.append(f"<div class='mono'>evidence: {esc(fmt(f['evidence']))}</div>")
        parts.append(f"<div class='finding {esc(sev)}'>{''.join(body)}</div>")
    return "".join(parts)


def section_config(d: RunData) -> str:
    left = (kv_table(d.config) if isinstance(d.config, dict)
            else empty("No config.json: the run's hyperparameters were not recorded."))
    training = d.meta.get("training")
    if isinstance(training, dict) and training:
        left = ("<h3>Training (as run)</h3><p class='empty'>What the fit trained with: the compiled "
                "optimizer, its learning rate at the start of the first fit, the batch size, the seed "
                "applied.</p>" + kv_table(training)
                + "<h3>Config</h3><p class='empty'>The recipe's settings (RecipeConfig); its optimizer fields "
                  "apply only where kerasrecipe builds the optimizer.</p>" + left)
    else:
        left = "<h3>Config</h3>" + left
    right = (kv_table(_flatten(d.env)) if isinstance(d.env, dict)
             else empty("No env.json: versions and devices were not recorded."))
    model = (d.meta.get("model") or {})
    layers = model.get("layers") or []
    extra = ""
    if layers:
        rows = [[str(i), fmt(l.get("name")), fmt(l.get("class")), fmt(l.get("activation")), fmt(l.get("units"))]
                for i, l in enumerate(layers)]
        extra = (f"<h3>Model: {esc(model.get('name'))}, {esc(fmt(model.get('params')))} parameters "
                 f"({esc(fmt(model.get('trainable_params')))} trainable); loss {esc(d.meta.get('loss'))}</h3>"
                 + table(["#", "layer", "class", "activation", "units"], rows))
    return f"<div class='twocol'><div>{left}</div><div><h3>Environment</h3>{right}</div></div>{extra}"


def section_preflight(d: RunData) -> str:
    p = d.preflight
    if not p or not p.get("rows"):
        return empty("No preflight in this run. Run kerasrecipe.preflight(model, x, y) before training and "
                     "log it: runlog.log('preflight', **report.to_dict()).")
    rows = []
    for r in p["rows"]:
        st = r.get("status", "passed")
        issues = "".join(
            f"<div>{_sev(i.get('severity'))} {esc(i.get('message'))}"
            + (f"<br><b>Fix:</b> {esc(i.get('fix'))}" if i.get("fix") else "") + "</div>"
            for i in r.get("issues") or [])
        if st == "skipped" and r.get("reason"):
            issues = f"<i>{esc(r['reason'])}</i>"
        rows.append([
            esc(r.get("title") or r.get("name")),
            esc(", ".join(r.get("tips") or [])),
            f'<span class="sev st-{esc(st)}">{esc(st)}</span>',
            esc(r.get("summary")),
            issues,
            esc(fmt(r.get("seconds"))),
        ])
    counts = p.get("counts") or {}
    head = f"<p>{esc(fmt(counts))}; {esc(fmt(p.get('elapsed')))} s" + (
        f" of a {esc(fmt(p.get('time_budget')))} s budget" if p.get("time_budget") else "") + "</p>"
    return head + table(["check", "tips", "status", "summary", "issues and fixes", "s"], rows, raw=True, num_cols=(5,))


def section_lr_find(d: RunData) -> str:
    rec = d.lr_find
    if not rec:
        return empty("No LR range test in this run. kerasrecipe.lr_find(model, x, y) finds a learning rate "
                     "(tip D2); log it with runlog.log('lr_find', **result.to_dict()).")
    fig = plots.lr_find_plot(rec)
    if fig is None:
        return empty("The LR range test record holds no finite losses.")
    sug = rec.get("suggestion")
    named = {k: v for k, v in (rec.get("suggestions") or {}).items() if v is not None}
    if named:
        cap = "Suggestions: " + ", ".join(f"{k} {fmt(v)}" for k, v in named.items()) + "."
    else:
        cap = f"Suggested learning rate: {fmt(sug)}." if sug is not None else "No suggestion."
    used = (d.meta.get("training") or {}).get("learning_rate")
    if used is not None:
        cap += f" Training started at {fmt(used)}."
    return image(fig, "LR finder", cap)


def section_curves(d: RunData) -> str:
    log = d.log
    epochs = log.of("epoch")
    if not epochs:
        return empty("No epoch records: the run stopped before its first epoch ended.")
    fig = plots.curves_plot(epochs, log.of("batch"), d.meta.get("steps_per_epoch"), log.of("event"))
    out = image(fig, "training curves", "Train/val loss, metrics and learning rate per epoch "
                "(G1: train↓ val↑ overfitting; both flat: stuck; train↑: optimisation problem).")
    events = [e for e in log.of("event")]
    if events:
        skip = {"kind", "time", "epoch", "step", "event", "message"}
        rows = [[fmt(e.get("epoch") + 1 if e.get("epoch") is not None else None), fmt(e.get("step")),
                 fmt(e.get("event")),
                 fmt(e.get("message") or {k: v for k, v in e.items() if k not in skip} or None)] for e in events]
        out += "<h3>Events</h3>" + table(["epoch", "step", "event", "message"], rows)
    return out


def section_activations(d: RunData) -> str:
    recs = d.log.of("layer")
    if not recs or not any(r.get("act") for r in recs):
        return empty("No activation statistics: the health monitor (kerasrecipe.callbacks.HealthMonitor, "
                     "part of default()) records them on a probe batch.")
    out = []
    fig = plots.colorful_dimension_plot(recs)
    if fig is not None:
        out.append(image(fig, "activation histograms", "Per layer, the histogram of its outputs on the probe "
                         "batch at each probe step (G3)."))
    else:
        out.append(empty("The layer records hold no histograms; the heatmaps below show the fractions."))
    fig = plots.dead_saturated_plot(recs)
    if fig is not None:
        out.append(image(fig, "dead and saturated fractions", "Dead: fraction of outputs exactly 0 (ReLU); "
                         "saturated: fraction at |a| >= the saturation threshold (tanh/sigmoid)."))
    fig = plots.activation_lines_plot(recs)
    if fig is not None:
        out.append(image(fig, "activation mean and std", "Mean and standard deviation of each layer's output."))
    # last probe as a table
    names, steps, table_ = plots._layer_table(recs)
    last = steps[-1]
    rows = []
    for n in names:
        r = table_.get((n, last))
        if r is None:
            continue
        a = r.get("act") or {}
        rows.append([n, fmt(r.get("class")), fmt(r.get("activation")), fmt(a.get("mean")), fmt(a.get("std")),
                     fmt(a.get("zero_frac")), fmt(a.get("sat_frac")), fmt((a.get("nan") or 0) + (a.get("inf") or 0)),
                     fmt(r.get("grad_norm")), fmt(r.get("update_ratio"))])
    out.append(f"<h3>Last probe (step {last})</h3>" + table(
        ["layer", "class", "activation", "mean", "std", "dead", "saturated", "non-finite", "grad norm",
         "update/weight"], rows, num_cols=range(3, 10)))
    return "".join(out)


def section_gradients(d: RunData) -> str:
    grads, layers = d.log.of("grad"), d.log.of("layer")
    clip = (d.config or {}).get("clipnorm") if isinstance(d.config, dict) else None
    fig = plots.gradient_plot(grads, layers, clip)
    if fig is None:
        return empty("No gradient records: the health monitor records gradient norms and update ratios; "
                     "a clipping optimizer (kerasrecipe.optimizers.clip_global_norm) records the global norm "
                     "at every step.")
    return image(fig, "gradient norms and update ratios", "Global gradient norm over steps, per-layer gradient "
                 "norms, and update/weight ratios (G4: about 1e-3 is healthy).")


def section_predictions(d: RunData) -> str:
    p = d.predictions
    task = d.meta.get("task")
    if p is None:
        if task == "regression":
            return empty("A regression run: no confusion matrix or top losses.")
        return empty("No predictions.npz in this run directory: save a classifier's predictions with "
                     "kerasrecipe.report.save_predictions(run_dir, y_val, model.predict(x_val), x=x_val).")
    names = [str(s) for s in p["class_names"]] if "class_names" in p else None
    split = p.get("split", "held-out data")
    out = [f"<p>On the {esc(split)} data ({len(p['y_true'])} samples).</p>"]
    fig = plots.confusion_plot(p["y_true"], p["y_pred"], names)
    if fig is not None:
        out.append(image(fig, "confusion matrix"))
    wi = p.get("worst_index")
    if wi is None or len(wi) == 0:
        out.append(empty("No worst examples saved."))
        return "".join(out)
    yt, yp = p["y_true"][wi], p["y_pred"][wi]
    loss = p["loss"][wi] if "loss" in p else np.full(len(wi), np.nan)
    nm = (lambda c: names[int(c)] if names and int(c) < len(names) else str(int(c)))
    imgs = plots.as_images(p.get("worst_x"))
    if imgs is not None and len(imgs) == len(wi):
        cells = []
        for j in range(len(wi)):
            b64 = base64.b64encode(plots.image_png(imgs[j])).decode("ascii")
            wrong = " wrong" if int(yt[j]) != int(yp[j]) else ""
            cells.append(f'<figure class="tl{wrong}"><img alt="top loss {j + 1}" src="data:image/png;base64,{b64}">'
                         f"<figcaption>{esc(nm(yt[j]))}→{esc(nm(yp[j]))}<br>loss {esc(fmt(float(loss[j])))}"
                         "</figcaption></figure>")
        out.append("<h3>Top losses</h3><p>The examples the model gets most wrong (C9): look for label errors, "
                   "ambiguous inputs and systematic confusions. Caption: true→predicted (red: misclassified).</p>"
                   f"<div class='tlgrid'>{''.join(cells)}</div>")
    rows = []
    for j, i in enumerate(wi):
        pt = float(p["proba"][i, yt[j]]) if "proba" in p else None
        rows.append([str(int(i)), nm(yt[j]), nm(yp[j]), fmt(pt), fmt(float(loss[j]))])
    out.append(("<h3>Top losses</h3>" if imgs is None else "")
               + table(["sample", "true", "predicted", "p(true)", "loss"], rows, num_cols=(0, 3, 4)))
    return "".join(out)


def section_cv(d: RunData) -> str:
    cv = d.cv
    if not cv:
        return empty("No cross-validation in this run (kerasrecipe.cv.cross_validate writes cv.json).")
    out = [f"<p>{esc(cv.get('n_folds'))}-fold cross-validation ({esc(cv.get('task'))}): "
           f"<b>{esc(cv.get('summary'))}</b></p>"]
    scores = cv.get("scores") or {}
    fig = plots.cv_plot(scores)
    if fig is not None:
        out.append(image(fig, "cross-validation scores", "One point per fold; the mean ± std (B5)."))
    if scores:
        k = max(len(v) for v in scores.values())
        rows = [[str(i + 1)] + [fmt(v[i]) if i < len(v) else "—" for v in scores.values()] for i in range(k)]
        out.append(table(["fold"] + list(scores), rows, num_cols=range(1, len(scores) + 1)))
    return "".join(out)


def section_files(d: RunData) -> str:
    rows = []
    for name in sorted(os.listdir(d.run_dir)):
        if name.startswith(".") or name in ("report.html",):
            continue
        path = os.path.join(d.run_dir, name)
        if os.path.isdir(path):
            rows.append([name + "/", f"{len(os.listdir(path))} entries"])
        else:
            rows.append([name, f"{os.path.getsize(path):,} bytes"])
    return table(["file", "size"], rows, num_cols=(1,))


SECTIONS: List[Tuple[str, str, Callable[[RunData], str]]] = [
    ("summary", "Summary", section_summary),
    ("findings", "Findings and fixes", section_findings),
    ("config", "Config and environment", section_config),
    ("preflight", "Preflight checks", section_preflight),
    ("lr-find", "LR range test", section_lr_find),
    ("curves", "Training curves", section_curves),
    ("activations", "Activations", section_activations),
    ("gradients", "Gradients and updates", section_gradients),
    ("predictions", "Predictions", section_predictions),
    ("cv", "Cross-validation", section_cv),
    ("files", "Files", section_files),
]


def render(d: RunData, title: Optional[str] = None) -> Tuple[str, List[str]]:
    """(page, errors): the HTML page of a run, and the sections that failed to draw."""
    from kerasrecipe import __version__

    errors: List[str] = []
    body = []
    for sid, heading, fn in SECTIONS:
        try:
            content = fn(d)
        except Exception as e:  # shown in place; build_report warns with the list
            msg = f"{heading}: {type(e).__name__}: {e}"
            errors.append(msg)
            content = f'<p class="broken">This section could not be drawn: {esc(type(e).__name__)}: {esc(e)}</p>'
        if sid == "summary":
            body.append(f'<section id="{sid}">{content}</section>')
        else:
            body.append(f'<section id="{sid}"><h2>{esc(heading)}</h2>{content}</section>')
    nav = "".join(f'<a href="#{sid}">{esc(h)}</a>' for sid, h, _ in SECTIONS[1:])
    title = title or f"kerasrecipe run report — {d.name}"
    when = (d.env or {}).get("time") if isinstance(d.env, dict) else None
    sub = " · ".join(esc(x) for x in [d.name, when, (d.meta.get("model") or {}).get("name")] if x)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="kerasrecipe {esc(__version__)}">
<title>{esc(title)}</title>
<style>{CSS}</style>
<script>{RENDER_CHECK_JS}</script>
</head><body>
<header><h1>{esc(title)}</h1><div class="sub">{sub}</div></header>
<nav>{nav}</nav>
<main>
{''.join(body)}
</main>
<footer>Generated by kerasrecipe {esc(__version__)} from the run directory <code>{esc(d.name)}</code>
(regenerate with <code>kerasrecipe report RUN_DIR</code>).
<span id="kr-render-check" data-status="pending"></span></footer>
</body></html>
"""
    return page, errors

