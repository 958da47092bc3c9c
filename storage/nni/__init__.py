"""Read NNI experiments into plain records (``storage.nni.records``), one module per source: the
registry, a stopped experiment's nni.sqlite, a running manager's REST API and its log. Both
experiment readers yield the same ``RawExperiment``, so ingest has one code path."""
