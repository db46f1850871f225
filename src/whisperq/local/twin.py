"""The local twin of the whole pipeline, on 127.0.0.1: moto server, provisioned resources, the API
front and the event-source-mapping workers. `Twin` starts and stops all of it."""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue as stdlib_queue
import random
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from whisperq import constants, faults, queue_config
from whisperq.aws.api_keys import ApiKeys
from whisperq.aws.clients import Clients
from whisperq.aws.provision import Resources, create_bucket, provision
from whisperq.aws.traces import Traces
from whisperq.config import Settings
from whisperq.core.capacity import FUNCTION_MEMORY_MB, LAMBDA_MEMORY_ENV, engine_threads
from whisperq.core.errors import ExitCode, WhisperqError
from whisperq.core.tiers import Tier
from whisperq.local import api_process, esm, memory, moto_process, state, xray
from whisperq.local.senders import CallbackSenders
from whisperq.transcriber import reaper

_log = logging.getLogger("whisperq.twin")

# moto accepts any credentials; fixed ones keep a user's real AWS keys out of the twin.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "whisperq-local",
    "AWS_SECRET_ACCESS_KEY": "whisperq-local",
    "AWS_SESSION_TOKEN": "whisperq-local",
}
TRANSCRIBER_FUNCTION = "whisperq-transcriber"
API_FUNCTION = "whisperq-api"


class TwinAlreadyRunning(WhisperqError):
    """Another twin already runs with this state directory."""

    exit_code = ExitCode.TWIN_RUNNING


class TwinStartError(WhisperqError):
    """A part of the twin did not start."""

    exit_code = ExitCode.TWIN_START


