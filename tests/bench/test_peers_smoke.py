"""bench.peers on one tiny cell (K=1, L=0.05 s, 3 messages) per daemon (gammu-smsd, smstools3,
Kannel), so that it does not rot.

Each peer runs beside gsmgw (the ratio needs both); a peer whose binary is missing is
skipped with the Debian package to install.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import peers

# Long end-to-end runs: `make test-fast` leaves them out.
pytestmark = pytest.mark.slow


def _leftovers(workdir: Path) -> list[str]:
    """Processes still running whose command line names the run's directory (daemons, emulator)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in argv:
            found.append(f"{cmdline.parent.name}: {argv}")
    return found


def _check_row(report: dict, daemon: str) -> dict:
    [cell] = report["cells"]
    assert (cell["modems"], cell["latency_s"], cell["messages"], cell["ideal_per_minute"]) == (1, 0.05, 3, 1200.0)
    result = cell["results"][daemon]
    assert result["errors"] == []
    [run] = result["runs"]
    # All three get the same work, measured from the modem side: 3 submits, each asking for a report.
    assert run["sent"] == 3 and run["per_modem_sent"] == [3]
    assert run["status_reports_requested"] == 3
    assert 0 < run["fraction_of_ideal"] <= 1.05
    assert run["per_minute"] == pytest.approx(run["fraction_of_ideal"] * 1200, rel=0.01)
    assert 0 < run["utilisation"] <= 1.05
    # Read from /proc over the busy period: CPU per message and peak memory of the daemon's processes.
    assert run["cpu_ms_per_message"] >= 0 and run["cpu_busy_s"] >= 0
    assert run["memory"]["processes"] >= 1 and run["memory"]["hwm_mb"] > 1
    assert len(run["load_before"]) == 3
    return cell


@pytest.mark.timeout(60)
def test_gsmgw_alone(tmp_path: Path) -> None:
    report = peers.run([1], [0.05], 3, 1, daemons=["gsmgw"], keep_dir=tmp_path)
    cell = _check_row(report, "gsmgw")
    assert cell["gsmgw_over"] == {}
    table = peers.to_markdown(report)
    assert "| 1 | 0.05 | 1200 |" in table and "gammu-smsd" not in table
    assert _leftovers(tmp_path) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("peer", peers.PEERS)
def test_peer_beside_gsmgw(peer: str, tmp_path: Path) -> None:
    why = peers.availability()[peer]
    if why:
        pytest.skip(why)
    report = peers.run([1], [0.05], 3, 1, daemons=["gsmgw", peer], keep_dir=tmp_path)
    cell = _check_row(report, peer)
    _check_row(report, "gsmgw")
    ratio = cell["gsmgw_over"][peer]
    gsmgw_rate = cell["results"]["gsmgw"]["per_minute"]["median"]
    peer_rate = cell["results"][peer]["per_minute"]["median"]
    assert ratio["median"] == pytest.approx(gsmgw_rate / peer_rate, rel=0.01)
    assert f"gsmgw ÷ {peer}" in peers.to_markdown(report)
    assert report["versions"][peer] != "unknown"
    # Every daemon and emulator process was stopped, children included.
    assert _leftovers(tmp_path) == []


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        peers.run([1], [0.05], 1, 1)
    with pytest.raises(ValueError, match="unknown daemon"):
        peers.run([1], [0.05], 3, 1, daemons=["nokia-pc-suite"])
    with pytest.raises(ValueError, match="repeats"):
        peers.run([1], [0.05], 3, 0)
