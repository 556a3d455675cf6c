"""The local web app: `factscope serve` (app.py) over the same functions the CLI calls.

host.py keeps the one model and its lock; batching.py serves predictions that arrive
together in one forward; jobs.py runs long computations in the background with progress,
cancellation and a cache; analyses.py holds the jobs' bodies; views.py says which views
exist; static/ is the page (vanilla JS, plotly.js from the installed `plotly` package).
"""
