"""Measurement scripts (metric and model speed): tools run with ``python -m``, not library API."""


def print_table(lines: list[str], out: str | None = None) -> None:
    """Print a tool's Markdown ``lines`` and, given ``out``, write them there (atomically)."""
    from benchmark.atomic import write_text

    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        write_text(out, text)
