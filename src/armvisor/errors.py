"""Errors that reach the user as one line, each with its own exit code."""


class ArmvisorError(Exception):
    """Bad input from the user (file, option, image): exit code 2."""

    exit_code = 2


class GuestError(Exception):
    """The guest did something the machine cannot continue from: exit code 3.

    `report` holds the multi-line diagnosis (CPU, PC, EL, last trace events).
    """

    exit_code = 3

    def __init__(self, message: str, report: str = ""):
        super().__init__(message)
        self.report = report


class GuestTimeout(Exception):
    """The --timeout expired before the guest powered off: exit code 4."""

    exit_code = 4

    def __init__(self, message: str, report: str = ""):
        super().__init__(message)
        self.report = report
