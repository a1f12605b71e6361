"""``gsmgw doctor``: check this host for what gsmgw needs, and say what to fix.

Each check prints ``OK``, ``WARN`` or ``FAIL`` with what it saw; WARN and FAIL
lines say how to fix it. The exit status is 1 when any check failed, else 0.
Run it as the user the service runs as (``sudo -u gsmgw gsmgw doctor``).
"""

from __future__ import annotations

import argparse
import errno
import glob
import grp
import os
import pwd
import socket
import stat
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from gsmgw.config import Config, ConfigError, load, parse_listen

EXIT_FAIL = 1

UDEV_DATA = Path("/run/udev/data")
UDEV_RULES_DIRS = (Path("/etc/udev/rules.d"), Path("/run/udev/rules.d"), Path("/lib/udev/rules.d"),
                   Path("/usr/lib/udev/rules.d"))
SERIAL_GLOBS = ("/dev/gsmgw/*", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/ttyAMA*", "/dev/serial0")


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass
class Finding:
    level: Level
    check: str
    message: str
    fix: str = ""


@dataclass
class Host:
    """What the checks read from the host; tests substitute their own."""

    uid: int = field(default_factory=os.getuid)
    groups: Sequence[int] = field(default_factory=os.getgroups)
    proc: Path = Path("/proc")
    udev_data: Path = UDEV_DATA
    rules_dirs: Sequence[Path] = UDEV_RULES_DIRS
    serial_globs: Sequence[str] = SERIAL_GLOBS
    mm_binaries: Sequence[str] = ("/usr/sbin/ModemManager", "/usr/bin/ModemManager")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check this host for gsmgw (permissions, ModemManager, ports, "
                       "config, database) and say what to fix", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", default=os.environ.get("GSMGW_CONFIG", "/etc/gsmgw/gsmgw.toml"),
                   help="TOML config file (env GSMGW_CONFIG; default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    findings = diagnose(args.config)
    report(findings, sys.stdout)
    return EXIT_FAIL if any(f.level is Level.FAIL for f in findings) else 0


def report(findings: Iterable[Finding], out: TextIO) -> None:
    for f in findings:
        print(f"{f.level.value:<4}  {f.check}: {f.message}", file=out)
        if f.fix and f.level is not Level.OK:
            print(f"      fix: {f.fix}", file=out)


def diagnose(config_path: str | Path, host: Host | None = None) -> list[Finding]:
    host = host or Host()
    out: list[Finding] = []
    cfg: Config | None = None
    try:
        cfg = load(config_path)
        out.append(Finding(Level.OK, "config", f"{config_path} is valid ({len(cfg.modem)} modem(s))"))
    except ConfigError as exc:
        out.append(Finding(Level.FAIL, "config", str(exc),
                           "edit the file; config/gsmgw.example.toml documents every key"))
    out.append(check_user(host))
    ports = [m.port for m in cfg.modem if m.port] if cfg else []
    out.extend(check_ports(ports, host))
    out.extend(check_modemmanager(ports, host))
    if cfg is not None:
        out.append(check_database(cfg))
        out.append(check_api_port(cfg))
        if not cfg.modem:
            out.append(Finding(Level.WARN, "modems", "no [[modem]] in the config: messages will queue "
                               "but nothing will send them", "add a [[modem]] block (gsmgw probe PORT prints one)"))
    return out


# --- permissions ------------------------------------------------------------------------


def check_user(host: Host) -> Finding:
    try:
        name = pwd.getpwuid(host.uid).pw_name
    except KeyError:
        name = str(host.uid)
    if host.uid == 0:
        return Finding(Level.WARN, "user", "running as root: every port opens, but the service "
                       "runs as user gsmgw", "run `sudo -u gsmgw gsmgw doctor` to check the service's view")
    try:
        dialout = grp.getgrnam("dialout").gr_gid
    except KeyError:
        return Finding(Level.WARN, "user", "this system has no dialout group",
                       "make sure the serial ports' group includes the gsmgw user")
    if dialout in host.groups:
        return Finding(Level.OK, "user", f"{name} is in dialout")
    return Finding(Level.FAIL, "user", f"{name} is not in the dialout group: serial ports will not open",
                   f"sudo usermod -aG dialout {name} (then log in again / restart the service)")


# --- serial ports -----------------------------------------------------------------------


def _visible_ports(host: Host) -> list[str]:
    seen: list[str] = []
    for pattern in host.serial_globs:
        seen += sorted(p for p in glob.glob(pattern) if p not in seen)
    return seen


def check_ports(ports: Sequence[str], host: Host) -> list[Finding]:
    out: list[Finding] = []
    visible = _visible_ports(host)
    if visible:
        out.append(Finding(Level.OK, "ports", "serial ports present: " + ", ".join(visible[:12])
                           + (" ..." if len(visible) > 12 else "")))
    elif not ports:
        out.append(Finding(Level.WARN, "ports", "no /dev/ttyUSB*, /dev/ttyACM* or /dev/gsmgw/* present",
                           "plug the modem in; `dmesg | tail` shows whether the kernel saw it "
                           "(a Huawei stick in HiLink mode has no serial port: see hw-notes.md)"))
    for port in ports:
        if "://" in port:
            out.append(Finding(Level.OK, f"port {port}", "network port, not checked here"))
            continue
        path = Path(port)
        if not path.exists():
            out.append(Finding(Level.FAIL, f"port {port}", "does not exist",
                               "check the cable and `ls -l /dev/gsmgw/ /dev/serial/by-id/`; "
                               "install udev/60-gsmgw.rules for stable names"))
            continue
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            out.append(Finding(Level.FAIL, f"port {port}", f"cannot stat: {exc.strerror}"))
            continue
        if not stat.S_ISCHR(mode):
            out.append(Finding(Level.WARN, f"port {port}", "is not a character device",
                               "point [[modem]].port at the modem's tty (or its /dev/gsmgw link)"))
        if os.access(path, os.R_OK | os.W_OK):
            out.append(Finding(Level.OK, f"port {port}", "exists and is readable and writable"))
        else:
            try:
                group = grp.getgrgid(path.stat().st_gid).gr_name
            except KeyError:
                group = str(path.stat().st_gid)
            out.append(Finding(Level.FAIL, f"port {port}", f"not readable and writable by this user "
                               f"(group {group}, mode {stat.filemode(mode)})",
                               f"add the user to group {group}, or set GROUP=/MODE= in the udev rule"))
    return out


# --- ModemManager -------------------------------------------------------------------------


def _mm_running(host: Host) -> bool:
    try:
        entries = list(host.proc.iterdir())
    except OSError:
        return False
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "ModemManager":
                return True
        except OSError:
            continue
    return False


def _rules_ignore_mm(host: Host) -> list[Path]:
    files = []
    for d in host.rules_dirs:
        try:
            candidates = sorted(d.glob("*.rules"))
        except OSError:
            continue
        for f in candidates:
            try:
                text = f.read_text(errors="replace")
            except OSError:
                continue
            if "gsmgw" in text and 'ENV{ID_MM_DEVICE_IGNORE}="1"' in text:
                files.append(f)
    return files


def _udev_props(port: str, host: Host) -> dict[str, str] | None:
    """The udev database entry of a device node (``E:KEY=VALUE`` lines), if udev keeps one."""
    try:
        st = os.stat(port)
    except OSError:
        return None
    if not stat.S_ISCHR(st.st_mode):
        return None
    db = host.udev_data / f"c{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    try:
        lines = db.read_text().splitlines()
    except OSError:
        return None
    return dict(line[2:].split("=", 1) for line in lines if line.startswith("E:") and "=" in line)


def check_modemmanager(ports: Sequence[str], host: Host) -> list[Finding]:
    installed = any(Path(b).exists() for b in host.mm_binaries)
    running = _mm_running(host)
    if not installed and not running:
        return [Finding(Level.OK, "ModemManager", "not installed")]
    rules = _rules_ignore_mm(host)
    state = "running" if running else "installed but not running"
    if not rules:
        level = Level.FAIL if running else Level.WARN
        return [Finding(level, "ModemManager", f"{state}, and no udev rule tells it to ignore gsmgw's "
                        "modems: it would probe them and can abort a send",
                        "sudo install -m 644 udev/60-gsmgw.rules /etc/udev/rules.d/ && sudo udevadm "
                        "control --reload && sudo udevadm trigger --subsystem-match=tty "
                        "(or: sudo systemctl disable --now ModemManager)")]
    out = [Finding(Level.OK, "ModemManager", f"{state}; ignore rules in {', '.join(str(r) for r in rules)}")]
    if not running:
        return out
    for port in ports:
        if "://" in port:
            continue
        props = _udev_props(port, host)
        if props is None:
            out.append(Finding(Level.WARN, f"port {port}", "udev has no record of it, so whether "
                               "ModemManager ignores it is unknown",
                               "check with `udevadm info -q property -n PORT | grep ID_MM`"))
        elif props.get("ID_MM_DEVICE_IGNORE") == "1":
            out.append(Finding(Level.OK, f"port {port}", "ModemManager ignores it (ID_MM_DEVICE_IGNORE=1)"))
        else:
            out.append(Finding(Level.FAIL, f"port {port}", "ModemManager is running and may open this port",
                               "add a rule for it to /etc/udev/rules.d (examples at the end of "
                               "udev/60-gsmgw.rules), then `sudo udevadm trigger --subsystem-match=tty`"))
    return out


# --- store and API ---------------------------------------------------------------------------


def check_database(cfg: Config) -> Finding:
    """The same view of the store as ``gsmgw run`` (store.ownership decides for both)."""
    from gsmgw.errors import StoreMissing
    from gsmgw.store import Store
    from gsmgw.store.migrate import current_revision, head_revision
    from gsmgw.store.ownership import check_expected, sqlite_path

    url = cfg.store.url
    db = sqlite_path(url)
    if db is not None:
        folder = db.parent
        if not folder.exists():
            return Finding(Level.FAIL, "database", f"folder {folder} does not exist",
                           f"create it for the service user: sudo install -d -o gsmgw -g gsmgw {folder} "
                           "(StateDirectory=gsmgw does this for /var/lib/gsmgw)")
        if not os.access(folder, os.W_OK | os.X_OK):
            return Finding(Level.FAIL, "database", f"folder {folder} is not writable by this user "
                           "(SQLite writes its -wal and -shm files and gsmgw its lock file there)",
                           f"sudo chown gsmgw: {folder}")
        if db.exists() and not os.access(db, os.R_OK | os.W_OK):
            return Finding(Level.FAIL, "database", f"{db} is not writable by this user", f"sudo chown gsmgw: {db}")
        if not db.exists():
            try:
                check_expected(url, create=False, hint=f"gsmgw store init --config {cfg.source}")
            except StoreMissing as exc:
                return Finding(Level.FAIL, "database", str(exc))
            return Finding(Level.OK, "database", f"{db} does not exist yet: the first start creates it")
    store = Store(url)
    try:
        current = current_revision(store.engine)
    except Exception as exc:
        return Finding(Level.FAIL, "database", f"cannot open {store.engine.url!r}: {type(exc).__name__}: {exc}",
                       "check [store].url, the server and the credentials")
    finally:
        store.close()
    head = head_revision()
    if current == head:
        return Finding(Level.OK, "database", f"writable, schema at {head}")
    if cfg.store.migrate_on_start:
        return Finding(Level.WARN, "database", f"schema at {current or 'nothing'}, code at {head}: "
                       "migrations will run at the next start", "nothing to do (take a backup first)")
    return Finding(Level.FAIL, "database", f"schema at {current or 'nothing'}, code at {head}, and "
                   "migrate_on_start is off", "run the migrations, or set [store] migrate_on_start = true")


def check_api_port(cfg: Config) -> Finding:
    host, port = parse_listen(cfg.api.listen)
    if port == 0:
        return Finding(Level.OK, "api", "port 0: any free port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return Finding(Level.WARN, "api", f"{host}:{port} is in use (fine if gsmgw is running)",
                               "otherwise stop what uses it (`ss -ltnp`) or change [api].listen")
            if exc.errno == errno.EACCES:
                return Finding(Level.FAIL, "api", f"{host}:{port}: ports below 1024 need privileges",
                               "use a port >= 1024, or add CAP_NET_BIND_SERVICE in a unit drop-in")
            return Finding(Level.FAIL, "api", f"cannot listen on {host}:{port}: {exc.strerror}",
                           "[api].listen must be an address of this host")
    return Finding(Level.OK, "api", f"{host}:{port} is free")
