"""`ensemble report`: one self-contained HTML page of a run. build.py gathers what each
split shows (figures.py draws its sample grids and interpolations with workers' generators,
plots.py its curves with matplotlib) and page.py writes the HTML around them.
"""
