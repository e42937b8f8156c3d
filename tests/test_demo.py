"""`make demo` runs for real: the embedded stack (Temporal dev server, worker, API,
simulator) takes the ringback-tone campaign through its three waves and stops cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_demo_runs_the_campaign_end_to_end_and_leaves_nothing_running(tmp_path):
    touchwave = Path(sys.executable).parent / "touchwave"
    env = {**os.environ, "TOUCHWAVE_VAR_DIR": str(tmp_path / "var")}
    env.pop("TOUCHWAVE_DATABASE_URL", None)
    result = subprocess.run([str(touchwave), "demo", "--subscribers", "2000", "--seconds-per-day", "0.3"],
                            capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    assert "http://127.0.0.1:8233/namespaces/default/workflows/campaign-1" in out
    assert "campaign finished" in out
    assert "Outbound calls placed to members who had already answered: 0." in out
    final = out.split("campaign finished")[-2].splitlines()
    row = {line.split()[0]: line.split() for line in final if line.startswith(("sms_broadcast", "outbound_call"))}
    assert int(row["sms_broadcast"][3]) > 1000 and int(row["outbound_call"][3]) > 0
    # the effect report: the control group held out and the uplift measured against it
    assert "held out as the control group" in out and "uplift" in out.split("held out as the control group")[1]
    # the event-triggered part: events over the API, each match's SMS claimed at once
    entered = int(out.split("data-usage events, ")[1].split(" matched")[0])
    assert entered > 0 and f"their add-on SMS: {entered} claimed for the gateway" in out
    leftover = subprocess.run(["pgrep", "-f", "--", f"--db-filename {tmp_path}"], capture_output=True)
    assert leftover.returncode == 1, "the Temporal dev server was left running"
