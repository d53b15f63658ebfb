"""Re-run, by hand, the cache experiments of docs/cache-rules.md on the engine DOCKER_HOST names.

Each scenario builds a fresh context (a unique marker, so no earlier cache is met), edits it,
builds again, and prints hit or miss per step as the engine printed it ("--> Using cache" for
Buildah, " ---> Using cache" for the classic builder, ``#N CACHED`` for BuildKit): what the
engine said, not what the course's model thinks, and how many of the second image's layers
the first image has too.  By default through the Docker SDK's ``images.build``, so on Podman
this is Buildah, on dockerd the classic builder; ``--buildkit`` builds with the docker CLI the
course uses for BuildKit (``--progress=plain``, as a terminal shows it), where the marker is
also written by a RUN, since BuildKit's cache ignores a LABEL.

Usage: ``DOCKER_HOST=unix://.../podman.sock python tools/builder_experiments.py [--buildkit] [ROW ...]``
(rows as in docs/cache-rules.md: ``1 2 4 19 22``...; none: all).  Images stay in the engine's
build cache; run it on an engine of its own (``tools/private_engine.py``, ``PodmanService``)
and remove that afterwards.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_helpers.engine.cli import buildkit_client  # noqa: E402
from course_helpers.engine.client import from_env  # noqa: E402

B = "FROM python:3.11-slim-bookworm"
STD = f"{B}\nLABEL marker=@M@\nENV A=1\nCOPY a.txt /a.txt\nRUN cat /a.txt\nCOPY b.txt /b.txt\nRUN echo done\n"
TWO_COPIES = f"{B}\nLABEL marker=@M@\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nRUN echo done\n"
ARGS = f"{B}\nLABEL marker=@M@\nARG V=1\nCOPY a.txt /a.txt\nRUN echo done\nARG W=1\nRUN echo $W\n"
MULTI = (f"{B} AS one\nLABEL marker=@M@\nCOPY a.txt /a.txt\nRUN cut -c1-1 /a.txt > /art\n"
         f"{B}\nLABEL marker=@M@f\nCOPY b.txt /b.txt\nCOPY --from=one /art /art\nRUN cat /art\n")
IGNORE = "*.log\n**/__pycache__\ndocs/**\n!docs/keep.md\nDockerfile\n"
IGNORED = f"{B}\nLABEL marker=@M@\nCOPY . /ctx\nRUN ls -R /ctx\n"
IGNORED_FILES = {"a.txt": "a\n", "x.log": "l\n", "__pycache__/m.pyc": "p", "docs/x.md": "x\n", "docs/keep.md": "k\n"}
SHARED = f"{B} AS one\nRUN echo @M@ > /m\nCOPY a.txt /a.txt\n{B} AS two\nRUN echo @M@ > /m\nCOPY b.txt /b.txt\n" \
         "COPY --from=one /a.txt /a.txt\n"
TARGET = (f"{B} AS one\nLABEL marker=@M@\nCOPY a.txt /a\n{B} AS unrelated\nLABEL marker=@M@\nRUN echo unrelated\n"
          f"FROM one AS middle\nCOPY b.txt /b\n{B} AS final\nCOPY --from=middle /b /b\n")
WORKDIR = f"{B}\nLABEL marker=@M@\nWORKDIR /w\nLABEL x=y\nCOPY a.txt /a.txt\n"
# Rows that only BuildKit (Docker 23+) can build; they answer the questions of docs/cache-rules.md, 24-30.
LINK = f"{B}\nLABEL marker=@M@\nENV A=1\nRUN echo @M@ > /m\nCOPY --link a.txt /a.txt\nRUN cat /a.txt\n"
LINK_BASE = (f"{B} AS base\nLABEL marker=@M@\nRUN echo one > /base\n"
             "FROM base\nCOPY --link a.txt /a.txt\nRUN cat /a.txt\n")
META = f"{B}\nLABEL marker=@M@\nWORKDIR /w\nWORKDIR /\nENV A=1\nLABEL x=y\nCOPY a.txt /a.txt\n"
ADD = f"{B}\nLABEL marker=@M@\nADD a.txt /a.txt\nRUN cat /a.txt\n"
HEREDOC = f"{B}\nLABEL marker=@M@\nRUN <<EOF\necho @M@ > /m\necho one\nEOF\nCOPY a.txt /a.txt\n"
PIP_FILES = {"requirements.txt": "flask==2.3.1\n"}
PIP = f"{B}\nLABEL marker=@M@\nCOPY requirements.txt /r.txt\n" \
      "RUN --mount=type=cache,target=/root/.cache/pip pip3 install -r /r.txt\n"
PIP_WHEELS = f"{B}\nLABEL marker=@M@\nCOPY requirements.txt /r.txt\n" \
             "RUN --mount=type=cache,target=/root/.cache/wheels pip3 download --dest /root/.cache/wheels -r /r.txt" \
             " && pip3 install --no-index --find-links /root/.cache/wheels -r /r.txt\n"
STEP = re.compile(r"(?:Step \d+/\d+ : |STEP \d+/\d+: )(.*)$")
PLAIN_STEP = re.compile(r"^#(\d+) \[(?:[\w.-]+ )?\d+/\d+\] (.*)$")
PIP_WORDS = ("Downloading", "Using cached", "File was already downloaded", "Looking in links")


class Built:
    """What one build printed: ``steps`` as [instruction, "hit"|"miss"], the image's layers, the RUN output."""

    def __init__(self) -> None:
        self.steps: list[list[str]] = []
        self.layers: list[str] = []
        self.output: list[str] = []


