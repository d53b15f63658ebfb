"""Re-run, by hand, the cache experiments of docs/cache-rules.md on the engine DOCKER_HOST names.

Each scenario builds a fresh context (a unique marker, so no earlier cache is met), edits it,
builds again, and prints hit or miss per step as the engine printed it ("--> Using cache" for
Buildah, " ---> Using cache" for the classic builder): what the engine said, not what the
course's model thinks.  Through the Docker SDK's ``images.build``, so on Podman this is Buildah,
on dockerd the classic builder.

Usage: ``DOCKER_HOST=unix://.../podman.sock python tools/builder_experiments.py [ROW ...]``
(rows as in docs/cache-rules.md: ``1 2 4 19 22``...; none: all).  Images stay in the engine's
build cache; run it on a service of its own (``PodmanService``) and remove that afterwards.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
STEP = re.compile(r"(?:Step \d+/\d+ : |STEP \d+/\d+: )(.*)$")


def build(cli, ctx: Path, args: dict | None, target: str | None) -> list[list[str]]:
    steps: list[list[str]] = []
    for event in cli.api.build(path=str(ctx), rm=True, forcerm=True, decode=True, buildargs=args, target=target):
        for line in str(event.get("stream", "")).splitlines():
            match = STEP.search(line)
            if match:
                steps.append([match.group(1), "miss"])
            elif "Using cache" in line and steps:
                steps[-1][1] = "hit"
        if "error" in event:
            print("   build failed:", event["error"].strip())
    return steps


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
}


def run(cli, name: str, edit: Callable[[Path], None], df: str = STD, files: dict | None = None,
        a1: dict | None = None, a2: dict | None = None, target: str | None = None,
        show_first: bool = False) -> None:
    marker = uuid.uuid4().hex[:10]
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(df.replace("@M@", marker))
        for rel, text in (files or {"a.txt": "a\n", "b.txt": "b\n"}).items():
            write(rel, text)(ctx)
        if files:
            (ctx / ".dockerignore").write_text(IGNORE)
        first = build(cli, ctx, a1, target)
        edit(ctx)
        second = build(cli, ctx, a2, target)
    print(f"== {name}")
    if show_first:
        print("   first build: " + "; ".join(f"{state} {inst}" for inst, state in first))
    for inst, state in second:
        print(f"   {state:4} {inst}")


def main(rows: list[str]) -> None:
    cli = from_env(timeout=600)
    for row, (name, edit, opts) in SCENARIOS.items():
        if rows and row not in rows:
            continue
        more = opts.pop("more", [])
        run(cli, f"{row}. {name}", edit, **opts)
        for extra in more:
            df, extra_edit = extra if isinstance(extra, tuple) else (opts.get("df", STD), extra)
            run(cli, f"{row}. {name} (variant)", extra_edit, df=df)


if __name__ == "__main__":
    main(sys.argv[1:])
