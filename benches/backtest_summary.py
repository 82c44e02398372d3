#!/usr/bin/env python3
"""Summarise benches/backtest.sh: a Markdown table of each run's net money
over the last four weeks by policy, the loop's gain over the staged rules and
its share of the oracle's gain over them, retrains, promotions, violations,
wall time and peak memory; then the mean gain over the runs. With
`--chart FILE.png` (needs matplotlib), also draws every run's weekly net
money by policy, retrains and promotions marked.

    python3 benches/backtest_summary.py WORK_DIR [--chart FILE.png]
"""
import json
import re
import statistics
import sys
from pathlib import Path


def money(text: str) -> float:
    return float(text)


def wall_and_memory(log: Path):
    if not log.is_file():
        return "", ""
    text = log.read_text(errors="replace")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return (wall.group(1) if wall else "", f"{int(peak.group(1)) / 1e6:.1f} GB" if peak else "")


def main() -> None:
    work = Path(sys.argv[1])
    chart = sys.argv[sys.argv.index("--chart") + 1] if "--chart" in sys.argv else None
    reports = []
    for path in sorted(work.glob("*-*.json")):
        report = json.loads(path.read_text())
        reports.append((path, report))
    if not reports:
        sys.exit(f"no WORLD-SEED.json in {work}")
    print("| world, seed | loop, last 4 weeks | rules | oracle | loop vs rules | share of the oracle's gain over rules | retrains / promotions | violations | wall | peak memory |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    gains, shares = [], []
    for path, r in reports:
        last = {p["policy"]: money(p["net_last_four_weeks"]) for p in r["policies"]}
        loop, rules, oracle = last.get("loop"), last.get("rules"), last.get("oracle")
        gain = (loop / rules - 1) * 100 if loop is not None and rules else None
        share = (loop - rules) / (oracle - rules) * 100 if None not in (loop, rules, oracle) and oracle != rules else None
        if gain is not None:
            gains.append(gain)
        if share is not None:
            shares.append(share)
        wall, peak = wall_and_memory(path.with_suffix(".log"))
        fmt = lambda v: f"{v:,.0f}" if v is not None else ""
        print(f"| {r['world']}, {r['seed']} | {fmt(loop)} | {fmt(rules)} | {fmt(oracle)} | "
              f"{'' if gain is None else f'{gain:+.1f} %'} | {'' if share is None else f'{share:.1f} %'} | "
              f"{r['retrains']} / {len(r['promotions'])} | {r['violations']} | {wall} | {peak} |")
    if gains:
        print(f"\nloop against the staged rules over the last four weeks: mean {statistics.mean(gains):+.1f} % "
              f"(min {min(gains):+.1f} %, max {max(gains):+.1f} %) over {len(gains)} runs; "
              f"share of the oracle's gain over the rules: mean {statistics.mean(shares):.1f} %")
    if chart:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from datetime import date
        fig, axes = plt.subplots(1, len(reports), figsize=(5.2 * len(reports), 3.6), squeeze=False)
        colours = {"loop": "#1b9e77", "rules": "#7570b3", "oracle": "#999999"}
        for ax, (path, r) in zip(axes[0], reports):
            for p in r["policies"]:
                weeks = [w["week"] for w in p["by_week"]]
                ax.plot(weeks, [money(w["net_collected"]) / 1e6 for w in p["by_week"]],
                        marker="o", markersize=3, label=p["policy"], color=colours.get(p["policy"]))
            start = date.fromisoformat(r["start"])
            for t in r["retrainings"]:
                week = (date.fromisoformat(t["day"]) - start).days // 7 + 1
                ax.axvline(week, color="#1b9e77", alpha=0.7 if t["promoted"] else 0.25,
                           linestyle="-" if t["promoted"] else ":", linewidth=1)
            ax.set_title(f"world {r['world']}, seed {r['seed']}: {r['accounts']:,} accounts")
            ax.set_xlabel("week (solid: promotion, dotted: retrain kept out)")
            ax.spines[["top", "right"]].set_visible(False)
        axes[0][0].set_ylabel(f"net collected per week (M {reports[0][1]['currency']})")
        axes[0][0].legend()
        fig.tight_layout()
        fig.savefig(chart, dpi=90)
        print(f"\nchart: {chart}")


if __name__ == "__main__":
    main()
