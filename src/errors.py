"""User-facing errors: one line, no traceback."""
import os
import sys
import traceback


class IPTError(Exception):
    """An error caused by the user's input; printed as one line."""


class ConfigError(IPTError):
    """Bad configuration key or value."""


class CheckpointError(IPTError):
    """Missing, corrupt, foreign or mismatched checkpoint."""


class ImageError(IPTError):
    """Unreadable or unsupported image."""


def _one_line(text: str) -> str:
    """``text`` with its lines joined by '; ' so that it prints as one line."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def run_main(main_fn, argv=None) -> int:
    """Run ``main_fn(argv)`` and turn its outcome into an exit status.

    IPTError -> ``error: <message>`` on one stderr line, status 2; any other exception -> one line naming its type,
    status 1; KeyboardInterrupt -> status 130. With ``IPT_DEBUG=1`` in the environment the full traceback is printed
    instead of the one-line summary. An int returned by ``main_fn`` is the status; anything else means 0.
    """
    try:
        status = main_fn(argv)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - this is the top-level handler
        if os.environ.get("IPT_DEBUG") == "1":
            traceback.print_exc()
        elif isinstance(exc, IPTError):
            print(f"error: {_one_line(exc)}", file=sys.stderr)
        else:
            print(f"error: {type(exc).__name__}: {_one_line(exc)} (set IPT_DEBUG=1 for the traceback)",
                  file=sys.stderr)
        return 2 if isinstance(exc, IPTError) else 1
    return status if isinstance(status, int) else 0
