"""``python -m toolrun``: the same command line as the ``toolrun`` script."""

from .cli import main

if __name__ == "__main__":
    main()
