"""The generation: settings, the live images of every model, and the views of the run (pixel heatmap and
trajectories, step summary, which digit, export). `layout.studio` builds it around the page's other tabs."""
