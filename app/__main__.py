"""`python -m app` runs the gpuledger CLI."""

from app.cli import run

run()
