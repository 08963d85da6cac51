"""Warnings and errors raised by the solver."""


class PSMDConvergenceWarning(UserWarning):
    """An iterative solver stopped before reaching its tolerance.

    The result is still returned; check ``result.converged`` and
    ``result.marginal_error`` before trusting the plan.
    """


class PSMDInputError(ValueError):
    """A user-supplied array, file or option is not acceptable.

    The message is one line naming what was wrong and what is allowed.
    """
