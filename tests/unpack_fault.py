"""Make a private engine meet moby/buildkit#6521 on demand: its unpack loses a snapshot between checking and using it.

BuildKit (up to 0.28) unpacks a built image one layer at a time.  For a layer
whose snapshot exists it only checks that it does; the next layer's snapshot is
then prepared on top of it.  When nothing references the checked snapshot and
containerd's garbage collector runs in between, the prepare fails with
``failed to prepare extraction snapshot ... parent snapshot ... does not exist``.
On its own that happens now and then (6 of 400 rebuilds under one tag here).

:class:`UnpackFault` makes it happen every time: gdb stops dockerd where the
unpack is about to prepare a layer (``pkg/rootfs.applyLayers``, found by name in
the Go symbol table that stripped Go binaries keep), removes the planned images
and runs the collector through containerd's own client (``ctr images rm --sync``,
``ctr leases rm --sync``), and lets dockerd go on.  A snapshot the unpack checked a
moment before and holds no reference to is gone, as when the collector wins the
race.  Nothing of dockerd is changed: its memory is only read, and gdb's
breakpoint is taken out when it detaches.

Needs root, gdb, and a private engine on the containerd store (its dockerd runs
its own containerd at ``/run/dlc-NAME/containerd/containerd.sock``).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

APPLY_LAYERS = "github.com/containerd/containerd/v2/pkg/rootfs.applyLayers"


def _section(data: bytes, want: str) -> tuple[int, int]:
    """(address, file offset) of an ELF64 section."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, ...]:
        return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)

    names = header(shstrndx)[4]
    for i in range(shnum):
        h = header(i)
        if data[names + h[0]:data.index(b"\0", names + h[0])].decode() == want:
            return h[3], h[4]
    raise LookupError(f"no {want} section")


def go_function_address(pid: int, name: str) -> int:
    """Where function ``name`` of the (stripped) Go program ``pid`` starts in its memory.

    The program's pclntab (Go 1.20+ layout) gives the function's offset from the start of
    Go's text; that start is read from the runtime's module data, which points back at the
    pclntab, so position-independent binaries are handled too.
    """
    exe = Path(f"/proc/{pid}/exe").resolve()
    data = exe.read_bytes()
    addr, off = _section(data, ".gopclntab")
    if struct.unpack_from("<I", data, off)[0] != 0xFFFFFFF1:
        raise LookupError(f"{exe}: not a Go 1.20+ symbol table")
    nfunc, _nfiles, _text, names, _cu, _files, _pc, table = struct.unpack_from("<8Q", data, off + 8)
    entry = None
    for i in range(nfunc):
        offset, fn = struct.unpack_from("<II", data, off + table + 8 * i)
        start = off + names + struct.unpack_from("<i", data, off + table + fn + 4)[0]
        if data[start:data.index(b"\0", start)] == name.encode():
            entry = offset
            break
    if entry is None:
        raise LookupError(f"{exe} has no function {name}")
    maps = [line.split() for line in Path(f"/proc/{pid}/maps").read_text().splitlines()]
    mine = [m for m in maps if len(m) > 5 and Path(m[5]) == exe]
    base = next(int(m[0].split("-")[0], 16) for m in mine if m[2] == "00000000")
    pointer = struct.pack("<Q", base + addr)  # moduledata starts with a pointer to the pclntab
    with open(f"/proc/{pid}/mem", "rb") as mem:
        for m in (m for m in mine if "w" in m[1]):
            low, high = (int(x, 16) for x in m[0].split("-"))
            mem.seek(low)
            block = mem.read(high - low)
            at = block.find(pointer)
            while at >= 0:
                words = struct.unpack_from("<23Q", block, at)
                minpc, maxpc, text = words[20], words[21], words[22]  # after the pointer and six slices
                if minpc == text and maxpc > minpc:
                    return text + entry
                at = block.find(pointer, at + 8)
    raise LookupError(f"{exe}: the runtime's module data was not found")


