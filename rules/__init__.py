"""The dllint rule catalogue, installed as ``dllint.rules``: one rule per module, grouped by family."""
