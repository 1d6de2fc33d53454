"""The page's features, one module or folder each: the generation (`generate`), the sampler duel (`duel`), one
update in numbers (`update`), one variable's flow (`explainer`), your digit through the BFN (`digit`) and
shareable links (`links`). Each gets the app's `Context` and the `Page`; none imports another."""
