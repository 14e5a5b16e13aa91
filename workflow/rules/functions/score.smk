# Functions of the scoring stage (workflow/rules/score.smk, which includes this file).


def score_table(method, rep="{rep}"):
    """The gathered score table of one method of one replicate (``rep``: its path prefix)."""
    return f"{R}/{rep}scores/{method}.parquet"
