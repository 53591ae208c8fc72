"""Sphinx configuration of the reference site: `sphinx-build -W --keep-going -n docs build/docs` (the suite runs it:
a broken link, a missing page or include, or any other warning fails the build). Pages are Markdown (MyST)."""

project = "sanm-plugin"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "sanm-plugin"
myst_heading_anchors = 3  # `[text](runs.md#resume)`-style links to section headings resolve
nitpicky = True
