"""``python -m gsmgw.emulator``: the same as ``gsmgw fake-modem`` without the rest of the CLI."""

from __future__ import annotations

import argparse
import sys

from gsmgw.commands.fake_modem import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gsmgw.emulator", description="emulated GSM modems on ptys")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
