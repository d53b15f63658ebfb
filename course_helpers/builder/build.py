"""Build an image with BuildKit or the classic builder and report, step by step, what the cache did.

Example:
    >>> report = build("sample_app", "flask-demo:first")   # doctest: +SKIP
    >>> report.ran_steps                                    # doctest: +SKIP
    ['COPY . .', 'RUN pip3 install -r requirements.txt']

BuildKit builds go through a docker CLI found by :mod:`course_helpers.engine.cli`
(machine-readable progress, ``--iidfile`` for the id); classic builds go
through the Docker SDK, which only drives the legacy builder.  When the engine
is Podman (:mod:`course_helpers.engine.podman`), the same SDK call runs Podman's
builder, Buildah, and the report says ``builder="buildah"``.  Every image a
build makes is recorded as the course's (:mod:`course_helpers.engine.ownership`),
with the build's time window.

An interrupted build stops entirely: the CLI runs in a process group of its
own that is killed with the cell (and dies with the kernel, via
PR_SET_PDEATHSIG on Linux), so no orphan tags an image later.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ..config import SESSION_ID, session_labels
from ..dockerfile.parse import LAYER_INSTRUCTIONS, parse_dockerfile
from ..engine import api as engine_api
from ..engine.build_history import BuildMetadata, read_metadata
from ..engine.cli import BuildkitClient, buildkit_client, describe_probes
from ..engine.client import client as engine_client, reset as reset_client, try_client
from ..engine.ownership import engine_dir, record_build, record_intermediates
from ..engine.podman import engine_is_podman
from ..engine.registry import registry_problem
from ..engine.session import course_call
from ..engine.snapshots import drop_half_made, hold_previous
from ..errors import BuildError, DockerfileError, EngineFault, check_image_name, engine_stopped, is_connection_error
from ..formatting import shell_line, shown_path
from ..layers.history import layer_history
from .faults import Fault, engine_fault, fault_error, retry_note
from .log_buildah import BuildahParser
from .log_buildkit import PlainParser, RawjsonParser, cache_import_errors, resolved_bases
from .log_classic import ClassicParser, classic_step
from .log_common import NumberedInstruction, instructions_of, strip_colour
from .progress import LiveLog
from .records import base_image_ids, record_context_snapshot
from .report import BuildReport, Failure, Step

if TYPE_CHECKING:  # the SDK is imported lazily: it costs ~0.2 s and BuildKit builds barely need it
    import docker

BUILDERS = ("auto", "buildkit", "classic", "buildah")
_TAIL = 15
_DIGEST_LINE = re.compile(r"^#\d+ sha256:[0-9a-f]{64}$")  # 20.10 prints each vertex's digest: noise


@course_call("building an image")
def build(context: str | Path, tag: str | None = None, *, dockerfile: str = "Dockerfile",
          builder: str = "auto", no_cache: bool = False, build_args: dict[str, str] | None = None,
          target: str | None = None, progress: bool | Callable[[str], None] = True,
          attestations: bool = True, cache_from: str | list[str] | None = None,
          cache_to: str | list[str] | None = None, pull: bool = False,
          client: "docker.DockerClient | None" = None) -> BuildReport:
    """Build an image from a context directory and report what each step did.

    Args:
        context: the build context directory.
        tag: ``name:tag`` to give the image, or None for an untagged image.
        dockerfile: the Dockerfile's path relative to the context.
        builder: ``"buildkit"`` (a docker CLI that runs BuildKit), ``"classic"`` (the legacy
            builder through the Docker SDK), ``"buildah"`` (Podman's builder, when the engine is
            Podman) or ``"auto"`` (Buildah on Podman, else BuildKit when a capable CLI exists).
        no_cache: build every step afresh (``--no-cache`` / ``nocache``).
        build_args: ``ARG`` values, e.g. ``{"PIP_INDEX_URL": "..."}``.
        target: build up to this stage (``--target``) instead of the last: BuildKit builds only
            the stages it needs, the classic builder every stage up to it.
        progress: True shows the builder's output as it arrives: in a notebook, live in one display
            that becomes the step table with the log folded under it when the build ends; in a
            terminal, printed line by line.  False keeps quiet, a callable receives each line instead.
        attestations: False asks buildx for no provenance attestation (``--provenance=false``), so
            the image is one manifest and two all-cached builds are one image ID on the containerd
            store too.  Other builders add none, so it changes nothing there.
        cache_from: where BuildKit may find cache besides its own (``--cache-from``), e.g.
            ``"type=registry,ref=127.0.0.1:5000/app-cache"`` or ``"type=local,src=DIR"``; a list for several.
            A source that does not exist is only a warning to BuildKit: the build runs without it.
        cache_to: where BuildKit exports this build's cache (``--cache-to``), e.g.
            ``"type=registry,ref=...,mode=max"``.  Engines that cannot export (Docker 20.10, the
            docker driver on the overlay2 store) refuse, and the error says so and what to do.
        pull: resolve every ``FROM`` against its registry again (``--pull``) instead of using the
            engine's copy of the tag.  BuildKit leaves the engine's own tag where it was (``docker pull``
            moves it); the classic builder and Buildah pull it as ``docker pull`` does.
        client: the Docker SDK client to use; default :func:`course_helpers.engine.client`.

    Returns:
        A :class:`~course_helpers.report.BuildReport` whose steps carry cache state, seconds,
        layer (diff id) and size.

    Raises:
        BuildError: the context is missing, ``builder="buildkit"`` but no docker CLI here can run
            BuildKit, or the build failed (the message names the step, instruction and exit code,
            and what to do; ``log_tail`` and ``command`` hold the details).
        EngineFault: the engine failed at its own work (exporting, unpacking, storing the image),
            which no change to the Dockerfile fixes.  When it failed to unpack the image it had just
            built (moby/buildkit#6521), the build ran once more first, saying so in its output.
        DockerfileError: the Dockerfile is missing, or ``target`` names no stage of it.
        ValueError: ``builder`` is not one of ``auto``, ``buildkit``, ``classic``, ``buildah``.
    """
    ctx = Path(context)
    if builder not in BUILDERS:
        raise ValueError(f"builder={builder!r} is not a builder this course knows: use 'auto', 'buildkit', "
                         "'classic' or 'buildah'.")
    if not ctx.is_dir():
        raise BuildError(f"The build context {ctx} is not a directory: pass the folder that holds the "
                         "Dockerfile and the app's files.")
    if tag is not None:
        check_image_name(tag)
    dockerfile_path = ctx / dockerfile
    if not dockerfile_path.is_file():
        raise DockerfileError(f"There is no Dockerfile at {dockerfile_path}: create it, or pass "
                              "dockerfile= with its path relative to the context.")
    # The one reader; a file that is not UTF-8 is read as Docker reads it (bad bytes as U+FFFD).
    try:
        parsed = parse_dockerfile(dockerfile_path, build_args)
    except DockerfileError:
        parsed = None  # the engine is the judge: its own parse error names the line, or it builds
    instructions = instructions_of(parsed) if parsed else []
    if parsed is not None and target is not None:
        if parsed.stage(target) is None:
            names = ", ".join(s.name for s in parsed.stages if s.name) or "none"
            raise DockerfileError(f"target={target!r}: {dockerfile_path} has no stage of that name (named "
                                  f"stages: {names}); pass the name written after AS.")
        last = parsed.stage(target).index
        instructions = [i for i in instructions if i.stage_number <= last]  # what the build prints
    podman = engine_is_podman(_sdk(client))
    _check_builder_for_engine(builder, podman)
    cli = buildkit_client() if builder in ("auto", "buildkit") and not podman else None
    if builder == "buildkit" and cli is None:
        raise BuildError("No docker client on this machine can run BuildKit builds (tried: "
                         f"{describe_probes()}): install the buildx plugin, or use builder='classic'.")
    say = LiveLog(tag or "an untagged image", progress)
    args = dict(build_args or {})
    start = time.time()
    image_id, ref = "", None
    kind = "buildah" if podman else "buildkit" if cli else "classic"
    records = engine_dir()  # before building: afterwards the engine may be gone
    extra = ["--provenance=false"] if cli is not None and cli.via == "buildx" and not attestations else []
    extra += _cache_options(cli, podman, cache_from, cache_to, pull)
    run = functools.partial(_run_builder, cli, client, ctx, dockerfile, tag, no_cache, args, target, instructions, say,
                            podman, extra, pull)
    try:
        # A BuildKit build that moves a tag on the containerd store may lose the old image's
        # snapshots mid-unpack (engine/snapshots.py): keep them until it is done.
        with hold_previous(_sdk(client), tag) if cli is not None else contextlib.nullcontext() as previous:
            try:
                image_id, log, steps, meta, sent = _once_more_after_unpack_race(run, say, _doing(tag))
                ref = meta.ref
            except (EngineFault, BuildError) as exc:
                if isinstance(exc, EngineFault) and cli is not None:
                    drop_half_made(_sdk(client), tag, previous, SESSION_ID)
                down = _registry_down(_listed(cache_to))
                if down:  # BuildKit's words name a failed blob write; the sentence names the cause
                    raise BuildError(f"{down} The cache could not be exported there, so the build stopped.",
                                     log_tail=exc.log_tail, command=exc.command) from None
                raise
    except BaseException:
        say.finish(None)  # the error shows the log's last lines; the whole log folds away
        raise
    finally:
        end = time.time()
        record_build(image_id, tag, kind, start, end, folder=records, ref=ref)
    report = BuildReport(image_id=image_id, tags=[tag] if tag else [], builder=kind,
                         seconds=end - start, log=log, steps=steps, context=str(ctx), dockerfile=dockerfile,
                         build_args=args, no_cache=no_cache, target=target, build_ref=ref, sent_bytes=sent,
                         config_digest=meta.config_digest or (image_id if kind == "classic" else None),
                         command=terminal_command(cli, ctx, dockerfile, tag, no_cache, args, target, podman,
                                                  extra + (["--pull"] if pull and cli is None else [])),
                         notes=[cache_import_note(source, error) for source, error in cache_import_errors(log)])
    try:
        # The image is the target's stage (the last stage when no target is given).
        stages = list(dict.fromkeys(i.stage for i in instructions))
        final = None
        if target is not None:
            final = next((s for s in stages if s == target.lower()), None) or (
                stages[int(target)] if target.isdigit() and int(target) < len(stages) else None)
        _attach_layers(report, _sdk(client), final or (stages[-1] if stages else None))
        report.base_ids = base_image_ids(parsed, _sdk(client))  # predict() sees a base's tag move
        if pull and cli is not None:
            # --pull asks the registry and leaves the engine's own tag where it was: the image the
            # build used is the one BuildKit's FROM step names.
            bases = [st.base for st in parsed.stages if st.base_stage is None] if parsed else list(report.base_ids)
            report.base_ids.update(resolved_bases(log, bases))
        # predict()/explain() compare later builds with what this one saw.
        record_context_snapshot(report)
    except BaseException:
        say.finish(None)  # never leave the cell saying "building ..."
        raise
    say.finish(report)
    return report


def terminal_command(cli: BuildkitClient | None, ctx: Path, dockerfile: str, tag: str | None, no_cache: bool,
                     build_args: dict[str, str], target: str | None, podman: bool = False,
                     extra: list[str] = ()) -> str:
    """The ``docker build`` a learner types for the same build, with the client and builder the course used.

    The course's own bookkeeping is shown too, as it is passed: the session labels (labels are part
    of the image's configuration, so without them the same build makes another image ID), and for
    BuildKit the machine-readable progress and the files the id and metadata are written to
    (named ``iid.txt`` and ``metadata.json`` here; the course uses a temporary folder).

    Example:
        ``DOCKER_BUILDKIT=1 /usr/bin/docker build -t flask-demo:first --no-cache ../workspace/020-first-dockerfile``
        (a 20.10 client, which is not the first ``docker`` on PATH here), or
        ``DOCKER_BUILDKIT=0 docker build ...`` for the classic builder.
    """
    if podman:
        argv, env = ["podman", "build"], {}  # Podman's own client drives the same builder, Buildah
    elif cli is None:
        argv, env = ["docker", "build"], {"DOCKER_BUILDKIT": "0"}  # the legacy builder, as the SDK drives it
    else:
        argv = cli.build_command()
        on_path = shutil.which("docker")
        if on_path and os.path.realpath(on_path) == os.path.realpath(cli.path):
            argv[0] = "docker"  # the learner's own `docker` is the one the course used
        env = {"DOCKER_BUILDKIT": "1"} if cli.via == "builtin" else {}
    argv += ["-t", tag] if tag else []
    argv += ["--no-cache"] if no_cache else []
    argv += [f"--build-arg={key}={value}" for key, value in build_args.items()]
    argv += ["--target", target] if target else []
    argv += list(extra)
    if cli is not None and not podman:
        argv += [f"--progress={cli.progress}", "--iidfile", "iid.txt"]
        argv += ["--metadata-file", "metadata.json"] if cli.offers("--metadata-file") else []
    else:
        argv += ["--force-rm"]  # the SDK's forcerm=True: a failed step's container goes too
    argv += [f"--label={key}={value}" for key, value in session_labels().items()]
    argv += ["-f", shown_path(ctx / dockerfile)] if dockerfile != "Dockerfile" else []
    argv.append(shown_path(ctx))
    return shell_line(argv, env)


def _run_builder(cli: BuildkitClient | None, client: "docker.DockerClient | None", ctx: Path, dockerfile: str,
                 tag: str | None, no_cache: bool, args: dict[str, str], target: str | None,
                 instructions: list[NumberedInstruction], say: Callable[[str], None],
                 podman: bool = False, extra: list[str] = (),
                 pull: bool = False) -> tuple[str, str, list[Step], BuildMetadata, int | None]:
    """Run the build with BuildKit (a CLI), or through the SDK: the classic builder, or Buildah on Podman.

    Returns:
        The image id, the builder's output, the steps, buildx's metadata (its build record id and
        the config's digest; empty for other builders), and the bytes of context the course sent
        (SDK builds only).
    """
    try:
        if cli is not None:
            return (*_build_buildkit(cli, ctx, dockerfile, tag, no_cache, args, target, instructions, say, extra),
                    None)
        image_id, log, steps, sent = _build_classic(client, ctx, dockerfile, tag, no_cache, args, target,
                                                    instructions, say, buildah=podman, pull=pull)
        return image_id, log, steps, BuildMetadata(), sent
    except (BuildError, EngineFault):
        # A build that failed because the engine went away is not the Dockerfile's fault.
        if client is None and try_client(timeout=5) is None:
            raise engine_stopped(f"building {tag or 'the image'}") from None
        raise
    except Exception as exc:
        if is_connection_error(exc):
            raise engine_stopped(f"building {tag or 'the image'}") from None
        raise


# --- helpers ---------------------------------------------------------------------------------

def _listed(value: str | list[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _registry_down(options: list[str]) -> str | None:
    """The sentence for the first ``type=registry`` cache option whose registry does not answer."""
    for option in options:
        if "type=registry" in option and "ref=" in option:
            problem = registry_problem(option)
            if problem:
                return problem
    return None


def cache_import_note(source: str, error: str) -> str:
    """One sentence for a ``--cache-from`` source BuildKit could not read (it only warns, and builds on)."""
    if "not found" in error or "no such file" in error.lower():
        return (f"BuildKit found no cache at {source} (nothing was exported there yet, or the name differs from "
                "the --cache-to one), so every step that missed its own cache ran: it only warns about that.")
    down = registry_problem(source)
    why = down or f"BuildKit could not read it: {error.splitlines()[0]}"
    return f"The cache source {source} was not used, so this build ran without it (BuildKit only warns). {why}"


def _shown_dirs(option: str) -> str:
    """``type=local,dest=/abs/dir`` with the folder as a command names it (relative when near):
    the CLI runs in this process's folder, so the same text works, and shows no machine's paths."""
    return ",".join(f"{k}={shown_path(v)}" if k in ("src", "dest") else part
                    for part in option.split(",") for k, _, v in [part.partition("=")])


def _cache_options(cli: BuildkitClient | None, podman: bool, cache_from: str | list[str] | None,
                   cache_to: str | list[str] | None, pull: bool) -> list[str]:
    """``--cache-from``, ``--cache-to`` and ``--pull`` as the CLI takes them (BuildKit only)."""
    out = [f"--cache-from={_shown_dirs(v)}" for v in _listed(cache_from)]
    out += [f"--cache-to={_shown_dirs(v)}" for v in _listed(cache_to)]
    if cli is not None and pull:
        out.append("--pull")
    if out and cli is None:
        builder = "Buildah (Podman)" if podman else "the classic builder"
        raise BuildError(f"{builder} takes no {' '.join(o.split('=')[0] for o in out)} here: cache import "
                         "and export are BuildKit's, so build on a Docker engine with BuildKit.")
    return out


def _check_builder_for_engine(builder: str, podman: bool) -> None:
    """Refuse, in one sentence, a builder the engine does not have."""
    from ..engine.client import where

    if podman and builder in ("buildkit", "classic"):
        raise BuildError(f"The engine at {where()} is Podman, whose only builder is Buildah: use builder='buildah' "
                         f"(or 'auto') instead of {builder!r}.")
    if builder == "buildah" and not podman:
        raise BuildError(f"builder='buildah' needs Podman as the engine, and the engine at {where()} is Docker: "
                         "point DOCKER_HOST at a Podman service (./course setup --podman prints its address), "
                         "or use 'auto'.")


def builders_available(client: "docker.DockerClient | None" = None) -> list[str]:
    """The builders this course can run on the engine in use, for comparisons such as notebook 070's.

    Returns:
        ``["buildah"]`` when the engine is Podman; otherwise ``"buildkit"`` (when a docker CLI here
        runs BuildKit) and ``"classic"``, plus ``"buildah"`` when the course's own Podman service
        (``./course setup --podman``) answers: build with it under :func:`using_podman`.
    """
    from ..engine.podman import course_service

    if engine_is_podman(_sdk(client)):
        return ["buildah"]
    out = (["buildkit"] if buildkit_client() is not None else []) + ["classic"]
    return out + (["buildah"] if course_service() is not None else [])


@contextlib.contextmanager
def using_podman(address: str | None = None) -> "Iterator[str]":
    """Within the block, every helper talks to a Podman service: ``DOCKER_HOST`` names it.

    Args:
        address: the service's ``DOCKER_HOST`` value; default: the engine in use when it is
            Podman already, else the course's own service.

    Raises:
        BuildError: no address given and the course's Podman service does not answer.
    """
    from ..engine.podman import course_service

    if address is None and engine_is_podman(_sdk(None)):
        yield os.environ.get("DOCKER_HOST", "")  # the learner's engine is Podman: nothing to switch
        return
    if address is None:
        service = course_service()
        if service is None:
            raise BuildError("No Podman service of the course answers: run ./course setup --podman, "
                             "then run this cell again.")
        address = service.address
    before = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = address
    reset_client()
    try:
        yield address
    finally:
        if before is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = before
        reset_client()


def _sdk(client: "docker.DockerClient | None") -> "docker.DockerClient":
    return client if client is not None else engine_client()


def _die_with_parent() -> None:
    """In the CLI child before exec: be killed when the kernel dies, whatever kills it (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass  # not Linux: the process group kill on interrupt still applies


def _stop(proc: subprocess.Popen) -> None:
    """Kill the CLI's whole process group (the CLI, and buildx's helpers if any) and reap it."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    proc.wait()


def _build_buildkit(cli: BuildkitClient, ctx: Path, dockerfile: str, tag: str | None, no_cache: bool,
                    build_args: dict[str, str], target: str | None, instructions: list[NumberedInstruction],
                    say: Callable[[str], None], extra: list[str] = ()) -> tuple[str, str, list[Step], BuildMetadata]:
    """Run the CLI; returns the image id, the output, the steps, and what buildx's metadata file said.

    ``extra`` holds options the learner asked for that the CLI passes on as they are (``--provenance=false``).
    """
    parser: PlainParser | RawjsonParser
    parser = (RawjsonParser if cli.progress == "rawjson" else PlainParser)(instructions)
    with tempfile.TemporaryDirectory(prefix="course-build-") as tmp:
        iidfile = os.path.join(tmp, "iid")
        metadata = os.path.join(tmp, "metadata.json")
        cmd = cli.build_command() + [f"--progress={cli.progress}", "--iidfile", iidfile,
                                     "-f", str(ctx / dockerfile)]
        # buildx writes the build record's ref there (docker buildx history inspect REF).
        cmd += ["--metadata-file", metadata] if cli.offers("--metadata-file") else []
        cmd += [f"--label={key}={value}" for key, value in session_labels().items()]
        cmd += [f"--build-arg={key}={value}" for key, value in build_args.items()]
        cmd += ["-t", tag] if tag else []
        cmd += ["--no-cache"] if no_cache else []
        cmd += ["--target", target] if target else []
        cmd += list(extra)
        cmd.append(str(ctx))
        lines: list[str] = []  # what the CLI printed: the report's log
        shown: list[str] = []  # what the learner reads: the same, in plain form when it was rawjson
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env=cli.environment(), stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                preexec_fn=_die_with_parent if os.name == "posix" else None)
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                if isinstance(parser, RawjsonParser):
                    # The learner reads what --progress=plain prints, whichever mode the course asked for.
                    _show(parser.feed(line), shown, say)
                else:
                    parser.feed(line)
                    _show([] if _DIGEST_LINE.match(line) else [line], shown, say)
            if isinstance(parser, RawjsonParser):
                _show(parser.finish(), shown, say)
        except BaseException:
            _stop(proc)  # KeyboardInterrupt (the stop button) or any error: no orphan build
            raise
        code = proc.wait()
        log = "\n".join(lines)
        if code != 0:
            fault = engine_fault(parser.failure(), shown)
            if fault is not None and fault.retry:
                raise _UnpackRace(fault, log, parser.steps(), "\n".join(shown[-_TAIL:]), shlex.join(cmd))
            raise _build_error(parser.failure(), shown, shlex.join(cmd), ctx, dockerfile, code, doing=_doing(tag))
        meta = read_metadata(metadata)
        image_id = meta.image_digest or Path(iidfile).read_text().strip()
    return image_id, log, parser.steps(), meta


def _show(texts: list[str], shown: list[str], say: Callable[[str], None]) -> None:
    """Pass lines to the live view, keeping them for the error's tail."""
    for text in texts:
        shown.append(text)
        say(text)


def _build_classic(client: "docker.DockerClient | None", ctx: Path, dockerfile: str, tag: str | None,
                   no_cache: bool, build_args: dict[str, str], target: str | None,
                   instructions: list[NumberedInstruction],
                   say: Callable[[str], None], buildah: bool = False, pull: bool = False) -> tuple[str, str, list[Step], int]:
    """The SDK's build: the legacy builder on dockerd, Buildah on Podman (``buildah=True``).

    The context is packed here, as the SDK would pack it for ``path=``, so that its size (all of it,
    every build: neither builder asks only for what changed) is known.
    """
    from docker.api.build import process_dockerfile
    from docker.errors import APIError
    from docker.utils import tar

    sdk = _sdk(client)
    parser: ClassicParser | BuildahParser
    parser = (BuildahParser(instructions, clock=time.monotonic) if buildah
              else ClassicParser(instructions, clock=time.monotonic))
    ignore = ctx / ".dockerignore"
    exclude = ([line.strip() for line in ignore.read_text().splitlines() if line.strip()
                and not line.strip().startswith("#")] if ignore.is_file() else None)
    context = tar(str(ctx), exclude=exclude, dockerfile=process_dockerfile(dockerfile, str(ctx)))
    sent = os.fstat(context.fileno()).st_size
    kwargs: dict[str, Any] = dict(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, decode=True,
                                  labels=session_labels(), nocache=no_cache, buildargs=build_args or None,
                                  dockerfile=dockerfile, target=target, **({"pull": True} if pull else {}))
    # forcerm: a failed step's container is removed too, so a failed build leaves none behind.
    shown = {"path": str(ctx), **{k: v for k, v in kwargs.items() if k not in ("fileobj", "custom_context")}}
    command = "docker.APIClient.build(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
    lines: list[str] = []
    made = _ClassicImages()
    try:
        for event in _events(engine_api.build_events(sdk, **kwargs)):
            parser.feed(event)
            text = str(event.get("stream") or event.get("status") or event.get("error") or "")
            for line in strip_colour(text).splitlines():
                if line.strip():
                    lines.append(line)
                    made.feed(line)
                    say(line)
    except APIError as exc:  # e.g. a Dockerfile that does not parse: refused before any step
        message = str(exc.explanation or exc)
        parser.feed({"error": message})
        lines.append(message)
    except BaseException:
        # Interrupted: dropping the connection makes the engine cancel the build.
        engine_api.close(sdk)
        reset_client()
        raise
    finally:
        context.close()  # a temporary file: closing removes it
    log = "\n".join(lines)
    failure = parser.failure()
    if failure is not None or parser.image_id is None:
        # A failed classic build leaves none of its intermediate images behind.  Buildah's are its
        # cache (a rebuild after the fix reuses the steps before the failure): they stay.
        if not buildah:
            made.remove(sdk)
        total = max((i.number for i in instructions), default=None)
        if buildah and failure is not None and failure.step is not None:
            total = sum(1 for i in instructions if i.stage == failure.step.stage) or None
        raise _build_error(failure, lines, command, ctx, dockerfile, None, total, doing=_doing(tag))
    if not buildah:
        record_intermediates(made.full_ids(sdk))
    return parser.image_id, log, parser.steps(), sent


class _ClassicImages:
    """The intermediate images a classic build committed itself (not FROM's base, not cache hits)."""

    _ID = re.compile(r"^ ---> ([0-9a-f]{12})$")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._keyword = ""
        self._reused = False

    def feed(self, line: str) -> None:
        step = classic_step(line)
        if step:
            self._keyword, self._reused = step.keyword, False
        elif line.strip() == "---> Using cache":
            self._reused = True
        else:
            made = self._ID.match(line)
            if made and self._keyword != "FROM" and not self._reused:
                self.ids.append(made.group(1))

    def full_ids(self, sdk: Any) -> list[str]:
        """Their full ids (``sha256:...``), those still there: what the course's records keep."""
        from docker.errors import APIError

        out = []
        for short in self.ids:
            try:
                out.append(engine_api.inspect_image_raw(sdk, short)["Id"])
            except APIError:
                pass
        return out

    def remove(self, sdk: Any) -> None:
        """Remove them newest first, keeping their parents (which other builds may share)."""
        from docker.errors import APIError

        for image_id in reversed(self.ids):
            try:
                engine_api.remove_image(sdk, image_id, noprune=True)
            except APIError:
                pass  # already gone, or in use by something else: not ours to force


def _events(stream: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for event in stream:
        if isinstance(event, dict):
            yield event


# --- failures ----------------------------------------------------------------------------------

class _UnpackRace(Exception):
    """A BuildKit build whose steps all ran but whose image the engine failed to unpack (faults.UNPACK_RACE)."""

    def __init__(self, fault: Fault, log: str, steps: list[Step], tail: str, command: str):
        super().__init__(fault.words)
        self.fault, self.log, self.steps, self.tail, self.command = fault, log, steps, tail, command


def _doing(tag: str | None) -> str:
    return f"building {tag or 'an untagged image'}"


def _once_more_after_unpack_race(run: Callable[[], tuple], say: Callable[[str], None], doing: str) -> tuple:
    """Run the build; when the engine fails to unpack its image (moby/buildkit#6521), say so and run it once more.

    The second build meets the cache the first one left: a step that ran the first time and
    is cached the second is reported as ran, with its first time and output, as one build
    that had unpacked would have reported it.
    """
    try:
        return run()
    except _UnpackRace as race:
        first = race
    note = retry_note(first.fault)
    say(note)
    try:
        image_id, log, steps, *rest = run()  # rest: the build record id and the bytes sent
    except _UnpackRace as again:
        raise fault_error(again.fault, doing, retried=True, log_tail=again.tail, command=again.command) from None
    ran = {(s.stage, s.index): s for s in first.steps if not s.cached and not s.is_from}
    steps = [ran.get((s.stage, s.index), s) if s.cached else s for s in steps]
    return (image_id, "\n".join([first.log, note, log]), steps, *rest)


_INDEX_UNREACHABLE = ("Could not find a version", "Max retries exceeded", "No matching distribution",
                      "Failed to establish a new connection", "Temporary failure in name resolution")


def _inside_heredoc(path: Path, line: int) -> int | None:
    """The line of the instruction whose here-document holds ``line``, as Docker 23+ reads the file."""
    try:
        parsed = parse_dockerfile(path)
    except DockerfileError:
        return None
    return next((i.line for i in parsed.instructions if i.heredocs and i.line < line <= i.end_line), None)


def _first_non_utf8_line(path: Path) -> int | None:
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return None
    for number, line in enumerate(lines, 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return None


def _reason(failure: Failure | None, lines: list[str], ctx: Path, dockerfile: str) -> tuple[str, bool]:
    """The learner-facing reason, and whether the Dockerfile itself is at fault (no step ran)."""
    text = "\n".join((failure.logs if failure else []) + [failure.message if failure else ""] + lines[-_TAIL:])
    parse = re.search(r"(?:dockerfile parse error|parse error) (?:on )?line (\d+): (.*)", text, re.IGNORECASE)
    if parse:
        what = parse.group(2).strip()
        # The SDK wraps the engine's words in ("..."); Docker 28's own brackets stay.
        while what.endswith('"') or (what.endswith(")") and what.count(")") > what.count("(")):
            what = what[:-1]
        # Docker 28 adds a guess: "unknown instruction: RUNN (did you mean RUN?)".
        what = re.sub(r" \((did you mean \S+\?)\)$", r", \1", what)
        flag = re.match(r"unknown flag: (?:--)?([\w-]+)", what, re.IGNORECASE)
        heredoc = _inside_heredoc(ctx / dockerfile, int(parse.group(1))) if "unknown instruction" in what else None
        hint = (f"this engine's Dockerfile reader does not know --{flag.group(1)} (a flag of a newer Dockerfile "
                "syntax than this engine has, or a typo): remove it or update Docker, then build again."
                if flag else
                f"that line belongs to the here-document opened on line {heredoc}, and this engine's Dockerfile "
                "reader does not know here-documents (Docker 23 and later do): write the script or file "
                "another way, or update Docker, then build again." if heredoc else "fix that line and build again.")
        return f"The Dockerfile {ctx / dockerfile} has an error on line {parse.group(1)} ({what}): {hint}", True
    if "string field contains invalid UTF-8" in text:  # Docker 28's BuildKit; older ones build such a file
        path = ctx / dockerfile
        bad = _first_non_utf8_line(path)
        where = f" (line {bad} is not)" if bad else ""
        return (f"The Dockerfile {path} is not UTF-8 text{where}, and this engine's BuildKit refuses it: save it "
                "as UTF-8 (JupyterLab's editor does; so does `iconv -f latin1 -t utf-8`), then build again."), True
    needs = re.search(r"the (--\S+) option requires BuildKit[^\n]*", text)
    if needs:
        return (f"the classic builder cannot run {needs.group(1)} (its own words: \"{needs.group(0).strip()}\"): "
                "build with BuildKit, builder='buildkit' (docker build uses it by default since Docker 23)."), False
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return ("pip inside the build does not trust the TLS certificate of the package index, which "
                "usually means a proxy between this machine and PyPI: the image needs that proxy's CA "
                "certificate (see the course set-up notes), then build again."), False
    if any(marker in text for marker in _INDEX_UNREACHABLE):
        return ("pip could not get the packages from the package index, which usually means the index is "
                "unreachable from inside the build (network, proxy) rather than a wrong version: check "
                "that the machine reaches PyPI, then build again."), False
    if re.search(r"not found: not found|file not found in build context|failed to compute cache key|"
                 r"checking on sources under", text):  # the last: Buildah's words
        return (f"a file that COPY names is not in the build context {ctx} (or .dockerignore excludes it): "
                "create it or fix the path in the Dockerfile."), False
    if failure is None or failure.step is None:
        # No step failed and no pattern named a line: do not send the learner to fix an instruction.
        return ("read the last lines of its output below for what the builder could not do: a line or file of "
                "yours named there is where to look, anything else is the engine's (then build again)."), False
    return "read the last lines of its output below, fix the instruction, and build again.", False


def _build_error(failure: Failure | None, lines: list[str], command: str, ctx: Path,
                 dockerfile: str, process_code: int | None, learner_total: int | None = None, *,
                 doing: str = "building the image") -> BuildError | EngineFault:
    tail = "\n".join(lines[-_TAIL:])
    fault = engine_fault(failure, lines)
    if fault is not None:  # the engine's own work failed: no sentence here may ask for a Dockerfile edit
        return fault_error(fault, doing, retried=False, log_tail=tail, command=command)
    reason, dockerfile_fault = _reason(failure, lines, ctx, dockerfile)
    step = failure.step if failure else None
    code = failure.exit_code if failure else None
    if step is not None and not dockerfile_fault:
        total = failure.total if failure else None
        if total and learner_total:
            total = min(total, learner_total)  # classic counts the LABEL steps labels= adds: not the learner's
        where = f"Step {step.index}/{total}" if total else f"Step {step.index}"
        if not step.stage.isdigit():
            where += f" of stage {step.stage}"
        how = f"failed with exit code {code}" if code is not None else "failed"
        message = f"{where} `{step.instruction}` {how}: {reason}"
    elif dockerfile_fault:
        message = reason
    else:
        detail = failure.message if failure else f"the builder exited with code {process_code}"
        message = f"The build failed ({detail}): {reason}"
    return BuildError(message, step=step.index if step else None, instruction=step.instruction if step else None,
                      exit_code=code, log_tail=tail, command=command)


# --- layers ------------------------------------------------------------------------------------

def _attach_layers(report: BuildReport, client: "docker.DockerClient", final: str | None) -> None:
    """Fill Step.layer and Step.size of the final stage's steps from the image's history.

    The image's newest history rows are the final stage's instructions, in order, with the
    rows the builder adds (classic appends a LABEL per course label) on top; metadata rows
    carry no layer.  So the final stage's RUN/COPY/ADD/WORKDIR steps, from the last, pair
    with the history rows of those instructions, from the newest.  A step whose row made no
    layer (a RUN that changed no file) keeps ``layer=None``.  Two API calls for a BuildKit
    image; a classic one adds one per intermediate image.
    """
    layered = [s for s in report.steps if s.stage == final and not s.is_from
               and s.instruction.split(None, 1)[0].upper() in LAYER_INSTRUCTIONS]
    if not layered:
        return
    rows = [row for row in layer_history(engine_api.inspect_image_raw(client, report.image_id), client)
            if row.keyword in LAYER_INSTRUCTIONS]
    for step, row in zip(reversed(layered), reversed(rows)):
        if row.keyword != step.instruction.split(None, 1)[0].upper():
            return  # the history does not follow this Dockerfile (e.g. ONBUILD): leave the rest unknown
        step.layer = row.diff_id
        step.size = row.size
