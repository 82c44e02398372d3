"""Joins simulated books (`prioritize simulate` folders of Parquet) into one
data folder, each shard's account and customer ids prefixed with `S<k>-` so
they stay distinct. Streams with polars' sink_parquet, so the joined book is
never held in memory.

    python benches/concat_shards.py --out DIR SHARD_DIR...
"""

import argparse
import pathlib

import polars as pl

TABLES = ["accounts", "payment_history", "actions", "outcomes"]
IDS = ["account_id", "customer_id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("shards", nargs="+", type=pathlib.Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        parts = []
        for k, shard in enumerate(args.shards):
            frame = pl.scan_parquet(shard / f"{table}.parquet")
            names = frame.collect_schema().names()
            parts.append(
                frame.with_columns(
                    (pl.lit(f"S{k}-") + pl.col(name)).alias(name) for name in IDS if name in names
                )
            )
        pl.concat(parts).sink_parquet(args.out / f"{table}.parquet", compression="zstd", compression_level=1)
        print(f"{table}: {pl.scan_parquet(args.out / f'{table}.parquet').select(pl.len()).collect().item():,} rows")


if __name__ == "__main__":
    main()
