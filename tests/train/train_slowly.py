"""``python train_slowly.py SECONDS ARGS...``: train.py ARGS with every training batch delayed by SECONDS.

Lets a test signal or kill a run mid-epoch however fast the machine is. The
delay is a sleep in the data iterator: what the steps compute is unchanged.
"""

import runpy
import sys
import time
from pathlib import Path

import jaxconv.data

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    delay = float(sys.argv[1])
    batches = jaxconv.data.train_batches

    def slow_batches(*args, **kwargs):
        for batch in batches(*args, **kwargs):
            time.sleep(delay)
            yield batch

    jaxconv.data.train_batches = slow_batches
    sys.argv = [str(REPO / "train.py"), *sys.argv[2:]]
    sys.path.insert(0, str(REPO))  # train.py's directory, as `python train.py` would have it
    runpy.run_path(str(REPO / "train.py"), run_name="__main__")


if __name__ == "__main__":
    main()
