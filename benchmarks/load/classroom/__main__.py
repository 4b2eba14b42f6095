"""`python -m benchmarks.load.classroom`: the classroom benchmark, whose flags and figures the package's docstring
describes; its main is the driver's."""

from benchmarks.load.classroom.driver import main

if __name__ == "__main__":
    main()
