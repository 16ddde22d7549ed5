"""Training the generator: the loop (`train.py`, on Ray Train or `--local`), its DataLoader
dataset (`data.py`: crops, masks, pre-fill), fixed validation pairs and grids
(`validate.py`), and the default model's photo set (`photos.py`)."""