@dataclass
class Twin:
    """One local pipeline. `start()` brings it up, `stop()` takes every process down again."""

    api_port: int = 0
    state_directory: Path | None = None  # None: a private twin that writes no state file
    workers: int | None = None  # for each model tier; None: queue_config.max_concurrency
    worker_ready_timeout_s: float = 180.0
    stop_grace_s: float = 30.0
    environ: dict[str, str] = field(default_factory=dict)
    log_file: str | None = None  # default: twin.log in the state directory, else the terminal
    extra_api_keys: list[str] = field(default_factory=list)  # more clients (tests of key isolation)
    tracing: bool = True  # an X-Ray collector where the daemon would be, traces kept in moto's X-Ray

    def __post_init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        # What runs besides the workers, in the order it started (moto's server or two, the X-Ray
        # collector, the API front): stop() ends them in the reverse order.
        self._parts: list[_Process | xray.Collector] = []
        self._collector: xray.Collector | None = None
        self._api_url = ""
        self._workers: list[Any] = []
        self._worker_tiers: list[Tier] = []  # the tier each worker (by index) serves
        self._ready: Any = None
        self.settings: Settings | None = None
        self.resources: Resources | None = None
        self.endpoint_url = ""
        self.dynamodb_endpoint_url = ""
        self.log_path: str | None = self.log_file
        self._child_env: dict[str, str] = {}
        # API Gateway would issue these: one key for this twin's user, and a callback signing secret.
        self.api_key = "wq_" + secrets.token_urlsafe(24)
        self.callback_secret = secrets.token_urlsafe(32)
        self.api_key_ids: dict[str, str] = {}
        # A thread that replaces workers that died (a crash, an invocation ended at its timeout), as Lambda
        # replaces a container, and in chaos runs kills one every kill_every_s.
        self._supervisor: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._senders: CallbackSenders | None = None
        self._supervisor_stop = threading.Event()
        self._workers_lock = threading.Lock()
        self.workers_killed = 0
        self.workers_replaced = 0
        self.jobs_reaped = 0
        self._replaced: list[int] = []  # indexes of workers replaced since take_replacements()

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> Twin:
        if self.state_directory is not None:
            running = state.read_state(self.state_directory)
            if running:
                raise TwinAlreadyRunning(
                    f"a local twin is already running (pid {running['pid']}, API {running['apiUrl']}); "
                    "stop it with `whisperq local down` (or Ctrl-C in its terminal) first"
                )
            self.state_directory.mkdir(parents=True, exist_ok=True)
            self.log_path = str(self.state_directory / "twin.log")
        try:
            self._start_moto()
            self._start_collector()
            self._configure()
            assert self.settings is not None
            clients = Clients(self.settings, LOCAL_CREDENTIALS)
            self.resources = provision(clients, self.settings)
            for bucket in self.settings.granted_buckets:  # stand-ins for a user's own buckets of audio
                create_bucket(clients, bucket, self.settings.region)
            self._register_keys()
            self._start_front()
            self._start_workers()
            self._start_supervisor()
            if self.state_directory is not None:
                state.write_state(self.state_directory, self.describe())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop workers (they finish or release what they hold), the front, then moto."""
        self._stop_supervisor()
        self.stop_workers()
        while self._parts:  # the front first, the collector (it forwards what came last) before moto
            self._parts.pop().stop()
        self._collector = None
        if self.state_directory is not None:
            state.remove_state(self.state_directory, os.getpid())

    def stop_workers(self) -> None:
        """SIGTERM every worker: each stops polling, finishes its batch (or gives back, at visibility
        0, what it had received and not started) and exits; one that outlives the grace period is
        killed, and its messages return after their visibility timeout: nothing is lost."""
        with self._workers_lock:
            for process in self._workers:
                if process.is_alive():
                    process.terminate()
            deadline = time.monotonic() + self.stop_grace_s
            for process in self._workers:
                process.join(timeout=max(0.1, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
                    process.join(timeout=5)
            self._workers = []

    def restart_workers(self, environ: dict[str, str | None]) -> None:
        """Stop the workers, change their environment (None removes a variable), start them again:
        a new deployment of the function, as when a chaos run switches its faults off."""
        self._stop_supervisor()
        self.stop_workers()
        for name, value in environ.items():
            if value is None:
                self._child_env.pop(name, None)
            else:
                self._child_env[name] = value
        self._start_workers()
        self._start_supervisor()

    def _reap(self) -> None:
        """The scheduled function of AWS (ReaperFunction), in a thread of its own: it ends the jobs whose
        worker died with a last delivery (a callback it sends may take a while)."""
        assert self.settings is not None
        the_reaper = reaper.build(self.settings, Clients(self.settings, LOCAL_CREDENTIALS), _log)
        while not self._supervisor_stop.wait(reaper.interval_s(self.settings.queue)):
            try:
                self.jobs_reaped += len(the_reaper.sweep())
            except Exception as exc:  # noqa: BLE001 - moto going down with the twin, or a passing error
                _log.warning("the reaper's sweep failed: %s", exc)

    def _start_supervisor(self) -> None:
        spec = faults.FaultSpec.parse(self._child_env.get(faults.ENV))
        self._supervisor_stop.clear()
        self._supervisor = threading.Thread(target=self._supervise, args=(spec,), name="twin-supervisor",
                                            daemon=True)
        self._supervisor.start()
        self._reaper = threading.Thread(target=self._reap, name="twin-reaper", daemon=True)
        self._reaper.start()
        assert self.settings is not None and self.resources is not None
        self._senders = CallbackSenders(self.settings, Clients(self.settings, LOCAL_CREDENTIALS), self.resources, _log)
        self._senders.start(self.log_path)

    def _stop_supervisor(self) -> None:
        if self._senders is not None:
            self._senders.stop()
            self._senders = None
        self._supervisor_stop.set()
        for attribute in ("_supervisor", "_reaper"):
            thread = getattr(self, attribute)
            if thread is not None:
                thread.join(timeout=10)
                setattr(self, attribute, None)

    def _supervise(self, spec: faults.FaultSpec) -> None:
        chooser = random.Random(spec.seed)
        next_kill = time.monotonic() + spec.kill_every_s if spec.kill_every_s else float("inf")
        while not self._supervisor_stop.wait(0.3):
            with self._workers_lock:
                if time.monotonic() >= next_kill:
                    alive = [p for p in self._workers if p.is_alive()]
                    if alive:
                        victim = chooser.choice(alive)
                        os.kill(victim.pid, signal.SIGKILL)
                        victim.join(timeout=5)
                        self.workers_killed += 1
                    next_kill = time.monotonic() + spec.kill_every_s
                replaced = self._replace_dead()
                self.workers_replaced += len(replaced)
                self._replaced.extend(replaced)

    def __enter__(self) -> Twin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- parts -------------------------------------------------------------------------
    def _start_service(self, target: Any, args: tuple[Any, ...], name: str, daemon: bool = True) -> Any:
        """Start one child process, kept among the twin's parts (so that stop() ends it even if its start
        fails), and wait for its ("ok", value) or ("error", reason) answer."""
        parent_conn, child_conn = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=target, args=(child_conn, *args), name=name, daemon=daemon)
        process.start()
        child_conn.close()
        self._parts.append(_Process(process))
        if not parent_conn.poll(60):
            raise TwinStartError(f"{name} did not start within 60 s")
        outcome, value = parent_conn.recv()
        if outcome != "ok":
            raise TwinStartError(value)
        return value

    def _start_moto(self) -> None:
        """One moto server for every service, or two (`moto_processes`): DynamoDB in a process of its
        own, S3, SQS and the rest in another (S3 delivers its events to SQS inside moto, so those two
        stay together). Each is CPU-bound in one interpreter: apart, they can use two cores, which a
        flood of jobs that cost the engine nothing needs and a laptop transcribing speech does not."""
        port = self._start_service(moto_process.serve, (os.getpid(), self.log_path), "whisperq-moto")
        self.endpoint_url = self.dynamodb_endpoint_url = f"http://127.0.0.1:{port}"
        if Settings.from_env({**os.environ, **self.environ}).moto_processes == 2:
            port = self._start_service(moto_process.serve, (os.getpid(), self.log_path), "whisperq-moto-dynamodb")
            self.dynamodb_endpoint_url = f"http://127.0.0.1:{port}"

    def _start_collector(self) -> None:
        if not self.tracing:
            return
        traces = Traces(Clients(Settings.from_env({constants.AWS_ENDPOINT_URL: self.endpoint_url,
                                                    constants.AWS_REGION: "us-east-1"}), LOCAL_CREDENTIALS))
        self._collector = xray.Collector(traces.put).start()
        self._parts.append(self._collector)

    @property
    def xray_daemon_address(self) -> str | None:
        return self._collector.address if self._collector else None

    def _configure(self) -> None:
        """The settings of the twin, and the environment its API and worker processes run with (their
        handlers read their settings from the environment, as they would in Lambda)."""
        env = {
            **LOCAL_CREDENTIALS,
            constants.AWS_ENDPOINT_URL: self.endpoint_url,
            constants.AWS_ENDPOINT_URL_DYNAMODB: self.dynamodb_endpoint_url,
            # Tests and local receivers listen on 127.0.0.1, which AWS mode refuses.
            constants.ALLOW_PRIVATE_CALLBACKS: "true",
            constants.CALLBACK_SECRET: self.callback_secret,
            **self.environ,
        }
        env.setdefault(constants.AWS_REGION, os.environ.get(constants.AWS_REGION, "us-east-1"))
        settings = Settings.from_env({**os.environ, **env})
        settings.queue.validate("local")
        self.settings = settings
        self._child_env = {**env, **queue_config.to_environ(settings.queue)}
        # Each worker is the template's function: Lambda tells it its memory, from which its engine's threads
        # follow (one per whole vCPU: one at 3,008 MB), unless WHISPERQ_CPU_THREADS says.
        self._child_env[LAMBDA_MEMORY_ENV] = str(FUNCTION_MEMORY_MB)

    def _register_keys(self) -> None:
        """The API keys in moto's API Gateway, as a deployed stack has them: a key's id (which owns its
        jobs) is API Gateway's, and `whisperq loadtest --stack` finds it the same way on both."""
        assert self.settings is not None
        keys = ApiKeys(Clients(self.settings, LOCAL_CREDENTIALS))
        for index, key in enumerate([self.api_key, *self.extra_api_keys]):
            self.api_key_ids[key] = keys.create(f"whisperq-local-{index}", key)
        # Files dropped in the inbox become jobs of the twin's user (unless the environment names another).
        if not os.environ.get(constants.INBOX_OWNER):
            self._child_env.setdefault(constants.INBOX_OWNER, self.api_key_id)

    @property
    def api_key_id(self) -> str:
        return self.api_key_ids[self.api_key]

    def _start_front(self) -> None:
        keys = self.api_key_ids
        env = {**self._child_env, **xray.lambda_environment(API_FUNCTION, self.xray_daemon_address)}
        self._api_url = self._start_service(
            api_process.serve, (os.getpid(), env, keys, self.api_port, self.log_path, API_FUNCTION),
            API_FUNCTION, daemon=False,  # its function's containers are processes of its own
        )

    def _start_workers(self) -> None:
        """A pool of workers for each model tier, each polling its tier's queue with its tier's model (as
        each tier is a function of its own in AWS)."""
        assert self.settings is not None and self.resources is not None
        count = self.workers or self.settings.queue.max_concurrency
        self._ready = self._ctx.Queue()
        with self._workers_lock:
            self._worker_tiers = [tier for tier in self.settings.tiers for _ in range(count)]
            for index in range(len(self._worker_tiers)):
                self._workers.append(self._spawn_worker(index))
        waiting = set(range(len(self._worker_tiers)))
        deadline = time.monotonic() + self.worker_ready_timeout_s
        while waiting:
            try:
                index, _load_s, error = self._ready.get(timeout=max(0.1, deadline - time.monotonic()))
            except stdlib_queue.Empty:
                raise TwinStartError(
                    f"{len(waiting)} worker(s) not ready after {self.worker_ready_timeout_s:.0f} s"
                ) from None
            if error:
                raise TwinStartError(f"worker {index} could not start: {error}")
            waiting.discard(index)

    def _spawn_worker(self, index: int) -> Any:
        assert self.resources is not None and self.settings is not None
        tier = self._worker_tiers[index]
        queues = self.resources.tier(tier.id)
        function = TRANSCRIBER_FUNCTION if tier.default else f"{TRANSCRIBER_FUNCTION}-{tier.id}"
        env = {**self._child_env, **xray.lambda_environment(function, self.xray_daemon_address),
               # Its tier's function: its model, its queues (the template sets the same for each tier).
               constants.MODEL: tier.model, constants.MODELS: "",
               constants.QUEUE_NAME: tier.queue_name(self.settings.queue_name),
               constants.DLQ_NAME: tier.dlq_name(self.settings.queue_name, self.settings.dlq_name)}
        process = self._ctx.Process(
            target=esm.worker_main,
            args=(index, env, queues["queue_url"], queues["queue_arn"], function, os.getpid(), self._ready,
                  self.log_path),
            name=f"whisperq-worker-{index}" if tier.default else f"whisperq-worker-{tier.id}-{index}",
            daemon=False,
        )
        process.start()
        return process

    def take_replacements(self) -> list[int]:
        """The workers replaced since the last call (they died: a crash, or an invocation timed out)."""
        with self._workers_lock:
            replaced, self._replaced = self._replaced, []
            return replaced

    def _replace_dead(self) -> list[int]:
        replaced = []
        for index, process in enumerate(self._workers):
            if not process.is_alive():
                process.join(timeout=0)
                self._workers[index] = self._spawn_worker(index)
                replaced.append(index)
        return replaced

    @property
    def api_url(self) -> str:
        return self._api_url

    @property
    def worker_count(self) -> int:
        return len(self._workers)

    @property
    def engine_threads(self) -> int:
        """The threads each worker's engine runs."""
        assert self.settings is not None
        return engine_threads(self.settings.cpu_threads, self._child_env)

    def memory_mib(self) -> dict[str, float]:
        """The resident set of the twin's process tree now, in MiB, by part (moto's servers, the API
        front with its containers, each worker, this process) and in `total`."""
        with self._workers_lock:
            parts = [(part.process.name, part.process.pid) for part in self._parts if isinstance(part, _Process)]
            parts += [(process.name, process.pid) for process in self._workers]
        return memory.in_mib(memory.tree_rss(os.getpid(), parts))

    def describe(self) -> dict[str, Any]:
        assert self.settings is not None and self.resources is not None
        return {
            "pid": os.getpid(),
            "apiUrl": self.api_url,
            "apiKey": self.api_key,
            "callbackSecret": self.callback_secret,
            "endpointUrl": self.endpoint_url,
            "dynamodbEndpointUrl": self.dynamodb_endpoint_url,
            "xrayDaemonAddress": self.xray_daemon_address,
            "region": self.settings.region,
            "resources": self.resources.to_dict(),
            "workers": len(self._workers),
            "engine": self.settings.engine,
            "model": self.settings.model,
            "tiers": {tier.id: {"model": tier.model, "default": tier.default,
                                "workers": self._worker_tiers.count(tier)} for tier in self.settings.tiers},
            "engineThreads": self.engine_threads,
            "queueConfig": self.settings.queue.to_dict(),
            "sourceBuckets": list(self.settings.granted_buckets),
            "inboxPrefix": self.settings.inbox,
            "logPath": self.log_path,
            "startedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        }


class _Process:
    """A child process of the twin (a moto server, the API front), as stop() ends it."""

    def __init__(self, process: Any):
        self.process = process

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it outlives 10 s."""
        self.process.terminate()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)

