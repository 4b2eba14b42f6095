"""The one exception type for problems a user can cause and fix."""


class FtcoreError(Exception):
    """A user-fixable problem; its message is one sentence naming the thing and what to do.

    The CLI prints it as `error: <message>` and exits 2; the app shows it with `st.error`.
    Anything else that escapes is a bug in ftcore, not in the user's input.
    """
