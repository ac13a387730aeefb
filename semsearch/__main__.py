"""``python -m semsearch``: the same command as the installed ``semsearch`` script."""

from .cli import main

if __name__ == "__main__":
    main()
