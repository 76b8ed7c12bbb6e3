"""`afx` command line: parse, dispatch to one function per command, map errors to exit statuses.

Commands live in afx/cli/commands/*.py as plain functions returning an int (pre-commit
style); this module only declares the click interface. Heavy imports (yaml, jsonschema,
jinja2) happen inside the commands so `afx --version` stays fast.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from afx import __version__
from afx.cli.env import Environment
from afx.errors import AfxError, ExitStatus, SpecError


def _env(ctx: click.Context) -> Environment:
    env = ctx.find_object(Environment)
    if env is None:  # pragma: no cover - main() always provides one
        env = ctx.ensure_object(Environment)
    return env


def _set_json(ctx: click.Context, _p: click.Parameter, value: bool) -> None:
    if value:
        _env(ctx).json = True


def _set_quiet(ctx: click.Context, _p: click.Parameter, value: int) -> None:
    if value:
        _env(ctx).verbosity = -value
        _setup_logging(_env(ctx))


def _set_verbose(ctx: click.Context, _p: click.Parameter, value: int) -> None:
    if value:
        _env(ctx).verbosity = value
        _setup_logging(_env(ctx))


def _set_color(ctx: click.Context, _p: click.Parameter, value: str | None) -> None:
    if value:
        _env(ctx).color_mode = value


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--json, -q, -v and --color, accepted before or after the command name."""
    for decorator in reversed([
        click.option("--json", "json_", is_flag=True, expose_value=False, callback=_set_json,
                     help="Machine-readable JSON on stdout."),
        click.option("-q", "--quiet", count=True, expose_value=False, callback=_set_quiet,
                     help="Only errors."),
        click.option("-v", "--verbose", count=True, expose_value=False, callback=_set_verbose,
                     help="More detail (repeat for more)."),
        click.option("--color", type=click.Choice(["auto", "always", "never"]), default=None,
                     expose_value=False, callback=_set_color,
                     help="Colour output (auto honours NO_COLOR and non-terminals)."),
    ]):
        f = decorator(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="afx", message="%(prog)s %(version)s")
@output_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """afx: short-form video production as code.

    Specs are YAML files in a spec repo (a folder with afx.yaml); see `afx init`.
    Exit statuses: 0 ok, 1 stale, 2 invalid spec or usage, 3 stage failed,
    4 remote API error, 130 interrupted.
    """
    _setup_logging(_env(ctx))


class _EnvHandler(logging.Handler):
    """Log records to the stderr of the Environment of the command now running."""

    env: Environment | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.env is not None:
            self.env.error(self.format(record))


_handler = _EnvHandler()
_handler.setFormatter(logging.Formatter("afx: %(name)s: %(message)s"))


def _setup_logging(env: Environment) -> None:
    """afx's own logger (yt-dlp's messages go through it too): warnings, -v info, -vv debug."""
    logger = logging.getLogger("afx")
    if _handler not in logger.handlers:
        logger.addHandler(_handler)
        logger.propagate = False
    _handler.env = env
    logger.setLevel(logging.WARNING if env.verbosity <= 0 else logging.INFO if env.verbosity == 1
                    else logging.DEBUG)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--strict", is_flag=True, help="A local media file that is missing is an error, not a warning.")
@output_options
@click.pass_context
def validate(ctx: click.Context, paths: tuple[str, ...], strict: bool) -> int:
    """Check spec files: schema, templates, variables, matrix, local files.

    PATHS are spec files or folders (default: the spec repo around the current folder, or
    ./specs). Every problem in every file is reported, as file:line:col: field: message.
    A local media file that is not on disk (media are often not in git) is a warning;
    `afx run` needs it.
    """
    from afx.cli.commands.validate import validate as run

    return run(_env(ctx), paths, strict)


