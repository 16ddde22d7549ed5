"""Training the generator: the loop (`train.py`, on Ray Train or `--local`), its DataLoader
dataset (`data.py`: crops, masks, pre-fill), fixed validation pairs and grids
(`validate.py`), and the default model's photo set (`photos.py`).

May import: spl_model (its training pieces too: losses, discriminator, teachers, stamps), and
from one folder up only the leaves `config`, `storage` and `ray_init`; never the restore
stages or the driver."""
