"""The error type of bad data input, below every module that reads data.

algoprog.training.data (the pipeline), .corpus (the embedded corpus) and .tfds_text (local
text) all raise it; it lives apart from them so that none imports another for it (data
imports corpus and tfds_text, never the reverse). `data.DataError` is this same class.
"""


class DataError(ValueError):
  """Bad data input; the message names the config field or file and what was expected."""
