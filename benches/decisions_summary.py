#!/usr/bin/env python3
"""Summarise benches/decisions.sh: a Markdown table per world of each policy's
share of the oracle's uplift over doing nothing, seed by seed.

    python3 benches/decisions_summary.py WORK_DIR

WORK_DIR holds one folder per run, named WORLD-SEED, each with the
`evaluate-policy --json` output `policy.json` (and, when there, the peers'
`peers.log` and `train-seconds.txt`). Rows: the project's plan, the staged
rules baseline and every peer (`--decisions` policy); columns: the share per
seed, mean, min–max, and decisions on a blocked strategy and beyond a
capacity, summed over the seeds. Below each table: in how many seeds the plan
beat the best peer. Standard library only.
"""
import json
import re
import statistics
import sys
from pathlib import Path

PLAN = "plan (this model)"
BASELINE = "staged rules baseline"
NOT_PEERS = {PLAN, BASELINE, "none for everyone", "oracle (true values)"}


def runs(work: Path):
    """{world: {seed: run folder}}, seeds in numeric order."""
    found = {}
    for path in sorted(work.iterdir()):
        match = re.fullmatch(r"(.+)-(\d+)", path.name)
        if match and (path / "policy.json").is_file():
            found.setdefault(match[1], {})[int(match[2])] = path
    return {w: dict(sorted(seeds.items())) for w, seeds in sorted(found.items())}


def percent(share):
    return "–" if share is None else f"{100 * share:.1f}"


def fit_seconds(folder: Path):
    """{peer: fit seconds} from peers.py's log lines `NAME: fit 12.3 s; …`."""
    log = folder / "peers.log"
    if not log.is_file():
        return {}
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\w+): fit ([0-9.]+) s", log.read_text(), re.M)}


def world_table(world, seeds):
    reports = {seed: json.loads((folder / "policy.json").read_text()) for seed, folder in seeds.items()}
    by_policy = {}
    for seed, report in reports.items():
        for row in report["policies"]:
            by_policy.setdefault(row["policy"], {})[seed] = row
    peers = [p for p in by_policy if p not in NOT_PEERS and not p.startswith("logged")]
    order = [p for p in (PLAN, BASELINE) if p in by_policy] + peers
    accounts = {r["accounts"] for r in reports.values()}
    lines = [
        f"### world {world} ({', '.join(map(str, sorted(accounts)))} accounts, {len(seeds)} seeds)",
        "",
        "Share of the oracle's uplift over doing nothing, in %.",
        "",
        "| policy | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | min–max | blocked | over capacity |",
        "|---|" + "---:|" * (len(seeds) + 4),
    ]
    for policy in order:
        rows = by_policy[policy]
        shares = [rows[s]["uplift_share"] if s in rows else None for s in seeds]
        known = [x for x in shares if x is not None]
        mean = percent(statistics.fmean(known)) if known else "–"
        spread = f"{percent(min(known))}–{percent(max(known))}" if known else "–"
        blocked = sum(r.get("violations", 0) or 0 for r in rows.values())
        over = sum(r.get("over_capacity", 0) or 0 for r in rows.values())
        lines.append(f"| {policy} | " + " | ".join(percent(x) for x in shares)
                     + f" | {mean} | {spread} | {blocked} | {over} |")
    lines.append("")
    if PLAN in by_policy and peers:
        wins, compared = 0, 0
        for seed in seeds:
            plan = by_policy[PLAN].get(seed, {}).get("uplift_share")
            rivals = [by_policy[p][seed]["uplift_share"] for p in peers
                      if seed in by_policy[p] and by_policy[p][seed]["uplift_share"] is not None]
            if plan is None or not rivals:
                continue
            compared += 1
            wins += plan > max(rivals)
        lines.append(f"The plan beat the best peer in **{wins} of {compared}** seeds.")
    timing = {}
    for folder in seeds.values():
        for peer, s in fit_seconds(folder).items():
            timing.setdefault(peer, []).append(s)
        train = folder / "train-seconds.txt"
        if train.is_file():
            timing.setdefault("prioritize train", []).append(float(train.read_text().split()[0]))
    if timing:
        lines.append("Fit seconds (mean, min–max): " + "; ".join(
            f"{name} {statistics.fmean(v):.1f} ({min(v):.1f}–{max(v):.1f})" for name, v in timing.items()) + ".")
    total_blocked = sum(r.get("violations", 0) or 0 for rows in by_policy.values() for r in rows.values())
    lines.append(f"Decisions on a blocked strategy, all policies and seeds: {total_blocked}.")
    return "\n".join(lines)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    work = Path(sys.argv[1])
    found = runs(work)
    if not found:
        sys.exit(f"error: no WORLD-SEED/policy.json under {work}")
    print("\n\n".join(world_table(world, seeds) for world, seeds in found.items()))


if __name__ == "__main__":
    main()
