"""What the Python benchmarks share, so that they time and report alike:
best() takes a read's timing, report() prints the Markdown table and writes
it to the --markdown file."""
import time


def best(fn, repeat=3):
    """The fastest of `repeat` runs of fn(), in seconds: the run the rest of
    the machine disturbed least."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def report(lines, md=None):
    text = "\n".join(lines) + "\n"
    print(text)
    if md:
        with open(md, "w") as f:
            f.write(text)
