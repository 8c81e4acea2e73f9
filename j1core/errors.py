"""User mistakes as one line and an exit status; bugs as a traceback.

    python train.py --lr -1            # j1: error: --lr: must be > 0, got -1.0   (exit 2)
    python -m pytest tests/test_hardening.py -q

UserError is the one type for what the user can fix: a bad file, record, flag, config value or checkpoint, a
refused resume or overwrite. Both entry points run their main through run_main, which prints a UserError as
`j1: error: <message>` on stderr and exits 2. Exit statuses (README, "When something goes wrong"):
    0 done, 1 a bug (traceback), 2 a user error, 3 stopped after too many non-finite steps,
    128 + N stopped by signal N (SIGINT 130, SIGTERM 143) after saving.
`--debug` (anywhere on the command line, or J1_DEBUG=1) shows the traceback of a user error too.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback

EXIT_USER_ERROR = 2


class UserError(ValueError):
    """Something the user can fix; the message is the whole story, one line (FILE:LINE: field 'x': ...).

    A ValueError so that callers (and tests) that catch ValueError keep working."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are UserErrors (one line, exit status 2) instead of a usage block."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see --help)")


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def os_error_line(err: OSError) -> str:
    """A missing or unreadable file, as `PATH: reason`."""
    name = err.filename if err.filename is not None else ""
    return f"{name}: {err.strerror or err}" if name else one_line(str(err))


def run_main(main, argv=None) -> int:
    """Call main(argv) -> exit status, turning user errors into one line on stderr and status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("J1_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    previous = install_stop_handler()
    try:
        return main(argv) or 0
    except Stopped as stop:  # SIGTERM outside training (the trainer saves and stops on its own)
        print(f"j1: stopped by {signal.Signals(stop.signum).name}; what was written so far stays (a judge or "
              "synth rerun resumes from it)", file=sys.stderr)
        return 128 + stop.signum
    except UserError as err:
        if debug:
            traceback.print_exc()
        print(f"j1: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        if debug:
            traceback.print_exc()
        print(f"j1: error: {os_error_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # before the trainer's own handler is installed (loading) or after it
        print("j1: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Stopped(BaseException):
    """SIGTERM, raised where the process is (a BaseException, so that no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def raise_stopped(signum, frame):
    raise Stopped(signum)


def install_stop_handler():
    """SIGTERM -> Stopped (the previous handler, or None off the main thread, where signals cannot be set)."""
    try:
        return signal.signal(signal.SIGTERM, raise_stopped)
    except ValueError:
        return None
