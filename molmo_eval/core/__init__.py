"""The core: the plain typed values that flow through the pipeline (`types`), the errors meant for
users (`errors`), the task contract (`task`) and what a metric is (`metric`), the model protocol
(`model`), plugin discovery (`registry`), the run configuration (`config`), JSON text written
losslessly and read with errors for users (`jsonio`) and the version. Every
other room imports it; it imports nothing of molmo_eval outside itself.
"""
