from ade_distill.cli import main

if __name__ == "__main__":
    main()
