"""The restore stages, in data-flow order (each a batch of work rows in, a batch out):

sources (list, with manifest) -> read -> decode (template) -> prepare -> infer (the actors:
windows in, predictions out) -> finish -> sinks (encode, encode_jpeg, metadata, quality;
shard_parts for shard outputs). What each data layout lists, reads and writes is in
pipeline/formats/, one module per layout.

pipeline/dataset.py chains them in one CPU task per group of blocks; the driver-side pieces
(ledger, stats, shard publishing, lease, crash journal) live one folder up.

May import: spl_model's public modules, and from one folder up only the leaves the stages share
(config, schema, storage, errors, model, crashes, ledger, formats); never the driver's run, dataset,
planner or work, which import the stages.
"""
