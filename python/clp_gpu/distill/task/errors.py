"""The one error type of ``distill-task``: a one-line message naming the file, model or flag
and the fix. The console entry prints it and exits 1."""


class TaskError(ValueError):
    """Bad input to ``distill-task`` (or to :func:`apply_sparse_diff`)."""
