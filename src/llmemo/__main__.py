"""`python -m llmemo` is the `llmemo` command."""

from llmemo.cli.main import main

main()
