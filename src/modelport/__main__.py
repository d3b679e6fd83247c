"""``python -m modelport`` behaves like the ``modelport`` console script."""

from modelport.cli import main

if __name__ == "__main__":
    main()
