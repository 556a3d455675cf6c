"""The story of one fact, told from the results of every capability that has landed.

`capabilities.py` says which capabilities are present; `flow.py` computes the picture of
the answer forming inside the model; `explain.py` assembles `factscope explain-fact`.
The web app (factscope.web) shows the same results, view by view.
"""
