"""Parsers: model text -> typed answers (points in every declared coordinate space, yes/no, choice
letters, counts, VQA answer normalisation). Pure functions, table-tested; it imports only
`molmo_eval.core`.
"""
