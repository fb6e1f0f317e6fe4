"""The per-round report: one HTML page with PNG plots, for a person to read.

`write_report` renders, from the store alone (no models, no MLflow), into
`rounds/<id>/report/`: `funnel.png` (candidates surviving each cascade stage), `pass_at_1.png`
(pass@1 of champion, candidate and any test-time-compute baselines, round by round up to this
one), `judge_calls.png` (judge calls spent per accepted sample, round by round) and `index.html`
that shows them with the round's numbers. The folder is written atomically and re-rendering is
harmless, so the controller writes it whenever a round ends and `autoimprove report N` can
re-render it at any time. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import html
from pathlib import Path

from autoimprove.artifacts import atomic_dir
from autoimprove.store import RoundRow, Store
from autoimprove.views import round_detail

# One colour per series, also what the browser test looks for in a screenshot.
COLORS = {
    "funnel": "#1f77b4",
    "champion": "#7f7f7f",
    "candidate": "#d62728",
    "maj_at_k": "#2ca02c",
    "uq_ttc": "#9467bd",
    "judge_calls": "#ff7f0e",
}
PLOTS = ("funnel.png", "pass_at_1.png", "judge_calls.png")
SERIES = ("champion", "candidate", "maj_at_k", "uq_ttc")


def _figure():  # noqa: ANN202 - matplotlib types
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    ax.grid(axis="y", alpha=0.3)
    return plt, fig, ax


def _funnel_plot(detail: dict, path: Path) -> None:
    funnel = detail["funnel"] or {}
    labels = ["generated"] + [k.removeprefix("passed_") for k in funnel if k.startswith("passed_")]
    values = [funnel.get("candidates") or 0] + [
        v for k, v in funnel.items() if k.startswith("passed_")
    ]
    plt, fig, ax = _figure()
    bars = ax.bar(labels, values, color=COLORS["funnel"])
    ax.bar_label(bars)
    ax.set_ylabel("candidates surviving")
    ax.set_title(f"Round {detail['id']}: cascade funnel ({funnel.get('accepted', 0)} accepted)")
    ax.set_ylim(0, max([1, *values]) * 1.15)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _history(rows: list[RoundRow], upto: int) -> list[dict]:
    return [round_detail(r) for r in sorted(rows, key=lambda r: r.id or 0) if (r.id or 0) <= upto]


def _pass_plot(history: list[dict], path: Path) -> None:
    plt, fig, ax = _figure()
    drawn = False
    for name in SERIES:
        points = [
            (d["id"], d["eval"][name]["pass_at_1"])
            for d in history
            if (d["eval"].get(name) or {}).get("pass_at_1") is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", linewidth=2.5, color=COLORS[name], label=name)
            drawn = True
    if drawn:
        ax.legend(loc="best")
    else:
        ax.text(0.5, 0.5, "no round evaluated yet", ha="center", va="center")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("round")
    ax.set_ylabel("pass@1 (held-out)")
    ax.set_title("pass@1 per round")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _judge_plot(history: list[dict], path: Path) -> None:
    points = [(d["id"], d["calls_per_accepted"]) for d in history if d["calls_per_accepted"]]
    plt, fig, ax = _figure()
    if points:
        xs, ys = zip(*points, strict=True)
        ax.bar([str(x) for x in xs], ys, color=COLORS["judge_calls"])
    else:
        ax.text(0.5, 0.5, "no accepted sample yet", ha="center", va="center")
    ax.set_xlabel("round")
    ax.set_ylabel("judge calls per accepted sample")
    ax.set_title("Verification cost")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _rows_html(pairs: list[tuple[str, object]]) -> str:
    return "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs
    )


def _page(detail: dict) -> str:
    funnel = detail["funnel"] or {}
    ev = detail["eval"]
    pairs: list[tuple[str, object]] = [
        ("state", detail["state"]),
        ("decision", detail["decision"]),
        ("why", detail["reason"]),
        ("seeds used", detail["seeds"]),
        ("candidates generated", funnel.get("candidates")),
        ("accepted samples", funnel.get("accepted")),
        ("judge calls", detail["judge_calls"]),
        ("registered version", detail["model_version"]),
        ("parent (champion at start)", detail["parent_version"] or "base model"),
    ]
    for name in SERIES:
        result = ev.get(name)
        if result:
            ci = result.get("ci95")
            ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
            pairs.append(
                (f"pass@1 {name}", f"{result['pass_at_1']:.3f}{ci_text} (n={result.get('n')})")
            )
    if detail["error"]:
        pairs.append(("error", detail["error"].splitlines()[0]))
    images = "\n".join(
        f'<figure><img src="{name}" alt="{name.removesuffix(".png")}" width="640" height="360">'
        f"</figure>"
        for name in PLOTS
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>autoimprove round {detail["id"]}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; background: #fff; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ text-align: left; padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; }}
figure {{ margin: 0 0 1em 0; }}
</style></head>
<body>
<h1>Round {detail["id"]}: {html.escape(str(detail["state"]))}</h1>
<table>
{_rows_html(pairs)}
</table>
{images}
</body></html>
"""


def write_report(store: Store, round_dir: Path, round_id: int) -> Path:
    """Render round `round_id`'s report into `round_dir/report/`; returns the HTML path."""
    row = store.get_round(round_id)
    if row is None:
        raise KeyError(f"round {round_id} does not exist")
    detail = round_detail(row)
    history = _history(store.list_rounds(), round_id)
    final = round_dir / "report"
    with atomic_dir(final) as tmp:
        _funnel_plot(detail, tmp / "funnel.png")
        _pass_plot(history, tmp / "pass_at_1.png")
        _judge_plot(history, tmp / "judge_calls.png")
        (tmp / "index.html").write_text(_page(detail), encoding="utf-8")
    return final / "index.html"


def main(argv: list[str] | None = None) -> None:
    """`python -m autoimprove.report WORKSPACE ROUND`: render, print the page's path."""
    import sys

    from autoimprove.context import Workspace

    root, round_id = (argv if argv is not None else sys.argv[1:])[:2]
    ws = Workspace(Path(root))
    print(write_report(Store(ws.state_db), ws.round_dir(int(round_id)), int(round_id)))


if __name__ == "__main__":
    main()
