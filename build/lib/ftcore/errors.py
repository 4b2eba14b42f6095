"""The one exception type for problems a user can cause and fix."""


class FtcoreError(Exception):
    """A user-fixable problem; its message is one sentence naming the thing and what to do.

    The CLI prints it as `error: <message>` and exits 2; the app shows it with `st.error`.
    Anything else that escapes is a bug in ftcore, not in the user's input.
    """


def user_message(error: FtcoreError) -> str:
    """The error's one sentence, also when a DataLoader worker re-raised it wrapped in a traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    marker = f"{FtcoreError.__module__}.{FtcoreError.__name__}: "
    for line in reversed(lines):
        if line.startswith(marker):
            return line[len(marker):]
    return lines[0] if lines else type(error).__name__
