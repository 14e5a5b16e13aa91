"""A throw-away single-node SLURM cluster for tests (root, Debian's slurm + munge packages).

munged, slurmctld and slurmd run in the foreground as children of the test process, with all
their state under one temporary directory, and are stopped by PID afterwards. Nothing needs
systemd. Outside the temporary directory:

* ``/etc/slurm/slurm.conf``: the SLURM executor plugin starts each job step with ``srun`` in an
  environment without ``SLURM_CONF``, so the default path must hold the test's configuration.
  A pre-existing file is saved beside it and put back.
  A pre-existing file of our own (a killed earlier run) is stale and removed.
* a lock file in the system temp directory, so that two test sessions on one machine take turns.

munge's socket, key and logs live in the temporary directory; slurm.conf points at that socket
(``AuthInfo=socket=...``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

APT_PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "srun", "sinfo", "scontrol"]
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
PARTITION = "kntest"
CONF_MARKER = "# Written by tests/slurm_cluster.py for one test run."
LOCK_FILE = Path(tempfile.gettempdir()) / "kneurons-slurm-test.lock"


class ClusterUnavailable(RuntimeError):
    """SLURM cannot be started here (not root, or the packages are not installed)."""


@dataclass
class Cluster:
    """A running cluster: where its config is and which partition to submit to."""

    conf: Path
    root: Path
    partition: str
    node: str
    cpus: int
    real_memory_mb: int

    def env(self) -> dict[str, str]:
        """Environment for SLURM client commands (sbatch, squeue) aimed at this cluster."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def logs(self) -> str:
        """The daemons' logs, for a failing test's message."""
        parts = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.root / "log" / name
            if path.exists():
                parts.append(
                    f"--- {name} (last 40 lines) ---\n" + "\n".join(path.read_text().splitlines()[-40:])
                )
        return "\n".join(parts)


