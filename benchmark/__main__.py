import sys

from benchmark.cli import main

if __name__ == "__main__":  # not when a worker process (bench eval --workers) imports this module
    sys.exit(main())
