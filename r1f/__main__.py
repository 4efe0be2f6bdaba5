from r1f.entry import main

if __name__ == "__main__":  # a spawned child (a worker, a lane, a pretraining) imports this module again
    main()