@cli.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--api", is_flag=True, help="Print the exact AuraFlux POST /jobs body instead.")
@output_options
@click.pass_context
def resolve(ctx: click.Context, targets: tuple[str, ...], api: bool) -> int:
    """Print fully resolved jobs: templates merged, matrix expanded, variables rendered.

    TARGETS are job names (a matrix spec's name selects all its jobs) or spec files.
    """
    from afx.cli.commands.resolve import resolve as run

    return run(_env(ctx), targets, api=api)


@cli.command()
@click.argument("kind", type=click.Choice(["job", "template", "config"]), required=False)
@click.option("--write", "write_dir", type=click.Path(file_okay=False, path_type=str),
              help="Write all schemas into this folder instead of printing one.")
@output_options
@click.pass_context
def schema(ctx: click.Context, kind: str | None, write_dir: str | None) -> int:
    """Print a JSON Schema (default: job), or write all of them with --write DIR."""
    from afx.cli.commands.schema import schema as run

    return run(_env(ctx), kind or "job", write_dir)


@cli.command()
@click.argument("directory", type=click.Path(path_type=str))
@output_options
@click.pass_context
def init(ctx: click.Context, directory: str) -> int:
    """Create a spec repo in DIRECTORY: afx.yaml, an example job and template, schemas."""
    from afx.cli.commands.init import init as run

    return run(_env(ctx), directory)


