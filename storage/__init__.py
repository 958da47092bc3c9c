"""Storage of NNI experiment results: models, migrations, ingest and typed queries."""
