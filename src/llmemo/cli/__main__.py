from llmemo.cli.main import main

main()
