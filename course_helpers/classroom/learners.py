"""Learners: system users, their copy of the course, and a disk of their own for their engine.

Each learner's engine keeps its images and build cache on a disk image of its
own (a sparse file, ext4, loop-mounted at ``engines/<learner>``), so a learner
who fills their engine's disk fills only that: the other learners' engines,
and the machine's own disk, keep their room.  The learner's home (notebooks,
workspace) stays on the machine's disk; quotas on /home would bound that.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import SetupError
from .state import Paths

#: What ``useradd`` is told the account is for, and how ``down --purge`` recognises one it may delete.
GECOS = "docker-layers-course learner"
COURSE_FOLDER = "docker-layers-course"


@dataclass(frozen=True)
class Learner:
    """One learner's account.

    Attributes:
        name: login name.
        uid, gid: their user and group ids.
        home: their home folder (mode 0700).
        subuids: first subordinate uid and how many (their rootless engine's containers run as these).
    """

    name: str
    uid: int
    gid: int
    home: Path
    subuids: tuple[int, int]

    @property
    def course_dir(self) -> Path:
        """Their copy of the notebooks and their workspace (the server opens here)."""
        return self.home / COURSE_FOLDER

    @property
    def runtime_dir(self) -> Path:
        """Their ``XDG_RUNTIME_DIR``, made here as logind would (no systemd on a course VM)."""
        return Path(f"/run/user/{self.uid}")

    def owns_uid(self, uid: int) -> bool:
        """Whether a process running as ``uid`` is theirs: their own uid or one of their subordinate ids."""
        start, count = self.subuids
        return uid == self.uid or start <= uid < start + count


def _run(cmd: list[str], what: str, input: str | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if proc.returncode != 0:
        raise SetupError(f"{what} failed: `{' '.join(cmd)}` exited {proc.returncode}: "
                         f"{(proc.stderr or proc.stdout).strip()[:300]}")
    return proc.stdout


def _subordinate(name: str, uid: int, table: str = "/etc/subuid") -> tuple[int, int] | None:
    try:
        lines = Path(table).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) == 3 and fields[0] in (name, str(uid)):
            return int(fields[1]), int(fields[2])
    return None


def lookup(name: str) -> Learner | None:
    """The learner's account as the system has it, or None if there is no such user."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    subuids = _subordinate(name, pw.pw_uid) or (0, 0)
    return Learner(name, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir), subuids)


def is_course_account(name: str) -> bool:
    """Whether ``name`` is an account the classroom made (never delete anyone else's)."""
    try:
        return pwd.getpwnam(name).pw_gecos == GECOS
    except KeyError:
        return False


def check_name(name: str) -> str:
    """Refuse a login name that is not a safe Linux user name.

    Raises:
        SetupError: with the rule.
    """
    if not re.fullmatch(r"[a-z][a-z0-9]{0,23}", name):
        raise SetupError(f"A learner's login is a lowercase letter followed by up to 23 lowercase letters or "
                         f"digits, not {name!r}: choose another --prefix.")
    return name


def ensure_learner(name: str, password: str, course: Path, progress=print) -> Learner:
    """Create the learner's account if needed, set their password, give them a copy of the notebooks.

    An account that exists already and was not made by the classroom is refused,
    so the classroom never takes over someone's own login.

    Args:
        name: login name.
        password: their password for the hub (PAM).
        course: the classroom's copy of the course, whose notebooks they get.
        progress: one line per thing done.

    Returns:
        The learner.

    Raises:
        SetupError: the name belongs to another account, or useradd failed.
    """
    check_name(name)
    if lookup(name) is None:
        _run(["useradd", "--create-home", "--shell", "/bin/bash", "--comment", GECOS, name], f"Creating user {name}")
        progress(f"created the system user {name}")
    elif not is_course_account(name):
        raise SetupError(f"A user named {name} exists and is not a classroom learner: choose another --prefix.")
    learner = lookup(name)
    assert learner is not None
    if learner.subuids == (0, 0):
        # Older useradd (or SUB_UID_COUNT 0) gives none; rootless engines need 65536 of them.
        start = _free_subordinate_range()
        _run(["usermod", "--add-subuids", f"{start}-{start + 65535}", "--add-subgids",
              f"{start}-{start + 65535}", name], f"Giving {name} subordinate ids")
        learner = lookup(name)
        assert learner is not None
    _run(["chpasswd"], f"Setting {name}'s password", input=f"{name}:{password}\n")
    learner.home.chmod(0o700)  # learners do not read each other's work
    _give_course(learner, course)
    return learner


def link_buildx(learner: Learner, plugin: Path) -> None:
    """Give the learner's docker client the classroom's buildx: a link in ``~/.docker/cli-plugins``.

    The docker CLI looks for plugins there; a link (not ``DOCKER_CONFIG``) leaves their
    ``~/.docker`` writable for buildx's own state.  A plugin of their own is left alone.
    """
    plugins = learner.home / ".docker" / "cli-plugins"
    link = plugins / "docker-buildx"
    if link.exists() and not link.is_symlink():
        return
    plugins.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(plugin)
    for path in (plugins.parent, plugins, link):
        os.chown(path, learner.uid, learner.gid, follow_symlinks=False)


