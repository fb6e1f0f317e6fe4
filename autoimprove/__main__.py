"""`python -m autoimprove` is the `autoimprove` command."""

from autoimprove.cli import app

app()
