"""The `voc` command line: wires the pipeline, the models and the result store together."""