def build(cli, ctx: Path, args: dict | None, target: str | None) -> Built:
    out = Built()
    image = None
    for event in cli.api.build(path=str(ctx), rm=True, forcerm=True, decode=True, buildargs=args, target=target):
        for line in str(event.get("stream", "")).splitlines():
            match = STEP.search(line)
            if match:
                out.steps.append([match.group(1), "miss"])
            elif "Using cache" in line and out.steps:
                out.steps[-1][1] = "hit"
            else:
                out.output.append(line)
        image = (event.get("aux") or {}).get("ID", image)
        if "error" in event:
            print("   build failed:", event["error"].strip())
    out.layers = cli.images.get(image).attrs["RootFS"]["Layers"] if image else []
    return out


def build_buildkit(cli, ctx: Path, args: dict | None, target: str | None) -> Built:
    """The same with BuildKit: ``--progress=plain``, whose printer shows a step as one ``#N``."""
    kit = buildkit_client()
    if kit is None:
        sys.exit("No docker client here runs BuildKit builds (see course_helpers/engine/cli.py).")
    out = Built()
    iid = ctx.parent / "iid"
    cmd = kit.build_command() + ["--progress=plain", "--iidfile", str(iid), str(ctx)]
    cmd += [f"--build-arg={k}={v}" for k, v in (args or {}).items()] + (["--target", target] if target else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=kit.environment())
    by_number: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines() + proc.stderr.splitlines():
        match = PLAIN_STEP.match(line)
        if match and match.group(1) not in by_number:
            by_number[match.group(1)] = [match.group(2), "miss"]
            out.steps.append(by_number[match.group(1)])
        elif re.match(r"^#(\d+) CACHED$", line) and line.split()[0][1:] in by_number:
            by_number[line.split()[0][1:]][1] = "hit"
        elif re.match(r"^#\d+ \d+\.\d+ ", line):
            out.output.append(line.split(" ", 2)[2])
    if proc.returncode != 0:
        print("   build failed:", (proc.stderr.strip().splitlines() or ["?"])[-1])
    elif iid.exists():
        out.layers = cli.images.get(iid.read_text().strip()).attrs["RootFS"]["Layers"]
    return out


def with_run_marker(df: str) -> str:
    """BuildKit keys no LABEL: a RUN that writes the marker keeps each run from meeting an earlier one's cache."""
    return re.sub(r"^(LABEL marker=(@M@\w*))$", r"\1\nRUN echo \2 > /marker", df, flags=re.M)


