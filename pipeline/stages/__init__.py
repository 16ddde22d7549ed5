"""The restore stages, in data-flow order (each a batch of work rows in, a batch out):

sources (list, with manifest) -> read -> decode (template) -> prepare -> infer (the actors:
windows in, predictions out) -> finish -> sinks (encode, encode_jpeg, metadata, quality;
shard_parts and shard_formats for shard outputs).

pipeline/dataset.py chains them in one CPU task per group of blocks; the driver-side pieces
(ledger, stats, shard publishing, lease, crash journal) live one folder up.

May import: spl_model's public modules, and from one folder up only the leaves the stages share
(config, schema, storage, errors, model, crashes, ledger); never the driver's run, dataset,
planner or work, which import the stages.
"""