_SCRIPT = r"""
import hashlib, json, struct, subprocess, gdb
plan = json.load(open(PLAN))
gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("handle all nostop noprint pass")
# Go preempts a goroutine that ran long (here: stopped) with SIGURG and makes it re-execute the
# instruction it was on, which hits the breakpoint a second time for the same call: drop it.
gdb.execute("handle SIGURG nostop noprint nopass")
# After the prologue's stack check: a call that grows its stack enters the function twice.
insns = gdb.selected_inferior().architecture().disassemble(plan["address"], count=8)
after = next(insns[i + 1]["addr"] for i, ins in enumerate(insns) if ins["asm"].startswith("jbe"))

def parent():
    # applyLayers(ctx, layers, chain, ...) under Go's register ABI: chain's pointer and length in r8 and r9.
    memory = gdb.selected_inferior()
    pointer, length = int(gdb.parse_and_eval("$r8")), int(gdb.parse_and_eval("$r9"))
    digests = []
    for i in range(length):
        data, size = struct.unpack("<QQ", bytes(memory.read_memory(pointer + 16 * i, 16)))
        digests.append(bytes(memory.read_memory(data, size)).decode())
    chain = digests[0]
    for digest in digests[1:-1]:
        chain = "sha256:" + hashlib.sha256((chain + " " + digest).encode()).hexdigest()
    return chain, length

class Hit(gdb.Breakpoint):
    done = 0
    last = None
    def stop(self):
        call = (int(gdb.parse_and_eval("$rsp")), int(gdb.parse_and_eval("$r8")))
        if call == self.last:
            return False  # the same call again (see SIGURG above)
        self.last = call
        chain, length = parent()
        results = [subprocess.run(cmd, capture_output=True, text=True) for cmd in plan["hits"][self.done]]
        self.done += 1
        with open(plan["log"], "a") as out:
            out.write(json.dumps({"layers": length, "parent": chain,
                                  "results": [[r.returncode, r.stdout + r.stderr] for r in results]}) + "\n")
        return self.done >= len(plan["hits"])  # stop (then detach) after the last planned hit

Hit("*" + hex(after))
open(plan["armed"], "w").close()
try:
    gdb.execute("continue")
except BaseException:
    pass  # interrupted: the test is over without every planned hit
gdb.execute("detach")
"""


@dataclass(frozen=True)
class At:
    """What happens at one stop of the unpack, before it prepares the next layer: images go, the collector runs.

    Attributes:
        remove: images to remove first, as containerd names them (``docker.io/library/NAME:TAG``).
    """

    remove: tuple[str, ...] = ()


class UnpackFault:
    """While the block runs, the private engine's next unpacks stop before laying a layer, as planned.

    At each stop the planned images are removed, then the garbage collector runs: a snapshot
    the unpack checked but holds no reference to is then gone, as when the collector wins the race.

    Args:
        engine: a running :class:`~course_helpers.engine.daemon.PrivateEngine` on the containerd store.
        plan: one :class:`At` per stop, in order; after the last one the engine runs freely.

    Attributes:
        hits: per stop, the chain length of the layer about to be laid (``layers``), the snapshot it
            goes on (``parent``), and what each command printed (``results``); filled at exit.
    """

    def __init__(self, engine, plan: list[At]):
        self.engine = engine
        self.plan = plan
        self.hits: list[dict] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="unpack-fault-"))
        self._id = uuid.uuid4().hex[:8]
        self._gdb: subprocess.Popen | None = None

    @staticmethod
    def missing() -> str | None:
        """What this machine lacks to run it, or None."""
        if os.geteuid() != 0:
            return "root (gdb attaches to the private dockerd)"
        if shutil.which("gdb") is None:
            return "gdb (apt-get install gdb)"
        return None

    def __enter__(self) -> "UnpackFault":
        pid = int((self.engine.exec_root / "dockerd.pid").read_text())
        socket = self.engine.exec_root / "containerd" / "containerd.sock"
        ctr = [str(self.engine.release.bin / "ctr"), "-a", str(socket), "-n", "moby"]
        lease = [ctr + ["leases", "create", "--id", f"unpack-fault-{self._id}"],
                 ctr + ["leases", "rm", "--sync", f"unpack-fault-{self._id}"]]  # runs the collector
        plan = {"address": go_function_address(pid, APPLY_LAYERS), "log": str(self._tmp / "hits.jsonl"),
                "armed": str(self._tmp / "armed"),
                "hits": [[ctr + ["images", "rm", "--sync", ref] for ref in at.remove] + lease for at in self.plan]}
        (self._tmp / "plan.json").write_text(json.dumps(plan))
        (self._tmp / "script.py").write_text(f"PLAN = {str(self._tmp / 'plan.json')!r}\n" + _SCRIPT)
        self._gdb = subprocess.Popen(["gdb", "-q", "-batch", "-nx", "-p", str(pid), "-x", str(self._tmp / "script.py")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while not Path(plan["armed"]).exists():
            if self._gdb.poll() is not None or time.monotonic() > deadline:
                out = self._gdb.communicate()[0] if self._gdb.poll() is not None else "(still starting)"
                self.__exit__()
                raise RuntimeError(f"gdb did not arm its breakpoint in dockerd {pid}: {out[-2000:]}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._gdb is not None:
            if self._gdb.poll() is None:
                self._gdb.send_signal(signal.SIGINT)  # gdb stops dockerd, then the script detaches
            try:
                self._gdb.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                self._gdb.kill()
                self._gdb.communicate()
        log = self._tmp / "hits.jsonl"
        self.hits = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        shutil.rmtree(self._tmp, ignore_errors=True)
