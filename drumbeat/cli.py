"""Command line: drumbeat serve | worker | demo | migrate | init-workspace | docs."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from drumbeat import logs
from drumbeat.config import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Drumbeat outreach engine.")


def _context(settings: Settings, **options):
    from drumbeat.bootstrap import build_context

    return build_context(settings, **options)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    logs.configure()
    _context(Settings())
    typer.echo("schema is up to date", err=True)


@app.command("init-workspace")
def init_workspace(name: str, owner: Annotated[str, typer.Option("--owner", help="owner's email")],
                   password: Annotated[str | None, typer.Option("--password")] = None) -> None:
    """Create a workspace and its owner; prints one JSON line with the owner's token."""
    logs.configure()
    from drumbeat.services.passwords import hash_password
    from drumbeat.services.workspaces import init_workspace as init

    ctx = _context(Settings())
    boot = init(ctx, name, owner, hash_password(password) if password else None)
    typer.echo(json.dumps(boot))


@app.command()
def worker(concurrency: Annotated[int, typer.Option(min=1, max=10_000)] = 32,
           lanes: Annotated[int, typer.Option(min=1, max=16, help=(
               "claim loops in this process, each on its own thread and database connection with its share of "
               "--concurrency: one lane's Python work overlaps another's wait for the database"))] = 1,
           metrics_port: Annotated[int | None, typer.Option(min=0, max=65535, help=(
               "serve Prometheus metrics on this port (0: any free port, logged)"))] = None,
           metrics_host: Annotated[str, typer.Option(help="address the metrics port listens on")] = "127.0.0.1",
           ) -> None:
    """Run a worker alone (any number of them may share one PostgreSQL). SIGTERM or
    Ctrl-C: stop claiming, finish and record the calls in flight, exit 0."""
    # Catch the signal from the very start: a stop asked for during start-up is honoured.
    stop_requested = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_requested.set())
    logs.configure()
    if lanes > concurrency:
        raise typer.BadParameter(f"{lanes} lanes need a --concurrency of at least {lanes}", param_hint="--lanes")
    from drumbeat.bootstrap import build_worker

    settings = Settings()
    if lanes > 1 and settings.resolved_database_url().startswith("sqlite"):
        # One writer: lanes would only queue, and keep the write lock from other processes.
        raise typer.BadParameter("more than one lane needs PostgreSQL (SQLite has a single writer)",
                                 param_hint="--lanes")
    # No ping before each transaction: a worker retries a round that hit a dropped connection.
    ctx = _context(settings, pre_ping=False)
    shares = [concurrency // lanes + (i < concurrency % lanes) for i in range(lanes)]
    engine_worker = build_worker(ctx, settings, concurrency=shares[0])
    # Lane 0 runs here with the sweeper and notifier; each other lane on its own thread, like
    # another worker process (own lease owner and provider connections) sharing the metrics.
    others = [EmbeddedWorker(build_worker(ctx, settings, concurrency=share)) for share in shares[1:]]
    if others:
        # A lane whose database answer has arrived takes the interpreter within 0.5 ms, not 5.
        sys.setswitchinterval(0.0005)
    metrics_server = None
    if metrics_port is not None:
        from drumbeat.engine.metrics import serve_metrics

        metrics_server = serve_metrics(engine_worker.ctx, metrics_port, metrics_host)

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if stop_requested.is_set():
            stop.set()
        for lane in others:  # a lane that fails stops the process, which exits 1
            lane.on_failure = lambda: loop.call_soon_threadsafe(stop.set)
            lane.start()

        async def stop_every_lane():  # every lane stops claiming at once
            await stop.wait()
            for lane in others:
                lane.request_stop()

        stopping = asyncio.create_task(stop_every_lane())
        await run_beside(engine_worker, settings, stop)
        await stopping

    try:
        asyncio.run(main())
    finally:
        for lane in others:
            lane.stop()
        if metrics_server is not None:
            metrics_server.shutdown()
    if any(lane.failed for lane in others):
        raise typer.Exit(1)


async def run_beside(engine_worker, settings: Settings, stop: asyncio.Event) -> None:
    """The worker with the sweeper and the notifier beside it (DESIGN.md §5, §8): any
    number of processes may run them; the sweeper works in one process at a time and the
    notifier's outbox is shared safely."""
    from drumbeat.bootstrap import close_adapters
    from drumbeat.engine.notifier import Notifier
    from drumbeat.engine.sweeper import Sweeper

    tasks = [engine_worker.run(stop)]
    if settings is not None:
        tasks += [Sweeper(engine_worker.ctx, period_seconds=settings.sweep_seconds).run(stop),
                  Notifier(engine_worker.ctx, tick_seconds=settings.tick_seconds, smtp_url=settings.smtp_url,
                           public_url=settings.public_url).run(stop)]
    try:
        await asyncio.gather(*tasks)
    finally:  # the provider connections close inside the loop that opened them
        await close_adapters(engine_worker.adapters)


class EmbeddedWorker:
    """A worker on its own thread and event loop: beside the web server (with the sweeper and
    notifier: `settings`), or as another lane of `drumbeat worker`."""

    def __init__(self, worker, settings: Settings | None = None) -> None:
        self.worker = worker
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()  # bound to the loop that first waits on it
        self.thread = threading.Thread(target=self._main, name="drumbeat-worker", daemon=True)
        self.on_failure = None  # called (on this thread) if the worker ends with an error
        self.failed = False

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(run_beside(self.worker, self.settings, self.stop_event))
        except BaseException:
            self.failed = True
            if self.on_failure is not None:
                self.on_failure()
            raise

    def start(self) -> None:
        self.thread.start()

    def request_stop(self) -> None:
        """Stop claiming and finish the calls in flight (returns at once; before the loop runs
        too: the call waits for it)."""
        self.loop.call_soon_threadsafe(self.stop_event.set)

    def stop(self) -> None:
        self.request_stop()
        self.thread.join(timeout=30)


def _serve(ctx, settings: Settings, host: str, port: int, with_worker: bool, on_ready=None) -> None:
    import uvicorn

    from drumbeat.app import create_app
    from drumbeat.bootstrap import build_worker

    embedded = EmbeddedWorker(build_worker(ctx, settings), settings) if with_worker else None
    if embedded:
        embedded.start()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx, max_body_bytes=settings.max_body_bytes), host=host,
                                           port=port, log_level="warning"))
    if on_ready:
        threading.Thread(target=on_ready, args=(server,), daemon=True).start()
    try:
        server.run()
    finally:
        if embedded:
            embedded.stop()


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000,
          worker: Annotated[bool, typer.Option("--worker/--no-worker", help="run an embedded worker")] = True) -> None:
    """Serve the API and dashboard (with an embedded worker unless --no-worker)."""
    logs.configure()
    settings = Settings()
    _serve(_context(settings), settings, host, port, worker)


