"""One writer per output folder: a second run is refused with the holder's PID; a killed holder's lock is recovered."""
import os
import signal
import subprocess
import sys

from netsynth.lock import folder_lock
from test_cli_ingest import error_line, run

HOLD = "import sys, time\nfrom netsynth.lock import folder_lock\nwith folder_lock(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    time.sleep(120)\n"


def test_a_held_folder_is_refused_and_a_dead_holders_lock_recovered(capsys, demo_flows, tmp_path):
    demo_file = str(demo_flows.write(tmp_path / "demo.parquet"))
    folder = tmp_path / "m"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        for args in (["train", "markov", demo_file, "-o", str(folder)],
                     ["benchmark", demo_file, "-o", str(folder), "--quick"]):
            code, _, err = run(capsys, *args)
            line = error_line(code, err)
            assert f"{folder} is in use by another netsynth process (PID {holder.pid}: -c {folder})" in line
        assert not (folder / "config.json").exists()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    code, out, _ = run(capsys, "train", "markov", demo_file, "-o", str(folder))  # the kernel freed the dead holder's lock
    assert code == 0 and "trained markov" in out


def test_a_run_that_writes_nothing_leaves_no_folder(tmp_path):
    try:
        with folder_lock(tmp_path / "new"):
            raise ValueError("failed before writing")
    except ValueError:
        pass
    assert not (tmp_path / "new").exists()
