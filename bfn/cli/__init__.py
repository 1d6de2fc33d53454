"""The command lines of the library: thin shells that parse their options, call `bfn`, and print or write.

    python -m bfn.cli.sample     generate images (PNG grid, .npz)
    python -m bfn.cli.complete   complete images from the part kept (`bfn.completion`)
    python -m bfn.cli.score      which label an image is, by Bayes' rule over the bounds (`bfn.scoring`)
    python -m bfn.cli.bench      how fast sampling is (`bfn.benchmark`)
"""