@app.command()
def demo(host: str = "127.0.0.1", port: int = 8000,
         leads: Annotated[int, typer.Option(min=1, max=1_000_000)] = 3000,
         exit_when_done: Annotated[bool, typer.Option(help="stop serving once the campaign finishes")] = False) -> None:
    """A demo campaign on the embedded default: SQLite, sandbox channels, dashboard served."""
    logs.configure("WARNING")
    from drumbeat.demo import prepare_demo, watch_demo

    settings = Settings()
    ctx = _context(settings)
    info = prepare_demo(ctx, leads)
    url = f"http://{host}:{port}"
    typer.echo(f"Drumbeat demo: dashboard {url}/  API {url}/docs")
    typer.echo(f"Owner token (sign in to the dashboard with it): {info['token']}")
    typer.echo(f"  curl -H 'Authorization: Bearer {info['token']}' {url}/api/v1/campaigns/{info['campaign_id']}")

    def watch(server):
        watch_demo(ctx, info)
        if exit_when_done:
            server.should_exit = True

    _serve(ctx, settings, host, port, True, on_ready=watch)


docs = typer.Typer(no_args_is_help=True, help="Documentation generated from the code.")
app.add_typer(docs, name="docs")


@docs.command("api-reference")
def api_reference(
        output: Annotated[Path, typer.Option(help="the Markdown file to write")] = Path("docs/api-reference.md"),
        check: Annotated[bool, typer.Option("--check", help=(
            "write nothing; exit 1 if the file differs from a fresh render"))] = False) -> None:
    """Render the HTTP API reference (Markdown) from the served OpenAPI document."""
    from drumbeat.api.reference import COMMAND, render
    from drumbeat.app import api_document

    text = render(api_document())
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else None
        if current != text:
            typer.echo(f"{output} is out of date with the API: run `{COMMAND}`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{output} is up to date", err=True)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)


if __name__ == "__main__":
    app()
