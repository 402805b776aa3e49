from robustreid.cli.main import main

main()
