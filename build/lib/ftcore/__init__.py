"""ftcore: the headless engine of the fine-tuning lab (d2l 13.2 fine-tuning, and past it).

One module per concept (data, splits, models, devices, training, lr_finder, jobs, runner, scheduler, checkpoints,
predict, charts, ...); the CLI in cli. No Streamlit: the dashboard's glue lives in the top-level app package.
"""

__version__ = "0.1.0"