def _split_force(force: tuple[str, ...], targets: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """`--force` takes an optional STAGE; a value that is no stage was a target after a bare --force."""
    if not force:
        return [], list(targets)
    from afx.engine.runner import load_pipeline

    names = load_pipeline().names
    stages, extra = [], list(targets)
    for value in force:
        if value == "*" or value in names:
            stages.append(value)
        else:
            stages.append("*")
            extra.insert(0, value)
    return stages, extra


_force_option = click.option(
    "--force", "force", multiple=True, is_flag=False, flag_value="*", metavar="[STAGE]",
    help="Rerun STAGE even if it is up to date (every stage without a value); later stages rerun "
         "only if its output changes.")
_until_option = click.option("--until", metavar="STAGE", help="Stop after STAGE (ingest, script, render, package).")
_cache_option = click.option(
    "--cache", "cache", metavar="URL",
    help="A remote stage cache shared by every clone and runner: s3://bucket/prefix, any fsspec URL, "
         "or a folder (wins over afx.yaml's cache.remote). Finished stages are fetched from it, new ones "
         "published to it.")


@cli.command("run")
@click.argument("targets", nargs=-1)
@click.option("-j", "--jobs", "jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Jobs to run at once, each in its own process.")
@click.option("-k", "--keep-going", is_flag=True, help="Keep running other jobs after one fails.")
@_force_option
@_until_option
@click.option("-n", "--dry-run", is_flag=True, help="Show what would run and why; run nothing.")
@click.option("--no-wait", is_flag=True, help="Fail at once if another run holds this repo (exit 3).")
@_cache_option
@click.option("--shard", metavar="I/N",
              help="Run only the I-th of N parts of the jobs (by a stable hash of each job's name), for N CI "
                   "runners; `afx lock merge` joins their afx.lock files.")
@output_options
@click.pass_context
def run_command(ctx: click.Context, targets: tuple[str, ...], jobs: int, keep_going: bool,
                force: tuple[str, ...], until: str | None, dry_run: bool, no_wait: bool, cache: str | None,
                shard: str | None) -> int:
    """Run the stale stages of jobs (default: every job) and update out/ and afx.lock.

    TARGETS are job names, matrix base names, or spec files and folders. Each stage reruns
    only when what it reads changed; the reason is shown.
    """
    from afx.cli.commands.run import run as run_cmd

    stages, targets_ = _split_force(force, targets)
    return run_cmd(_env(ctx), targets_, jobs=jobs, keep_going=keep_going, force=stages, until=until,
                   dry_run=dry_run, wait=not no_wait, cache=cache, shard=shard)


@cli.command()
@click.argument("targets", nargs=-1)
@_force_option
@_until_option
@click.option("--check", is_flag=True, help="Exit 1 if anything would run.")
@_cache_option
@output_options
@click.pass_context
def plan(ctx: click.Context, targets: tuple[str, ...], force: tuple[str, ...], until: str | None,
         check: bool, cache: str | None) -> int:
    """Show, per job and stage, `up to date` or `will run` with the first reason."""
    from afx.cli.commands.run import plan as plan_cmd

    stages, targets_ = _split_force(force, targets)
    return plan_cmd(_env(ctx), targets_, force=stages, until=until, check=check, cache=cache)


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("--check", is_flag=True, help="Exit 1 if any job is stale (for CI).")
@_cache_option
@output_options
@click.pass_context
def status(ctx: click.Context, targets: tuple[str, ...], check: bool, cache: str | None) -> int:
    """One line per job: up to date, or stale with the first reason."""
    from afx.cli.commands.run import plan as plan_cmd

    return plan_cmd(_env(ctx), targets, check=check, brief=True, cache=cache)


@cli.command()
@click.argument("targets", nargs=-1)
@output_options
@click.pass_context
def verify(ctx: click.Context, targets: tuple[str, ...]) -> int:
    """Check the files in out/ against afx.lock (exit 1 on any difference)."""
    from afx.cli.commands.verify import verify as verify_cmd

    return verify_cmd(_env(ctx), targets)


@cli.command("publish")
@click.argument("targets", nargs=-1)
@click.option("--due", is_flag=True, help="Publish every scheduled job whose time has come (safe from cron).")
@click.option("--again", is_flag=True,
              help="Post the job's current video where a platform has an older render of it (a new post).")
@output_options
@click.pass_context
def publish_command(ctx: click.Context, targets: tuple[str, ...], due: bool, again: bool) -> int:
    """Publish jobs now (manual ones too), or with --due every scheduled job that is due.

    Idempotent: a platform never gets a job twice (the publish ledger), and concurrent calls
    wait for each other. After a published job changed (a fixed typo, a new cut), --again
    posts the new video where the post is of an older one; the earlier post is not removed.
    """
    from afx.cli.commands.publishing import publish

    return publish(_env(ctx), targets, due=due, again=again)


@cli.command()
@click.argument("targets", nargs=-1, required=True)
@output_options
@click.pass_context
def approve(ctx: click.Context, targets: tuple[str, ...]) -> int:
    """Release staged jobs (staging: true) for publishing, and run them."""
    from afx.cli.commands.publishing import approve as approve_cmd

    return approve_cmd(_env(ctx), targets)


@cli.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--at", "at", metavar="TIME", help="RFC 3339 time, e.g. 2026-05-26T09:00:00Z.")
@click.option("--clear", is_flag=True, help="Unschedule.")
@output_options
@click.pass_context
def schedule(ctx: click.Context, targets: tuple[str, ...], at: str | None, clear: bool) -> int:
    """Set (--at) or clear (--clear) when jobs publish; wins over the spec's scheduledAt."""
    from afx.cli.commands.publishing import schedule as schedule_cmd

    return schedule_cmd(_env(ctx), targets, at=at, clear=clear)


@cli.command()
@click.argument("targets", nargs=-1)
@output_options
@click.pass_context
def jobs(ctx: click.Context, targets: tuple[str, ...]) -> int:
    """List jobs: built or stale, publish mode, and the state on each platform."""
    from afx.cli.commands.publishing import jobs as jobs_cmd

    return jobs_cmd(_env(ctx), targets)


@cli.command("report")
@click.argument("targets", nargs=-1)
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=str),
              help="Where to write the page (default: out/report.html).")
@output_options
@click.pass_context
def report_command(ctx: click.Context, targets: tuple[str, ...], output: str | None) -> int:
    """Write one static HTML page about the jobs' results (out/report.html)."""
    from afx.cli.commands.report import report as report_cmd

    return report_cmd(_env(ctx), targets, output)


