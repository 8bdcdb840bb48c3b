"""uart_rx: PL011 input taken by the receive interrupt and echoed per line."""

import pytest


def rx_lines(run) -> list[str]:
    return [line[len("rx: "):] for line in run.lines if line.startswith("rx: ")]


@pytest.mark.guest
def test_uart_rx_echo(run_guest):
    run = run_guest("uart_rx", 1, stdin=b"hello\r\nworld\nquit\nnot read\n")
    run.assert_passed()
    # Input after "quit" is never echoed; CR LF counts as one line end.
    assert rx_lines(run) == ["hello", "world", "quit"], run.describe()
    summary = run.line_starting("uart_rx: 3 lines, ")
    irqs = int(summary.split(", ")[2].split()[0])
    assert irqs >= 1, run.describe()
    run.assert_lines(["rx interrupts with nothing to read: got 0 expect 0 ok",
                      "lines dropped: got 0 expect 0 ok"])


@pytest.mark.guest
def test_uart_rx_many_lines(run_guest):
    lines = [f"line {i:02d} " + "x" * i for i in range(20)]
    feed = "".join(f"{line}\n" for line in lines) + "quit\n"
    run = run_guest("uart_rx", 2, stdin=feed.encode())
    run.assert_passed()
    assert rx_lines(run) == lines + ["quit"], run.describe()
