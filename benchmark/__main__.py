from benchmark.cli import console

if __name__ == "__main__":  # not when a worker process (bench eval --workers) imports this module
    console()
