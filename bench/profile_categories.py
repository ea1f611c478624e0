# Reads `perf script -F comm,tid,ip,sym` output (one call stack per sample) and prints the share
# of samples in each part of a flow run. A sample goes to the first category with a frame
# matching one of its patterns, most specific first. Used by bench/profile.sh.
import collections
import sys

CATEGORIES = [
    ("kernel: TCP send (sendto)", ["sendto", "poll_write", "writev"]),
    ("kernel: receive (recvfrom)", ["recvfrom", "poll_read"]),
    ("kernel: epoll, parking, wake-ups", ["park", "epoll", "futex"]),
    ("body schema checks", ["api_body_problem", "Operation::accepts"]),
    ("templates and expressions", ["Templates::", "Fast::eval", "Context::jinja"]),
    ("JSON: responses read and converted", ["response_json", "body_value"]),
    ("JSON: request bodies written", ["http::encode::encode"]),
    ("HTTP client (requests written, answers read, pool)", ["HttpTransport", "http::conn", "http::head",
                                                            "http::pool", "httparse"]),
    ("inputs: line parsed and checked", ["parse_line"]),
    ("result lines, tally, reports freed", ["result_line", "redact_json", "Tally::",
                                            "drop_in_place<flowrun::engine::outcome"]),
    ("step loop (records, contexts)", ["engine::run::"]),
]


def stacks(path):
    frames = []
    for line in open(path):
        line = line.rstrip()
        if not line:
            if frames:
                yield frames
            frames = []
        elif line[0] in " \t":
            parts = line.strip().split(" ", 1)
            frames.append(parts[1] if len(parts) > 1 else "?")
    if frames:
        yield frames


def category(frames):
    for name, patterns in CATEGORIES:
        if any(p in f for f in frames for p in patterns):
            return name
    return "other (runtime, allocator, start-up)"


counts = collections.Counter(category(s) for s in stacks(sys.argv[1]))
total = sum(counts.values())
for name, n in counts.most_common():
    print(f"  {100 * n / total:5.1f}%  {name}")