def ensure_installed() -> None:
    """Check that the SLURM and munge binaries exist; never installs anything.

    A test must not install system packages: ``.ci/run`` installs ``APT_PACKAGES`` before it runs
    ``make test-slurm``. Raises ClusterUnavailable with the reason (not root, or which binaries are
    missing and how to get them).
    """
    if os.geteuid() != 0:
        raise ClusterUnavailable("needs root (daemons run as root, /etc/slurm/slurm.conf is written)")
    missing = [b for b in BINARIES if not shutil.which(b)]
    if missing:
        raise ClusterUnavailable(
            f"SLURM binaries missing ({', '.join(missing)}): install the Debian packages "
            f"{' '.join(APT_PACKAGES)} first (apt-get install {' '.join(APT_PACKAGES)}; .ci/run does)"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line(nodename: str) -> tuple[str, int, int]:
    """The NodeName line from ``slurmd -C`` (the real CPUs and memory), renamed to nodename."""
    out = subprocess.run(["slurmd", "-C"], check=True, capture_output=True, text=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("NodeName="))
    fields = dict(tok.split("=", 1) for tok in line.split())
    fields["NodeName"] = nodename
    cpus = int(fields["CPUs"])
    mem = int(fields.get("RealMemory", "1000"))
    return " ".join(f"{k}={v}" for k, v in fields.items()), cpus, mem


def _write_conf(root: Path, nodename: str, sock: Path) -> tuple[Path, int, int]:
    node_line, cpus, mem = _node_line(nodename)
    for sub in ("state", "spool", "log", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(
        f"""{CONF_MARKER}
ClusterName=kneurons-test
SlurmctldHost={socket.gethostname().split(".")[0]}(127.0.0.1)
MailProg=/bin/true
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
# No cgroups and no systemd here: track processes through /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Keep finished jobs visible to squeue long enough for the executor's status checks.
MinJobAge=600
SlurmdTimeout=60
{node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName={PARTITION} Nodes={nodename} Default=YES MaxTime=INFINITE State=UP
"""
    )
    return conf, cpus, mem


def _start_munge(root: Path) -> tuple[subprocess.Popen, Path]:
    mdir = root / "munge"
    mdir.mkdir(mode=0o700)
    # munged checks that its socket directory is not writable by others and readable by clients.
    sockdir = root / "munge-run"
    sockdir.mkdir()
    os.chmod(sockdir, 0o755)
    key = mdir / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    sock = sockdir / "munge.socket.2"
    log = root / "log"
    log.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [
            "munged",
            "-F",
            "--force",
            f"--key-file={key}",
            f"--socket={sock}",
            f"--pid-file={mdir}/munged.pid",
            f"--log-file={log}/munged.log",
            f"--seed-file={mdir}/munged.seed",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait(lambda: sock.exists(), 20, "munged socket", proc)
    return proc, sock


def _wait(cond, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with code {proc.returncode}")
        time.sleep(0.25)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _raise_on_sigterm(signum: int, _frame) -> None:
    raise SystemExit(f"terminated by signal {signum}")


def _queue_empty(env: dict[str, str]) -> bool:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], check=False, env=env, capture_output=True, text=True)
    return out.returncode == 0 and not out.stdout.strip()


def _stop(proc: subprocess.Popen) -> None:
    """Stop one daemon we started, by its PID: SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextlib.contextmanager
def single_node_cluster(root: Path) -> Iterator[Cluster]:
    """Start munged, slurmctld and slurmd with state under ``root``; stop them on exit.

    The node is this machine as ``slurmd -C`` reports it, in one partition named ``kntest``.
    """
    ensure_installed()
    # One cluster at a time per machine: job steps' srun reads the one /etc/slurm/slurm.conf, so
    # a second test run (another pytest session) would steer this run's jobs to its controller.
    lock = open(LOCK_FILE, "w")  # noqa: SIM115 - held until the end of the context
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with _cluster(root) as cluster:
            yield cluster
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


@contextlib.contextmanager
def _cluster(root: Path) -> Iterator[Cluster]:
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    nodename = "kntest-node"
    procs: list[subprocess.Popen] = []
    saved: Path | None = None
    wrote_system_conf = False
    env = dict(os.environ)
    # A SIGTERM (e.g. `timeout`, a CI runner giving up) must still reach the clean-up below:
    # turn it into an exception. The daemons run in their own sessions, so a signal sent to the
    # test's process group does not kill them before their jobs are cancelled.
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        munged, sock = _start_munge(root)
        procs.append(munged)
        conf, cpus, mem = _write_conf(root, nodename, sock)
        if SYSTEM_CONF.exists():
            if SYSTEM_CONF.read_text(errors="replace").startswith(CONF_MARKER):
                SYSTEM_CONF.unlink()  # left by a killed earlier run (we hold the lock): stale
            else:
                saved = SYSTEM_CONF.with_name(f"slurm.conf.kneurons-test-saved-{os.getpid()}")
                SYSTEM_CONF.rename(saved)
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(conf, SYSTEM_CONF)
        wrote_system_conf = True
        env["SLURM_CONF"] = str(conf)
        ctld = subprocess.Popen(
            ["slurmctld", "-D", "-i", "-f", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        procs.append(ctld)

        def ctld_up() -> bool:
            return (
                subprocess.run(["scontrol", "ping"], check=False, env=env, capture_output=True).returncode
                == 0
            )

        _wait(ctld_up, 60, "slurmctld to answer `scontrol ping`", ctld)
        slurmd = subprocess.Popen(
            ["slurmd", "-D", "-N", nodename, "-f", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        procs.append(slurmd)

        def node_idle() -> bool:
            out = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], check=False, env=env, capture_output=True, text=True
            )
            return out.returncode == 0 and out.stdout.strip().rstrip("*") == "idle"

        _wait(node_idle, 60, "the node to become idle in sinfo", slurmd)
        yield Cluster(conf=conf, root=root, partition=PARTITION, node=nodename, cpus=cpus, real_memory_mb=mem)
    finally:
        if len(procs) == 3 and procs[1].poll() is None:
            # Jobs of a failed run would outlive slurmd (slurmstepd detaches): cancel them first.
            subprocess.run(["scancel", "--partition", PARTITION], check=False, env=env, capture_output=True)
            with contextlib.suppress(RuntimeError):
                _wait(lambda: _queue_empty(env), 20, "cancelled jobs to leave the queue")
        for proc in reversed(procs):
            _stop(proc)
        if wrote_system_conf:
            SYSTEM_CONF.unlink(missing_ok=True)
        if saved is not None:
            saved.rename(SYSTEM_CONF)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
