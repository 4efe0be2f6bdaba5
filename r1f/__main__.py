from r1f.cli import main

main()
