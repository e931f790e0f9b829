"""``python -m condensation``: the CLI."""

from condensation.cli import main

if __name__ == "__main__":
    main()