def edit_text(name: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(ctx: Path) -> None:
        text = (ctx / name).read_text()
        assert old in text, old
        (ctx / name).write_text(text.replace(old, new))
    return edit


def write(name: str, text: str) -> Callable[[Path], None]:
    def edit(ctx: Path) -> None:
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return edit


def both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(ctx: Path) -> None:
        for one in edits:
            one(ctx)
    return edit


DF = "Dockerfile"
SCENARIOS: dict[str, tuple[str, Callable[[Path], None], dict]] = {
    "1": ("content of a.txt changed", write("a.txt", "a2\n"), {}),
    "2": ("touch a.txt (mtime only)", lambda c: os.utime(c / "a.txt", (1e9, 1e9)), {}),
    "3": ("chmod 755 a.txt", lambda c: os.chmod(c / "a.txt", 0o755), {}),
    "4": ("ENV A=1 -> A=2", edit_text(DF, "ENV A=1", "ENV A=2"), {}),
    "5": ("LABEL x=y added", edit_text(DF, "ENV A=1\n", "ENV A=1\nLABEL x=y\n"), {}),
    "6": ("comment and blank lines added", edit_text(DF, "ENV A=1\n", "ENV A=1\n# hi\n\n"), {}),
    "7": ("extra spaces in a COPY and a RUN", both(edit_text(DF, "COPY b.txt /b.txt", "COPY  b.txt  /b.txt"),
                                                   edit_text(DF, "RUN echo done", "RUN   echo  done")), {}),
    "8": ("two COPY steps swapped", edit_text(DF, "COPY a.txt /a.txt\nCOPY b.txt /b.txt\n",
                                              "COPY b.txt /b.txt\nCOPY a.txt /a.txt\n"), {"df": TWO_COPIES}),
    "9": ("--build-arg V 1 -> 2", lambda c: None, {"df": ARGS, "a1": {"V": "1"}, "a2": {"V": "2"}}),
    "10": ("--build-arg W 1 -> 2", lambda c: None, {"df": ARGS, "a1": {"W": "1"}, "a2": {"W": "2"}}),
    "11": ("--build-arg Z, declared nowhere", lambda c: None, {"df": ARGS, "a2": {"Z": "2"}}),
    "12": ("stage rebuilt, same artifact", write("a.txt", "a2\n"), {"df": MULTI}),
    "13": ("stage rebuilt, artifact changed", write("a.txt", "b2\n"), {"df": MULTI}),
    "14": ("ignored files edited, a comment in the Dockerfile",
           both(write("x.log", "l2\n"), write("__pycache__/m.pyc", "q"), write("docs/x.md", "x2"),
                edit_text(DF, "RUN ls", "# c\nRUN ls")), {"df": IGNORED, "files": IGNORED_FILES}),
    "15": ("docs/keep.md edited", write("docs/keep.md", "k2\n"), {"df": IGNORED, "files": IGNORED_FILES}),
    "16": ("new sub/y.log", write("sub/y.log", "y"), {"df": IGNORED, "files": IGNORED_FILES}),
    "17": ("CMD changed at the end", edit_text(DF, 'CMD ["x"]', 'CMD ["y"]'), {"df": STD + 'CMD ["x"]\n'}),
    "18": ("ENV change before a RUN with the same output", edit_text(DF, "ENV A=1", "ENV A=2"),
           {"df": f"{B}\nLABEL marker=@M@\nENV A=1\nRUN echo hi > /hi\nCOPY a.txt /a.txt\n"}),
    "19": ("the same RUN in two stages (b.txt edited)", write("b.txt", "b2\n"), {"df": SHARED, "show_first": True}),
    "20": ("--target middle", write("b.txt", "b2\n"), {"df": TARGET, "target": "middle"}),
    "22": ("ENV A=1 -> 'ENV A=1   ', 'ENV  A=1', 'env A=1'; 'WORKDIR  /w'; 'LABEL  x=y'",
           edit_text(DF, "ENV A=1\n", "ENV A=1   \n"), {"more": [
               edit_text(DF, "ENV A=1\n", "ENV  A=1\n"), edit_text(DF, "ENV A=1\n", "env A=1\n"),
               (WORKDIR, edit_text(DF, "WORKDIR /w\n", "WORKDIR  /w\n")),
               (WORKDIR, edit_text(DF, "LABEL x=y\n", "LABEL  x=y\n"))]}),
    "23": ("trailing spaces after a RUN, after a COPY",
           edit_text(DF, "RUN echo done\n", "RUN echo done   \n"),
           {"more": [edit_text(DF, "COPY a.txt /a.txt\n", "COPY a.txt /a.txt   \n")]}),
    "24": ("COPY --link after a RUN that re-runs (ENV A=1 -> A=2); then a.txt edited; then a new base stage",
           edit_text(DF, "ENV A=1", "ENV A=2"),
           {"df": LINK, "more": [write("a.txt", "a2\n"), (LINK_BASE, edit_text(DF, "echo one", "echo two"))]}),
    "25": ("WORKDIR (new folder, then /), ENV, LABEL: steps and layers (nothing edited)", lambda c: None,
           {"df": META, "show_first": True}),
    "26": ("ADD of a local file: touch, then chmod 755", lambda c: os.utime(c / "a.txt", (1e9, 1e9)),
           {"df": ADD, "more": [lambda c: os.chmod(c / "a.txt", 0o755)]}),
    "27": ("RUN <<EOF heredoc: its body edited, then a.txt edited", edit_text(DF, "echo one", "echo two"),
           {"df": HEREDOC, "more": [write("a.txt", "a2\n")]}),
    "28": ("RUN --mount=type=cache on /root/.cache/pip, then on a wheel folder: requirements.txt changed",
           write("requirements.txt", "flask==2.3.1\n# changed\n"),
           {"df": PIP, "files": PIP_FILES, "more": [(PIP_WHEELS, write("requirements.txt", "flask==2.3.1\n# c\n"))]}),
}


def run(cli, name: str, edit: Callable[[Path], None], df: str = STD, files: dict | None = None,
        a1: dict | None = None, a2: dict | None = None, target: str | None = None,
        show_first: bool = False, buildkit: bool = False) -> None:
    marker = uuid.uuid4().hex[:10]
    builder = build_buildkit if buildkit else build
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp) / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text((with_run_marker(df) if buildkit else df).replace("@M@", marker))
        for rel, text in (files or {"a.txt": "a\n", "b.txt": "b\n"}).items():
            write(rel, text)(ctx)
        if files and files is not PIP_FILES:
            (ctx / ".dockerignore").write_text(IGNORE)
        first = builder(cli, ctx, a1, target)
        edit(ctx)
        second = builder(cli, ctx, a2, target)
    print(f"== {name}")
    if show_first:
        print("   first build: " + "; ".join(f"{state} {inst}" for inst, state in first.steps))
    for inst, state in second.steps:
        print(f"   {state:4} {inst}")
    same = " ".join("=" if a == b else "new" for a, b in zip(first.layers, second.layers))
    print(f"   layers: {len(first.layers)} then {len(second.layers)}, by position against the first build: {same}")
    words = Counter(w for line in second.output for w in PIP_WORDS if w in line)
    if words:
        print("   pip said: " + ", ".join(f"{w} x{n}" for w, n in words.items()))


def main(argv: list[str]) -> None:
    buildkit = "--buildkit" in argv
    rows = [a for a in argv if a != "--buildkit"]
    cli = from_env(timeout=600)
    for row, (name, edit, opts) in SCENARIOS.items():
        if rows and row not in rows:
            continue
        opts = dict(opts)
        more = opts.pop("more", [])
        run(cli, f"{row}. {name}", edit, buildkit=buildkit, **opts)
        for extra in more:
            df, extra_edit = extra if isinstance(extra, tuple) else (opts.get("df", STD), extra)
            run(cli, f"{row}. {name} (variant)", extra_edit, df=df, files=opts.get("files"), buildkit=buildkit)


if __name__ == "__main__":
    main(sys.argv[1:])