@cli.group()
def cache() -> None:
    """The artifact store (.afx/, or AFX_CACHE_DIR)."""


@cache.command("info")
@output_options
@click.pass_context
def cache_info(ctx: click.Context) -> int:
    """Where the store is and what it holds."""
    from afx.cli.commands.cache import info

    return info(_env(ctx))


@cache.command("gc")
@click.option("-n", "--dry-run", is_flag=True, help="Only say what would be dropped.")
@output_options
@click.pass_context
def cache_gc(ctx: click.Context, dry_run: bool) -> int:
    """Drop stage outputs and objects that no afx.lock entry references."""
    from afx.cli.commands.cache import gc

    return gc(_env(ctx), dry_run=dry_run)


@cli.group("lock")
def lock_group() -> None:
    """afx.lock: what each job's outputs were built from."""


@lock_group.command("merge")
@click.argument("shard_locks", nargs=-1, required=True, type=click.Path(dir_okay=False))
@output_options
@click.pass_context
def lock_merge(ctx: click.Context, shard_locks: tuple[str, ...]) -> int:
    """Join the afx.lock files of `afx run --shard i/N` runs into this checkout's afx.lock:
    the afx.lock one full `afx run` would write."""
    from afx.cli.commands.lock import merge

    return merge(_env(ctx), [Path(p) for p in shard_locks])


_data_dir = click.option("--data-dir", envvar="AFX_DATA_DIR", type=click.Path(file_okay=False),
                         help="Where the server keeps its database, uploads, cache and outputs "
                              "(default: ~/.local/share/afx/server; AFX_DATABASE_URL for Postgres).")


_heartbeat = click.option("--heartbeat", type=click.FloatRange(0.1, 3600), envvar="AFX_WORKER_HEARTBEAT",
                          help="PostgreSQL: seconds between a worker's heartbeats (default 5).")
_stalled = click.option("--stalled-after", type=click.FloatRange(0.5, 86400), envvar="AFX_STALLED_AFTER",
                        help="PostgreSQL: seconds without a heartbeat after which a worker's jobs are taken "
                             "back: requeued, or failed and refunded after --attempts runs (default 30).")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@_data_dir
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Jobs run at once.")
@click.option("--rate-limit", default=60, show_default=True, type=click.IntRange(1, 10**9),
              help="Requests per minute per API key.")
@click.option("--max-active", default=10, show_default=True, type=click.IntRange(1, 10**6),
              help="Queued + running jobs per account.")
@click.option("--config", type=click.Path(dir_okay=False, exists=True),
              help="afx.yaml-style settings for jobs (fetch allow-list, publishers); default: DATA_DIR/afx.yaml.")
@click.option("--max-upload", type=click.IntRange(1), default=500 * 1024 * 1024, hidden=True,
              help="Upload limit in bytes (tests use a small one).")
@click.option("--attempts", type=click.IntRange(1, 100), default=3, hidden=True,
              help="Runs a job gets when the server keeps stopping under it.")
@click.option("--tick", type=click.FloatRange(0.05, 3600), default=1.0, hidden=True,
              help="Seconds between checks for scheduled publishes.")
@click.option("--no-workers", is_flag=True,
              help="Answer the API only: `afx worker` processes (here or on other machines) run the jobs.")
@_heartbeat
@_stalled
@output_options
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, data_dir: str | None, workers: int, rate_limit: int,
          max_active: int, config: str | None, max_upload: int, attempts: int, tick: float, no_workers: bool,
          heartbeat: float | None, stalled_after: float | None) -> int:
    """Serve the AuraFlux v1 API (under /v1) over afx's engine."""
    from afx.cli.commands.serve import serve as serve_cmd

    return serve_cmd(_env(ctx), host=host, port=port, data_dir=data_dir, workers=workers, rate_limit=rate_limit,
                     max_active=max_active, config=config, max_upload=max_upload, attempts=attempts, tick=tick,
                     no_workers=no_workers, heartbeat=heartbeat, stalled=stalled_after)


