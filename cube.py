"""Twist the cube on your own data (model-zoo entry point): search the best TinyNet for a MACs or latency budget by
training candidates with train.py, re-time a latency search, fit your own tiny formula.

    python cube.py search DATA --macs 50M [--samples 8] [--epochs 5] [--device_num N] [--config C] [--out DIR]
    python cube.py remeasure SEARCH_DIR
    python cube.py fit SEARCH_DIR [SEARCH_DIR ...] [--published] --out formula.json

`python cube.py COMMAND --help` lists each command's options.
"""
import sys

from src.cube import main

if __name__ == "__main__":
    sys.exit(main())
