"""`datapilot`: analyze a file, check, cancel and list jobs through the REST API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from datapilot_cli.api import ApiError, DataPilotClient
from datapilot_cli.polling import WaitTimeout, follow_job
from datapilot_cli.render import render_job, render_jobs, render_result, visible
from datapilot_runtime.report.insights import OVERRIDE_ROLES
from datapilot_runtime.report.options import NO_OPTIONS, InvalidOptions, parse_options

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED, EXIT_TIMEOUT, EXIT_API = 0, 1, 2, 3, 4, 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datapilot", description=__doc__)
    parser.add_argument(
        "--url",
        default=os.environ.get("DATAPILOT_URL", "http://127.0.0.1:8080"),
        help="gateway URL (DATAPILOT_URL)",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("DATAPILOT_API_KEY", ""), help="(DATAPILOT_API_KEY)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser("analyze", help="upload a file and wait for its result")
    analyze.add_argument("file", type=Path)
    analyze.add_argument(
        "--max-wait",
        type=float,
        default=float(os.environ.get("CLIENT_MAX_WAIT_SECONDS", "600")),
        help="give up waiting after this many seconds (CLIENT_MAX_WAIT_SECONDS)",
    )
    analyze.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="COLUMN=ROLE",
        help=f"override a column's role (repeatable); roles: {', '.join(sorted(OVERRIDE_ROLES))}",
    )
    commands.add_parser("status", help="a job's status").add_argument("job_id")
    commands.add_parser("cancel", help="cancel a job").add_argument("job_id")
    jobs = commands.add_parser("jobs", help="your jobs, newest first")
    jobs.add_argument(
        "--status", choices=("queued", "processing", "completed", "failed", "cancelled")
    )
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--cursor")
    return parser


def _emit_json(console: Console, document: Any) -> None:
    console.print_json(json.dumps(document))


def _confirm_cancel(err: Console, job_id: str) -> bool:
    err.print(f"\nInterrupted. Cancel job {visible(job_id)}? [y/N] ", end="", markup=False)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _options_json(role_args: list[str]) -> str:
    """`--role COLUMN=ROLE` arguments as options JSON; raises InvalidOptions."""
    roles: dict[str, str] = {}
    for argument in role_args:
        column, equals, role = argument.rpartition("=")  # a column name may hold '='
        if not equals or not column:
            raise InvalidOptions(f"--role {argument!r}: expected COLUMN=ROLE")
        roles[column] = role
    options = parse_options(json.dumps({"roles": roles})) if roles else NO_OPTIONS
    return options.to_json()


def _analyze(client: DataPilotClient, args: argparse.Namespace, out: Console, err: Console) -> int:
    path: Path = args.file
    if not path.is_file():
        err.print(f"no such file: {visible(path)}", markup=False)
        return EXIT_USAGE
    try:
        options_json = _options_json(args.role)
    except InvalidOptions as exc:
        err.print(f"error: {visible(exc)}", markup=False)
        return EXIT_USAGE
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(
            f"uploading {escape(visible(path.name))}", total=path.stat().st_size
        )
        job, retry_after = client.upload(
            path, lambda n: progress.advance(task, n), options_json=options_json
        )
    job_id = job["jobId"]
    err.print(
        f"job {visible(job_id)} queued; waiting (Ctrl-C to stop waiting or cancel)", markup=False
    )
    try:
        with err.status("processing…") as status:
            job = follow_job(
                lambda: client.events(job_id),
                lambda: client.status(job_id),
                max_wait=args.max_wait,
                retry_after=retry_after,
                on_update=lambda j: status.update(
                    escape(visible(f"{j['status']} {j['progress']}%"))
                ),
            )
    except KeyboardInterrupt:
        if _confirm_cancel(err, job_id):
            client.cancel(job_id)
            err.print(f"job {visible(job_id)} cancelled", markup=False)
            return EXIT_CANCELLED
        err.print(
            f"job {visible(job_id)} keeps running; "
            f"check it with: datapilot status {visible(job_id)}",
            markup=False,
        )
        return EXIT_CANCELLED
    except WaitTimeout:
        err.print(
            f"job {visible(job_id)} still running after {args.max_wait:g}s; "
            f"datapilot status {visible(job_id)}",
            markup=False,
        )
        return EXIT_TIMEOUT
    if job["status"] == "completed":
        result = client.result(job_id)
        if args.json:
            _emit_json(out, result)
        else:
            render_result(out, result)
        return EXIT_OK
    if args.json:
        _emit_json(out, job)
    else:
        render_job(out, job)
    return EXIT_CANCELLED if job["status"] == "cancelled" else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Console(highlight=False, soft_wrap=args.json)
    err = Console(stderr=True, highlight=False)
    client = DataPilotClient(args.url, args.api_key)
    try:
        if args.command == "analyze":
            return _analyze(client, args, out, err)
        if args.command == "status":
            job = client.status(args.job_id)
        elif args.command == "cancel":
            job = client.cancel(args.job_id)
        else:
            page = client.jobs(args.status, args.limit, args.cursor)
            _emit_json(out, page) if args.json else render_jobs(out, page)
            return EXIT_OK
        _emit_json(out, job) if args.json else render_job(out, job)
        return EXIT_OK
    except ApiError as exc:
        err.print(f"error: {visible(exc)}", markup=False)
        return EXIT_API
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