@cli.command("worker")
@_data_dir
@click.option("--workers", "-j", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Jobs this process runs at once (each in a process of its own).")
@click.option("--config", type=click.Path(dir_okay=False, exists=True),
              help="afx.yaml-style settings for jobs (fetch allow-list, publishers); default: DATA_DIR/afx.yaml.")
@click.option("--attempts", type=click.IntRange(1, 100), default=3, hidden=True,
              help="Runs a job gets when its worker keeps stopping under it.")
@click.option("--tick", type=click.FloatRange(0.05, 3600), default=1.0, hidden=True,
              help="Seconds between checks for scheduled publishes and stalled jobs.")
@_heartbeat
@_stalled
@output_options
@click.pass_context
def worker_command(ctx: click.Context, data_dir: str | None, workers: int, config: str | None, attempts: int,
                   tick: float, heartbeat: float | None, stalled_after: float | None) -> int:
    """Run the API's jobs (beside `afx serve --no-workers`), until SIGTERM.

    Any number of these, on any machine that reaches the database (AFX_DATABASE_URL) and
    the object store (AFX_STORAGE_URL; without one, a data dir they share). Stopped, it puts
    its running jobs back in the queue.
    """
    from afx.cli.commands.serve import worker

    return worker(_env(ctx), data_dir=data_dir, workers=workers, config=config, attempts=attempts, tick=tick,
                  heartbeat=heartbeat, stalled=stalled_after)


@cli.group()
def keys() -> None:
    """API keys for `afx serve`."""


@keys.command("create")
@_data_dir
@click.option("--plan", type=click.Choice(["operate", "guided"]), default="operate", show_default=True)
@click.option("--credits", type=click.IntRange(0, 10**9), help="Credits to start with (default: the plan's 50).")
@click.option("--account", help="Add a key to this existing account instead of creating one.")
@output_options
@click.pass_context
def keys_create(ctx: click.Context, data_dir: str | None, plan: str, credits: int | None, account: str | None) -> int:
    """Create an account (or use --account) and print a new af_live_ key, once."""
    from afx.cli.commands.serve import create_key

    return create_key(_env(ctx), data_dir=data_dir, plan=plan, credits=credits, account=account)


_api_url = click.option("--api-url", metavar="URL",
                        help="An AuraFlux-compatible API, e.g. https://api.auraflux.co/v1 (default: AFX_API_URL). "
                             "The key comes from AFX_API_KEY.")


@cli.command("push")
@click.argument("targets", nargs=-1)
@_api_url
@click.option("--no-wait", is_flag=True, help="Upload and submit only; do not wait for the results.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=3600, show_default=True,
              metavar="SECONDS", help="How long to wait for every job to finish (exit 4 after).")
@output_options
@click.pass_context
def push_command(ctx: click.Context, targets: tuple[str, ...], api_url: str | None, no_wait: bool,
                 timeout: float) -> int:
    """Make jobs on an AuraFlux-compatible API and download their results into out/.

    TARGETS are job names, matrix base names, or spec files and folders (default: every
    job). Local files are uploaded once; pushing an unchanged job again creates nothing
    new (Idempotency-Key, and the remote ids in afx.lock). Exit 3 if a remote job failed.
    """
    from afx.cli.commands.push import push

    return push(_env(ctx), targets, api_url=api_url, wait=not no_wait, timeout=timeout)


@cli.group()
def remote() -> None:
    """Jobs on an AuraFlux-compatible API (AFX_API_URL or --api-url, AFX_API_KEY).

    JOB is a remote id (job_...) or the name of a local job `afx push` sent there.
    """


@remote.command("jobs")
@_api_url
@click.option("--status", type=click.Choice(["queued", "running", "complete", "published", "failed", "cancelled"]),
              help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--parent", "parent", metavar="JOB", help="Only the clip jobs of this job with clips (afx serve).")
@output_options
@click.pass_context
def remote_jobs(ctx: click.Context, api_url: str | None, status: str | None, limit: int, offset: int,
                parent: str | None) -> int:
    """List the account's jobs, newest first (a parent's clip jobs in rank order)."""
    from afx.cli.commands.remote import jobs as jobs_cmd

    return jobs_cmd(_env(ctx), api_url=api_url, status=status, limit=limit, offset=offset, parent=parent)


@remote.command("show")
@click.argument("job")
@_api_url
@output_options
@click.pass_context
def remote_show(ctx: click.Context, job: str, api_url: str | None) -> int:
    """A job's status, stage, output and publish results."""
    from afx.cli.commands.remote import show

    return show(_env(ctx), job, api_url=api_url)


@remote.command("cancel")
@click.argument("job")
@_api_url
@output_options
@click.pass_context
def remote_cancel(ctx: click.Context, job: str, api_url: str | None) -> int:
    """Cancel a queued or running job."""
    from afx.cli.commands.remote import cancel

    return cancel(_env(ctx), job, api_url=api_url)


@remote.command("approve")
@click.argument("job")
@_api_url
@output_options
@click.pass_context
def remote_approve(ctx: click.Context, job: str, api_url: str | None) -> int:
    """Approve a staged job (staging: true) for publishing."""
    from afx.cli.commands.remote import approve as approve_cmd

    return approve_cmd(_env(ctx), job, api_url=api_url)


@remote.command("schedule")
@click.argument("job")
@click.option("--at", "at", metavar="TIME", help="RFC 3339 time, e.g. 2026-05-26T09:00:00Z.")
@click.option("--clear", is_flag=True, help="Unschedule.")
@_api_url
@output_options
@click.pass_context
def remote_schedule(ctx: click.Context, job: str, at: str | None, clear: bool, api_url: str | None) -> int:
    """Set (--at) or clear (--clear) when a job publishes."""
    from afx.cli.commands.remote import schedule as schedule_cmd

    return schedule_cmd(_env(ctx), job, api_url=api_url, at=at, clear=clear)


@remote.command("account")
@_api_url
@output_options
@click.pass_context
def remote_account(ctx: click.Context, api_url: str | None) -> int:
    """The account's plan, credits, rate limit and active jobs (checks the key works)."""
    from afx.cli.commands.remote import account

    return account(_env(ctx), api_url=api_url)


def report(env: Environment, exc: AfxError) -> None:
    if env.json:
        env.emit_json(exc.to_dict())
        return
    if isinstance(exc, SpecError):
        for d in exc.diagnostics:
            where = env.style(d.location(), bold=True)
            field = f"{env.style(d.path, fg='cyan')}: " if d.path else ""
            hint = f"; {env.style(d.hint, fg='yellow')}" if d.hint else ""
            env.error(f"{where}: {field}{d.message}{hint}")
        env.error(env.style(f"afx: {exc.message}", fg="red", bold=True))
        return
    hint = f"\n  {exc.hint}" if exc.hint else ""
    env.error(env.style("afx: error: ", fg="red", bold=True) + exc.message + hint)


def run(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run afx with `argv`; return the exit status instead of exiting (tests call this)."""
    env = env or Environment()
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="afx",
                          standalone_mode=False, obj=env)
    except AfxError as exc:
        report(env, exc)
        return int(exc.exit_status)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show(file=env.stderr)
        return int(ExitStatus.INVALID)
    except (click.Abort, KeyboardInterrupt):
        env.error("afx: interrupted")
        return int(ExitStatus.INTERRUPTED)
    return int(result or 0)


def main() -> None:
    sys.exit(run())
