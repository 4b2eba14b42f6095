"""ftcore: the headless engine of the fine-tuning lab (d2l 13.2 fine-tuning, and past it).

One module per concept (config, archs, data, splits, models, devices, training, lr_finder, checkpoints, predict,
charts, ...), and a run's life in the runs package; the CLI in cli. No Streamlit: the dashboard's glue lives in
the top-level app package.
"""

__version__ = "0.1.0"
