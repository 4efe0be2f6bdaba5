from r1f.entry import main

main()
