"""``laionflow`` command: run a stage, run the demo, query an index."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _run_stage(args: argparse.Namespace) -> int:
    from laionflow import recipes
    from laionflow.credentials import describe
    from laionflow.stages import STAGES

    logging.getLogger("laionflow").info("credentials: %s", describe())
    recipe = recipes.resolve(args.config)
    stage = STAGES[args.stage]
    func = stage.function()
    kwargs = {"force": args.force}
    if stage.per_part:
        if args.part is None:
            raise SystemExit(f"stage {args.stage} needs --part")
        kwargs["part"] = args.part
    if args.stage == "report":  # the run's own report goes next to its config
        kwargs["run_dir"] = args.config.rsplit("/", 1)[0] if "/" in args.config else "."
    summary = func(recipe, **kwargs)
    if args.summary_out:
        with open(args.summary_out, "w") as fh:
            json.dump(summary, fh, default=str)
    print(json.dumps(summary, default=str)[:2000])
    return 0


def _query(args: argparse.Namespace) -> int:
    from laionflow.query import query

    for hit in query(args.index_dir, text=args.text, image=args.image, k=args.k):
        print(f"{hit['id']:>8}  {hit['distance']:.4f}  {hit['caption']!r}  {hit['url']}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from laionflow.serve import serve

    serve(args.index_dir, host=args.host, port=args.port)
    return 0


def _report(args: argparse.Namespace) -> int:
    """Rebuild the report of a run from its folder (``ROOT/<recipe>/runs/<run>``)."""
    from laionflow import recipes
    from laionflow.reporting import ledger as report

    run_dir = args.run_dir.rstrip("/")
    out = report.run(recipes.resolve(f"{run_dir}/config.json"), run_dir=run_dir)
    print(f"report: {run_dir}/report/index.html")
    print(f"dataset card: {run_dir}/report/README.md")
    return 0 if out["balanced"] else 1


def _demo(args: argparse.Namespace) -> int:
    from laionflow.demo import run_demo

    return run_demo(args.root, rows=args.rows, parts=args.parts)


def _up(args: argparse.Namespace) -> int:
    from laionflow.up import up

    return up(args.root, rows=args.rows, parts=args.parts, port=args.port)


def _backfill(args: argparse.Namespace) -> int:
    from laionflow.backfill import api_from_env, backfill, parse_parts
    from laionflow.plan import resolve

    conf = json.loads(args.conf) if args.conf else {}
    recipe = resolve(args.dag_id, {k: v for k, v in conf.items() if k != "part_ids"})
    api = api_from_env(args.url)
    run_ids = backfill(
        api,
        args.dag_id,
        parse_parts(args.parts),
        recipe.dataset_root,
        conf,
        force=args.force,
        chunk=args.chunk,
    )
    if not run_ids:
        print("nothing to do: every requested part is complete (use --force to redo)")
    for run_id in run_ids:
        print(run_id)
    if args.wait:
        states = {r: api.wait(args.dag_id, r) for r in run_ids}
        for run_id, state in states.items():
            print(f"{run_id}: {state}")
        return 0 if all(s == "success" for s in states.values()) else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    from laionflow.stages import STAGES

    parser = argparse.ArgumentParser(prog="laionflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one stage on a resolved run config")
    run.add_argument("stage", choices=sorted(STAGES))
    run.add_argument("--config", required=True, help="run config JSON (written by the plan task)")
    run.add_argument("--part", type=int)
    run.add_argument("--force", action="store_true")
    run.add_argument("--summary-out")
    run.set_defaults(func=_run_stage)

    rep = sub.add_parser("report", help="rebuild the HTML report of a run folder")
    rep.add_argument("run_dir", help="ROOT/<recipe>/runs/<run_id>")
    rep.set_defaults(func=_report)
    demo = sub.add_parser("demo", help="build the fixture, serve it, run laion400m via dag.test()")
    demo.add_argument("--root", default="./demo-output")
    demo.add_argument("--rows", type=int, default=2000)
    demo.add_argument("--parts", type=int, default=4)
    demo.set_defaults(func=_demo)

    upp = sub.add_parser("up", help="the Airflow UI with the recipes, offline, until Ctrl-C")
    upp.add_argument("--root", default="./up-output")
    upp.add_argument("--rows", type=int, default=600, help="rows of laion400m's fixture")
    upp.add_argument("--parts", type=int, default=3, help="site default of filter.num_parts")
    upp.add_argument("--port", type=int, default=8080, help="api-server port (0: a free one)")
    upp.set_defaults(func=_up)

    q = sub.add_parser("query", help="text->image or image->image search in a built index")
    q.add_argument("index_dir")
    q.add_argument("text", nargs="?")
    q.add_argument("--image", help="query with an image file instead of text")
    q.add_argument("-k", type=int, default=5)
    q.set_defaults(func=_query)

    sv = sub.add_parser("serve", help="HTTP query service over a built index (127.0.0.1)")
    sv.add_argument("index_dir")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8765)
    sv.set_defaults(func=_serve)

    bf = sub.add_parser("backfill", help="trigger runs for part ids through the REST API")
    bf.add_argument("dag_id")
    bf.add_argument("--parts", required=True, help="e.g. 3-7,12")
    bf.add_argument("--force", action="store_true", help="also redo complete parts")
    bf.add_argument("--chunk", type=int, default=1, help="parts per run (default 1)")
    bf.add_argument("--conf", help="extra run conf as JSON (same keys as the trigger form)")
    bf.add_argument("--url", help="Airflow API URL (default $LAIONFLOW_AIRFLOW_URL or :8080)")
    bf.add_argument("--wait", action="store_true", help="wait for the runs and report states")
    bf.set_defaults(func=_backfill)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
