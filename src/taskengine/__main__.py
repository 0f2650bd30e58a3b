"""`python -m taskengine …`: the same command line as the `taskengine` script."""

from taskengine.cli import main

if __name__ == "__main__":
    main()