def _free_subordinate_range() -> int:
    used = [0]
    for table in ("/etc/subuid", "/etc/subgid"):
        try:
            for line in Path(table).read_text().splitlines():
                fields = line.split(":")
                if len(fields) == 3:
                    used.append(int(fields[1]) + int(fields[2]))
        except OSError:
            pass
    return max(max(used), 100000)


def _give_course(learner: Learner, course: Path) -> None:
    """Copy the notebooks into their course folder once; never overwrite their work."""
    target = learner.course_dir / "notebooks"
    if not target.exists():
        shutil.copytree(course / "notebooks", target)
    (learner.course_dir / "workspace").mkdir(parents=True, exist_ok=True)
    for folder, _, files in os.walk(learner.course_dir):
        os.chown(folder, learner.uid, learner.gid)
        for f in files:
            os.chown(os.path.join(folder, f), learner.uid, learner.gid, follow_symlinks=False)


def disk_image(where: Paths, learner: Learner) -> Path:
    return where.disks / f"{learner.name}.img"


def mount_point(where: Paths, learner: Learner) -> Path:
    return where.engines / learner.name


def is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def ensure_disk(where: Paths, learner: Learner, size_gb: int, owner_is_learner: bool) -> Path:
    """Make (once) and mount the learner's engine disk; return where it is mounted.

    Args:
        where: the classroom's folders.
        learner: whose disk.
        size_gb: its size; a sparse file, so only what the engine writes takes room.
        owner_is_learner: the engine runs as the learner (rootless), so the disk's top folder is theirs.

    Raises:
        SetupError: mkfs or mount failed (no loop devices, for example).
    """
    image = disk_image(where, learner)
    if not image.exists():
        partial = image.with_suffix(".partial")
        with open(partial, "wb") as f:
            f.truncate(size_gb * 1024 ** 3)
        # -m 0: no blocks kept for uid 0, who inside a rootless engine is the learner anyway.
        _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", learner.name[:16], str(partial)],
             f"Making {learner.name}'s engine disk")
        partial.replace(image)
    target = mount_point(where, learner)
    target.mkdir(exist_ok=True)
    if not is_mounted(target):
        # Plain options: a rootless engine's BuildKit bind-mounts from here inside its user namespace, and
        # the kernel refuses (EPERM) a bind mount that would drop a nosuid or nodev the mount was made with.
        _run(["mount", "-o", "loop", str(image), str(target)], f"Mounting {learner.name}'s engine disk")
    if owner_is_learner:
        os.chown(target, learner.uid, learner.gid)
    else:
        os.chown(target, 0, 0)
    target.chmod(0o700)
    return target


def release_disk(where: Paths, learner: Learner) -> None:
    """Unmount the learner's engine disk (its image and contents stay)."""
    target = mount_point(where, learner)
    for _ in range(20):
        if not is_mounted(target):
            return
        if subprocess.run(["umount", str(target)], capture_output=True).returncode == 0:
            continue
        time.sleep(0.5)  # a process that just exited may still hold it for a moment
    raise SetupError(f"Could not unmount {target}: something still uses it (see `fuser -vm {target}`).")


def disk_usage(where: Paths, learner: Learner) -> tuple[int, int] | None:
    """Bytes used and size of the learner's engine disk while mounted, else None."""
    target = mount_point(where, learner)
    if not is_mounted(target):
        return None
    stat = os.statvfs(target)
    size = stat.f_blocks * stat.f_frsize
    return size - stat.f_bfree * stat.f_frsize, size


def processes_of(learner: Learner) -> list[int]:
    """Pids running as the learner or as one of their subordinate ids (their engine's containers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
        except OSError:
            continue
        if learner.owns_uid(uid):
            pids.append(int(entry.name))
    return pids


def server_environment(learner: Learner) -> dict[str, str] | None:
    """The environment of the learner's running Jupyter server (what its kernels inherit), or None.

    Read from /proc, so it is what the hub really gave the server (``DOCKER_HOST`` among it).
    """
    for pid in processes_of(learner):
        try:
            if b"jupyterhub-singleuser" in Path(f"/proc/{pid}/cmdline").read_bytes():
                raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                return dict(item.decode().split("=", 1) for item in raw if b"=" in item)
        except OSError:
            continue
    return None


def end_processes(learner: Learner, grace: float = 10) -> int:
    """End every process of the learner: SIGTERM, then SIGKILL after ``grace`` seconds.  Returns how many there were."""
    pids = processes_of(learner)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and processes_of(learner):
            time.sleep(0.2)
        if not processes_of(learner):
            break
    return len(pids)


def remove_learner(where: Paths, learner: Learner) -> None:
    """Delete the account, their home, their engine disk and runtime folder (``down --purge``)."""
    end_processes(learner, grace=5)
    release_disk(where, learner)
    disk_image(where, learner).unlink(missing_ok=True)
    shutil.rmtree(mount_point(where, learner), ignore_errors=True)
    shutil.rmtree(learner.runtime_dir, ignore_errors=True)
    if is_course_account(learner.name):
        _run(["userdel", "--remove", learner.name], f"Removing user {learner.name}")
