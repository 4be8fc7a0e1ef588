"""One exception type for bad user input, printed by `main` as a single line."""


class UserError(Exception):
  """Bad input (a file, a config value): the message names the file and the problem."""
